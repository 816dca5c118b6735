"""The reference engine of a tabular package: the Python Preprocessor, then the model adapter itself
(torch MLP, linear coefficients, LightGBM booster) — what the ONNX graph is tested against."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["TabularNative"]


class TabularNative:
    """``output(frame)``: (N, K) probabilities or (N,) values from the package's own adapter.

    Everything loads at once (a damaged weights file fails here, naming the file)."""

    def __init__(self, package: Any) -> None:
        from ...data import Preprocessor

        self.package = package
        m = package.manifest
        self.kind: str = m["task"]["kind"]
        self.labels: list[Any] | None = m["task"].get("labels")
        self.preprocessor = Preprocessor.from_dict(package.read_json("preprocess.json"))
        self._adapter: Any = None
        self.adapter  # noqa: B018 - load now: load time, not the first prediction, pays (and fails)
        self.last_extra_: list[str] | None = None
        self.last_unknown_: dict[str, list[str]] | None = None

    @property
    def adapter(self) -> Any:
        if self._adapter is None:
            from ...models import TaskSpec, adapter_class  # imports torch: only the native engine pays for it

            m = self.package.manifest
            task = TaskSpec(self.kind, n_classes=len(self.labels or []))
            self._adapter = adapter_class(m["model"]["family"]).from_files(task, m["model"], self.package.read_bytes)
        return self._adapter

    def transform(self, frame: pd.DataFrame, on_unknown: str = "ignore") -> np.ndarray:
        """Prepared features (N, D) float32 from the Python Preprocessor."""
        X = self.preprocessor.transform(frame, on_unknown=on_unknown)
        self.last_extra_ = getattr(self.preprocessor, "last_extra_", None)
        self.last_unknown_ = getattr(self.preprocessor, "last_unknown_", None)
        return X

    def output(self, frame: pd.DataFrame, on_unknown: str = "ignore") -> np.ndarray:
        return self.adapter.predict_output(self.transform(frame, on_unknown))
