"""The Predictor: a model package loaded once, then used for many predictions."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from ..errors import DataError, FormatError
from ..models import TaskSpec, adapter_class

__all__ = ["Predictor"]


def _as_frame(data: Any) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, Mapping):
        return pd.DataFrame([data])
    if isinstance(data, Iterable) and not isinstance(data, (str, bytes)):
        rows = list(data)
        if rows and all(isinstance(r, Mapping) for r in rows):
            return pd.DataFrame(rows)
    raise DataError(
        f"Cannot predict on a {type(data).__name__}; pass a pandas DataFrame, a dict (one row) or a list of dicts."
    )


class Predictor:
    """Prepares raw rows and runs the model of one package.

    Create it once (``fulcrum.load(ref)``) and reuse it: everything that can be
    done at load time is done there.
    """

    def __init__(self, package: Any) -> None:
        from ..data import LabelCodec, Preprocessor  # noqa: F401  (LabelCodec for symmetry)

        self.package = package
        m = package.manifest
        if "task" not in m or "model" not in m:
            raise FormatError(f"Package {package.path} has no task/model section; it was not written by `fulcrum train`.")
        self.kind: str = m["task"]["kind"]
        self.target: str = m["task"]["target"]
        self.labels: list[Any] | None = m["task"].get("labels")
        self.task = TaskSpec(self.kind, n_classes=len(self.labels or []))
        self.preprocessor = Preprocessor.from_dict(package.read_json("preprocess.json"))
        self.adapter = adapter_class(m["model"]["family"]).from_files(self.task, m["model"], package.read_bytes)
        self.input_columns: list[str] = [c["name"] for c in m["inputs"]]
        self.notices: list[str] = []

    @property
    def manifest(self) -> dict[str, Any]:
        return self.package.manifest

    def transform(self, data: Any, *, on_unknown: str = "ignore") -> np.ndarray:
        df = _as_frame(data)
        X = self.preprocessor.transform(df, on_unknown=on_unknown)
        self.notices = []
        extra = getattr(self.preprocessor, "last_extra_", None)
        if extra:
            self.notices.append(f"ignored {len(extra)} column(s) the model does not use: {', '.join(map(str, extra))}")
        unknown = getattr(self.preprocessor, "last_unknown_", None)
        if unknown:
            shown = "; ".join(f"{c}: {', '.join(map(str, v))}" for c, v in unknown.items())
            self.notices.append(f"unseen categories (encoded as unknown): {shown}")
        return X

    def predict_output(self, data: Any, **kw: Any) -> np.ndarray:
        """Raw task outputs: (N, K) probabilities or (N,) values."""
        return self.adapter.predict_output(self.transform(data, **kw))

    def predict_proba(self, data: Any, **kw: Any) -> np.ndarray:
        if self.kind != "classification":
            raise DataError(f"predict_proba is for classifiers; this model does {self.kind}. Use predict().")
        return self.predict_output(data, **kw)

    def predict(self, data: Any, **kw: Any) -> pd.DataFrame:
        """One output row per input row: the prediction (named after the target), and probabilities."""
        out = self.predict_output(data, **kw)
        return self.format_outputs(out)

    def format_outputs(self, out: np.ndarray) -> pd.DataFrame:
        if self.kind == "classification":
            labels = np.asarray(self.labels, dtype=object)
            frame = {self.target: labels[out.argmax(axis=1)]}
            for j, lab in enumerate(self.labels or []):
                frame[f"proba_{lab}"] = out[:, j]
            return pd.DataFrame(frame)
        return pd.DataFrame({self.target: out})
