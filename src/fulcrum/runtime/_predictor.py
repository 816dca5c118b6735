"""The Predictor: a model package loaded once, then used for many predictions.

::

    p = Predictor(package)                      # engine="auto": ONNX Runtime when the package has model.onnx
    p.predict(df)                               # DataFrame / dict / list of dicts / rows as lists -> DataFrame
                                                # with "prediction" (and "proba_<label>" for classifiers)
    p.predict_one({"island": "Biscoe", ...})    # one record -> dict, the latency path (no pandas)
    p.predict_columns({"island": arr, ...})     # column arrays -> output arrays (the server's batcher)
    Predictor(package, engine="native")         # the adapters themselves: the reference
    Predictor(package, variant="int8")          # variants/int8/model.onnx
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError, FormatError, NotFoundError

__all__ = ["Predictor", "PREDICTION"]

ENGINES = ("auto", "onnx", "native")
#: The output column (and ``predict_one`` key) holding the prediction. It is never the target's
#: name, so a prediction written next to the true values is never mistaken for them.
PREDICTION = "prediction"


def _as_frame(data: Any, columns: list[str]) -> pd.DataFrame:
    """A DataFrame from a frame, one dict, a list of dicts, or rows as lists / a 2-D array whose
    values follow ``columns`` (the model's input columns, in the order they had at training)."""
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, Mapping):
        return pd.DataFrame([data])
    if isinstance(data, np.ndarray):
        rows: Any = data
    elif isinstance(data, Iterable) and not isinstance(data, (str, bytes)):
        rows = list(data)
        if rows and all(isinstance(r, Mapping) for r in rows):
            return pd.DataFrame(rows)
    else:
        rows = None
    if rows is not None and len(rows):
        arr = rows if isinstance(rows, np.ndarray) else None
        flat = arr.ndim == 1 if arr is not None else all(not _is_row(r) for r in rows)
        order = ", ".join(map(repr, columns))
        if flat:
            if len(columns) == 1:  # one value per row, as a scikit-learn estimator takes a 1-D X
                return pd.DataFrame({columns[0]: list(rows)})
            raise DataError(
                f"Got a flat list of {len(rows)} value(s) for a model of {len(columns)} input columns; "
                f"pass one row per item, each a list of values in the order {order}."
            )
        if arr is not None and arr.ndim != 2:
            raise DataError(f"Cannot predict on a {arr.ndim}-D array; pass a 2-D array of rows (columns in the order {order}).")
        widths = {len(r) for r in rows} if arr is None else {arr.shape[1]}
        if arr is None and not all(_is_row(r) for r in rows):
            raise DataError(f"Rows must all be lists (or tuples) of values in the order {order}; some items are not.")
        if widths != {len(columns)}:
            got = " or ".join(str(w) for w in sorted(widths))
            raise DataError(
                f"Rows have {got} value(s), but this model takes {len(columns)} columns, in this order: {order}; "
                "pass one value per column (None for a missing value)."
            )
        return pd.DataFrame([list(r) for r in rows], columns=columns)
    raise DataError(
        f"Cannot predict on a {type(data).__name__}; pass a pandas DataFrame, a dict (one row), a list of dicts, "
        "or rows as lists / a 2-D array with one value per input column."
    )


def _is_row(r: Any) -> bool:
    return isinstance(r, (list, tuple, np.ndarray)) and not isinstance(r, (str, bytes))


# Workloads whose packages this runtime can run; a new workload (text, images, ...) adds its
# name here with its input encoding, behind the same Predictor methods.
SUPPORTED_WORKLOADS = ("tabular",)


class Predictor:
    """Prepares raw rows and runs the model of one package.

    Create it once (``fulcrum.load(ref)``) and reuse it: everything that can be
    done at load time is done there (ONNX Runtime session, threads, warm-up).

    Parameters
    ----------
    package:
        A loaded :class:`~fulcrum.artifact.ModelPackage`.
    engine:
        ``"auto"`` (ONNX Runtime when the package has ``model.onnx``, else native),
        ``"onnx"`` or ``"native"`` (the package's adapters after the Python Preprocessor;
        the reference the ONNX graph is tested against).
    variant:
        An optimized variant's id: runs ``variants/<id>/model.onnx`` (ONNX engine only).
    threads:
        ONNX Runtime intra-op threads (default: the physical cores; e.g. 1 per worker
        when several server workers share a machine).
    """

    def __init__(self, package: Any, engine: Literal["auto", "onnx", "native"] = "auto", variant: str | None = None,
                 *, threads: int | None = None) -> None:
        from ..data import Preprocessor

        self.package = package
        m = package.manifest
        if "task" not in m or "model" not in m:
            raise FormatError(f"Package {package.path} has no task/model section; it was not written by `fulcrum train`.")
        if engine not in ENGINES:
            raise ConfigError(f"engine must be one of {', '.join(map(repr, ENGINES))}; got {engine!r}.")
        workload = m["task"].get("workload", "tabular")
        if workload not in SUPPORTED_WORKLOADS:
            raise FormatError(
                f"Package {package.ref} is a {workload!r} model; this Fulcrum predicts {', '.join(SUPPORTED_WORKLOADS)} "
                "models. Upgrade fulcrum to load it."
            )
        self.kind: str = m["task"]["kind"]
        self.target: str = m["task"]["target"]
        self.labels: list[Any] | None = m["task"].get("labels")
        self.input_columns: list[str] = [c["name"] for c in m["inputs"]]
        self.variant = variant
        self.notices: list[str] = []
        preprocess = package.read_json("preprocess.json")
        self.preprocessor = Preprocessor.from_dict(preprocess)
        self._native: Any = None
        self._labels_arr = np.asarray(self.labels, dtype=object) if self.labels is not None else None
        self._proba_keys = [f"proba_{lab}" for lab in (self.labels or [])]

        graph_file = self._graph_file(engine, variant)
        if graph_file is None:
            self.engine: str = "native"
            self._native = self._native_engine()
            self._onnx: Any = None
            self._encoder: Any = None
        else:
            from ..optimize._export_inputs import InputEncoder
            from ._engines import OnnxEngine

            self.engine = "onnx"
            self._encoder = InputEncoder(preprocess)
            self._onnx = OnnxEngine(package.read_bytes(graph_file), kind=self.kind, warmup=self._encoder.dummy(),
                                    threads=threads, label=f"Model package {package.path}: file {graph_file!r}")

    def _graph_file(self, engine: str, variant: str | None) -> str | None:
        pkg, m = self.package, self.package.manifest
        if variant is not None:
            variants = m.get("variants") or {}
            if variant not in variants:
                raise NotFoundError(
                    f"Model {pkg.ref} has no variant {variant!r}; available variants: "
                    f"{', '.join(sorted(variants)) or '(none; create them with fulcrum optimize)'}."
                )
            if engine == "native":
                raise ConfigError(f"Variant {variant!r} is an ONNX graph; load it with engine='onnx' or 'auto', not 'native'.")
            entry = variants[variant] or {}
            return str(entry.get("file") or f"variants/{variant}/model.onnx")
        if engine == "native":
            return None
        onnx_file = (m.get("onnx") or {}).get("file", "model.onnx")
        if pkg.has_file(onnx_file):
            return str(onnx_file)
        if engine == "onnx":
            raise FormatError(
                f"Model {pkg.ref} (package format {m.get('format_version')}, written by fulcrum "
                f"{m.get('fulcrum_version', '?')}) predates ONNX export: it has no model.onnx. "
                "Re-train it with this Fulcrum to get one, or load it with engine='native'."
            )
        return None

    def _native_engine(self) -> Any:
        if self._native is None:
            from ._engines import NativeEngine

            self._native = NativeEngine(self.package, self.kind, self.labels)
        return self._native

    @property
    def adapter(self) -> Any:
        """The package's native model adapter (loaded on first use when the engine is ONNX)."""
        return self._native_engine().adapter

    @property
    def manifest(self) -> dict[str, Any]:
        return self.package.manifest

    # ------------------------------------------------------------------ preparation

    def transform(self, data: Any, *, on_unknown: str = "ignore") -> np.ndarray:
        """Prepared features (N, D) float32 from the Python Preprocessor (the native path's first half)."""
        df = _as_frame(data, self.input_columns)
        X = self.preprocessor.transform(df, on_unknown=on_unknown)
        self._set_notices(getattr(self.preprocessor, "last_extra_", None), getattr(self.preprocessor, "last_unknown_", None))
        return X

    def _set_notices(self, extra: list[str] | None, unknown: dict[str, list[str]] | None) -> None:
        self.notices = []
        if extra:
            self.notices.append(f"ignored {len(extra)} column(s) the model does not use: {', '.join(map(str, extra))}")
        if unknown:
            shown = "; ".join(f"{c}: {', '.join(map(str, v))}" for c, v in unknown.items())
            self.notices.append(f"unseen categories (encoded as unknown): {shown}")

    def _encoded(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        enc = self._encoder
        if enc.last_extra_ or enc.last_unknown_:
            self._set_notices(enc.last_extra_, enc.last_unknown_)
        elif self.notices:
            self.notices = []
        return feeds

    # ------------------------------------------------------------------ prediction

    def predict_output(self, data: Any, *, on_unknown: str = "ignore") -> np.ndarray:
        """Raw task outputs: (N, K) probabilities or (N,) values."""
        if self._onnx is None:
            return self._native.output(self.transform(data, on_unknown=on_unknown))
        if isinstance(data, Mapping):
            feeds = self._encoder.encode_row(data, on_unknown)
        else:
            feeds = self._encoder.encode_frame(_as_frame(data, self.input_columns), on_unknown)
        return self._onnx.output(self._encoded(feeds))

    def predict_proba(self, data: Any, **kw: Any) -> np.ndarray:
        if self.kind != "classification":
            raise DataError(f"predict_proba is for classifiers; this model does {self.kind}. Use predict().")
        return self.predict_output(data, **kw)

    def predict(self, data: Any, **kw: Any) -> pd.DataFrame:
        """One output row per input row: ``prediction``, and ``proba_<label>`` per class for classifiers.

        ``data``: a DataFrame, a dict (one row), a list of dicts, or rows as lists / a 2-D array
        with one value per input column in the order of ``input_columns`` (the training order).
        """
        return self.format_outputs(self.predict_output(data, **kw))

    def predict_one(self, row: Mapping[str, Any], *, on_unknown: str = "ignore") -> dict[str, Any]:
        """One record -> ``{"prediction": value, "proba_<label>": p, ...}`` (plain Python values).

        The single-row latency path: per-column arrays are built directly from the
        values, no DataFrame, one ONNX Runtime call.
        """
        if not isinstance(row, Mapping):
            raise DataError(f"predict_one takes one record as a dict of column -> value, got {type(row).__name__}.")
        if self._onnx is None:
            out = self.predict_output(row, on_unknown=on_unknown)[0]
        else:
            out = self._onnx.output(self._encoded(self._encoder.encode_row(row, on_unknown)))[0]
        if self.kind == "classification":
            result: dict[str, Any] = {PREDICTION: self.labels[int(out.argmax())]}  # type: ignore[index]
            result.update(zip(self._proba_keys, out.tolist()))
            return result
        return {PREDICTION: float(out)}

    def predict_columns(self, cols: Mapping[str, Any], *, on_unknown: str = "ignore") -> dict[str, np.ndarray]:
        """Raw column arrays in, output arrays out: ``{target: (N,)}`` plus ``{"probabilities": (N, K)}``
        for classifiers (the manifest's output names). For the server's batcher."""
        if self._onnx is None:
            out = self.predict_output(pd.DataFrame({k: np.asarray(v) for k, v in cols.items()}), on_unknown=on_unknown)
        else:
            out = self._onnx.output(self._encoded(self._encoder.encode_columns(cols, on_unknown)))
        if self.kind == "classification":
            assert self._labels_arr is not None
            return {self.target: self._labels_arr[np.argmax(out, axis=1)], "probabilities": out}
        return {self.target: out}

    def format_outputs(self, out: np.ndarray) -> pd.DataFrame:
        if self.kind == "classification":
            assert self._labels_arr is not None
            frame = {PREDICTION: self._labels_arr[out.argmax(axis=1)]}
            for j, lab in enumerate(self.labels or []):
                frame[f"proba_{lab}"] = out[:, j]
            return pd.DataFrame(frame)
        return pd.DataFrame({PREDICTION: out})

    def __repr__(self) -> str:
        v = f", variant={self.variant!r}" if self.variant else ""
        return f"Predictor({self.package.ref!r}, engine={self.engine!r}{v})"
