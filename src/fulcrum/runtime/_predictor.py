"""The Predictor: a model package loaded once, then used for many predictions.

::

    p = Predictor(package)                      # engine="auto": ONNX Runtime when the package has model.onnx
    p.predict(df)                               # DataFrame / dict / list of dicts / rows as lists -> DataFrame
                                                # with "prediction" (and "proba_<label>" for classifiers)
    p.predict_one({"island": "Biscoe", ...})    # one record -> dict, the latency path (no pandas)
    p.predict_columns({"island": arr, ...})     # column arrays -> output arrays (the server's batcher)
    Predictor(package, engine="native")         # the trained model itself (the task's native engine): the reference
    Predictor(package, variant="int8")          # variants/int8/model.onnx

Nothing here depends on the workload: the package's task (``manifest["task"]["workload"]``) gives the
input codec (raw values -> graph feeds) and the native engine; outputs are formatted from the manifest's
``outputs`` by kind (``probabilities`` and ``label`` -> the predicted label and ``proba_<label>``,
``value`` -> the number, ``ood_score`` -> passed through as ``ood_score`` when the graph has it).
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


def _extra_output(v: Any, key: str) -> np.ndarray:
    """An extra graph output per row: (N,) for ``ood_score``; ``scores`` keep their (N, k) shape."""
    return np.asarray(v) if key == "scores" else np.asarray(v).reshape(-1)


def top_lists(items: np.ndarray, scores: np.ndarray) -> tuple[list[list[str]], list[list[float]]]:
    """A recommender's (N, k) ids and scores as per-row lists without the padding ("" ids)."""
    ids_out: list[list[str]] = []
    sc_out: list[list[float]] = []
    for ids, sc in zip(np.asarray(items).tolist(), np.asarray(scores, dtype=np.float64).tolist()):
        keep = [j for j, i in enumerate(ids) if i not in ("", b"")]
        ids_out.append([ids[j].decode() if isinstance(ids[j], bytes) else ids[j] for j in keep])
        sc_out.append([sc[j] for j in keep])
    return ids_out, sc_out


def _as_str(v: Any) -> str:
    """A text output cell (ONNX Runtime gives str; bytes from other engines) as str."""
    return v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v)


def _is_row(r: Any) -> bool:
    return isinstance(r, (list, tuple, np.ndarray)) and not isinstance(r, (str, bytes))


class Predictor:
    """Prepares raw inputs and runs the model of one package.

    Create it once (``fulcrum.load(ref)``) and reuse it: everything that can be
    done at load time is done there (ONNX Runtime session, threads, warm-up).

    Parameters
    ----------
    package:
        A loaded :class:`~fulcrum.artifact.ModelPackage`.
    engine:
        ``"auto"`` (ONNX Runtime when the package has ``model.onnx``, else native),
        ``"onnx"`` or ``"native"`` (the trained model itself through its task's native engine;
        the reference the ONNX graph is tested against).
    variant:
        An optimized variant's id: runs ``variants/<id>/model.onnx`` (ONNX engine only).
    threads:
        ONNX Runtime intra-op threads (default: the physical cores; e.g. 1 per worker
        when several server workers share a machine).
    """

    def __init__(self, package: Any, engine: Literal["auto", "onnx", "native"] = "auto", variant: str | None = None,
                 *, threads: int | None = None) -> None:
        from ..tasks import get_task
        from ._engines import primary_output

        self.package = package
        m = package.manifest
        if "task" not in m or "model" not in m:
            raise FormatError(f"Package {package.path} has no task/model section; it was not written by `fulcrum train`.")
        if engine not in ENGINES:
            raise ConfigError(f"engine must be one of {', '.join(map(repr, ENGINES))}; got {engine!r}.")
        self.task = get_task(m)  # a workload this Fulcrum does not know: FormatError "upgrade fulcrum"
        self.kind: str = m["task"]["kind"]
        self.target: str = m["task"]["target"]
        self.labels: list[Any] | None = m["task"].get("labels")
        self.input_columns: list[str] = [c["name"] for c in m["inputs"]]
        self.variant = variant
        self.notices: list[str] = []
        self._native: Any = None
        self._labels_arr = np.asarray(self.labels, dtype=object) if self.labels is not None else None
        self._proba_keys = [f"proba_{lab}" for lab in (self.labels or [])]
        self._classifier = primary_output(m) == "probabilities"
        #: a recommender's graph: ``items`` (N, k) ids, "" where a row has fewer than k (its own k, or no unseen
        #: items left), and ``scores`` (N, k); a prediction is the row's list of ids
        self._items = primary_output(m) == "items"
        #: a graph that writes text (a transcriber): ``text`` (N,) strings; a prediction is the row's string
        self._text = primary_output(m) == "text"
        self._extra: list[tuple[str, str]] = []  # (graph output, key in our results): ood_score when present

        graph_file = self._graph_file(engine, variant)
        if graph_file is None:
            self.engine: str = "native"
            self._native_engine()
            self._onnx: Any = None
            self._encoder: Any = None
            self.monitored: list[str] = []
        else:
            from ._engines import OnnxEngine, custom_op_libraries, graph_output

            self.engine = "onnx"
            self._encoder = self.task.input_codec(m, package.read_json)
            self._onnx = OnnxEngine(package.read_bytes(graph_file), output=primary_output(m),
                                    warmup=self._encoder.dummy(), threads=threads, custom_ops=custom_op_libraries(m),
                                    label=f"Model package {package.path}: file {graph_file!r}")
            ood = graph_output(m, "ood_score", self._onnx.output_names)
            if ood is not None:
                self._extra.append((ood, "ood_score"))
            if self._items:  # top-k ids (N, k) and their scores (N, k)
                self._extra.append((graph_output(m, "scores", self._onnx.output_names) or "scores", "scores"))
            for o in m.get("outputs") or []:  # per-row notes (e.g. a recommender's basis): passed on by name
                if isinstance(o, Mapping) and o.get("kind") == "note" and o.get("name") in self._onnx.output_names:
                    self._extra.append((str(o["name"]), str(o["name"])))
            for o in m.get("outputs") or []:  # per-row prediction interval ends (a forecaster's lower / upper)
                if (isinstance(o, Mapping) and o.get("kind") in ("interval_lower", "interval_upper")
                        and o.get("name") in self._onnx.output_names):
                    self._extra.append((str(o["name"]), str(o["name"])))
            #: per-row quantities for the input monitor (output kind "monitored", e.g. an image's brightness)
            self.monitored = [str(o["name"]) for o in m.get("outputs") or [] if isinstance(o, Mapping)
                              and o.get("kind") == "monitored" and o.get("name") in self._onnx.output_names]
            self._fetch = [self._onnx.primary, *(g for g, _ in self._extra), *self.monitored]

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

            self._native = NativeEngine(self.package)
        return self._native

    def _native_part(self, name: str) -> Any:
        value = getattr(self._native_engine(), name, None)
        if value is None:
            raise ConfigError(f"{self.task.name} models have no {name}; it belongs to the tabular task's native engine.")
        return value

    @property
    def adapter(self) -> Any:
        """The package's native model (loaded on first use when the engine is ONNX)."""
        return self._native_part("adapter")

    @property
    def preprocessor(self) -> Any:
        """The package's Python preprocessing, where its task has one (tables)."""
        return self._native_part("preprocessor")

    @property
    def manifest(self) -> dict[str, Any]:
        return self.package.manifest

    @property
    def outputs(self) -> list[str]:
        """What :meth:`predict_columns` returns besides the primary output (``ood_score`` when the graph has one)."""
        return [key for _, key in self._extra]

    # ------------------------------------------------------------------ preparation

    def transform(self, data: Any, *, on_unknown: str = "ignore") -> np.ndarray:
        """Prepared features (N, D) float32 from the Python Preprocessor (the native path's first half; tables)."""
        df = _as_frame(data, self.input_columns)
        X = self._native_part("transform")(df, on_unknown)
        native = self._native_engine()
        self._set_notices(getattr(native, "last_extra_", None), getattr(native, "last_unknown_", None))
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

    def _feeds(self, data: Any, on_unknown: str) -> dict[str, np.ndarray]:
        if isinstance(data, Mapping):
            return self._encoded(self._encoder.encode_row(data, on_unknown))
        return self._encoded(self._encoder.encode_frame(_as_frame(data, self.input_columns), on_unknown))

    def _native_output(self, data: Any, on_unknown: str) -> np.ndarray:
        native = self._native_engine()
        out = native.output(_as_frame(data, self.input_columns), on_unknown)
        self._set_notices(getattr(native, "last_extra_", None), getattr(native, "last_unknown_", None))
        return out

    def _run_all(self, data: Any, on_unknown: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(primary output, extra outputs by key)."""
        if self._onnx is None:
            return self._native_output(data, on_unknown), {}
        feeds = self._feeds(data, on_unknown)
        if not self._extra:
            return self._onnx.output(feeds), {}
        got = self._onnx.outputs(feeds, self._fetch)
        return got[0], {key: _extra_output(v, key) for (_, key), v in zip(self._extra, got[1:])}

    # ------------------------------------------------------------------ prediction

    def predict_output(self, data: Any, *, on_unknown: str = "ignore") -> np.ndarray:
        """The primary output: (N, K) class probabilities or (N,) values."""
        if self._onnx is None:
            return self._native_output(data, on_unknown)
        return self._onnx.output(self._feeds(data, on_unknown))

    def predict_outputs(self, data: Any, *, on_unknown: str = "ignore") -> dict[str, np.ndarray]:
        """Every output by kind: ``probabilities`` or ``value``, and ``ood_score`` when the graph has one."""
        main, extra = self._run_all(data, on_unknown)
        key = "probabilities" if self._classifier else "items" if self._items else "text" if self._text else "value"
        return {key: main, **extra}

    def predict_proba(self, data: Any, **kw: Any) -> np.ndarray:
        if not self._classifier:
            raise DataError(f"predict_proba is for classifiers; this model does {self.kind}. Use predict().")
        return self.predict_output(data, **kw)

    def predict(self, data: Any, **kw: Any) -> pd.DataFrame:
        """One output row per input row: ``prediction``, ``proba_<label>`` per class for classifiers, and
        ``ood_score`` when the model's graph scores how far each input is from its training data.

        ``data``: a DataFrame, a dict (one row), a list of dicts, or rows as lists / a 2-D array
        with one value per input column in the order of ``input_columns`` (the training order).
        """
        main, extra = self._run_all(data, kw.get("on_unknown", "ignore"))
        return self.format_outputs(main, extra)

    def predict_one(self, row: Mapping[str, Any], *, on_unknown: str = "ignore") -> dict[str, Any]:
        """One record -> ``{"prediction": value, "proba_<label>": p, ...}`` (plain Python values).

        The single-row latency path: per-column arrays are built directly from the
        values, no DataFrame, one ONNX Runtime call.
        """
        if not isinstance(row, Mapping):
            raise DataError(f"predict_one takes one record as a dict of column -> value, got {type(row).__name__}.")
        if self._items:
            main, extra = self._run_all(row, on_unknown)
            ids, scores = top_lists(main, extra["scores"])
            return {PREDICTION: ids[0], "scores": scores[0]}
        if self._onnx is not None and not self._extra:
            out = self._onnx.output(self._encoded(self._encoder.encode_row(row, on_unknown)))[0]
            extra: dict[str, np.ndarray] = {}
        else:
            main, extra = self._run_all(row, on_unknown)
            out = main[0]
        if self._classifier:
            result: dict[str, Any] = {PREDICTION: self.labels[int(out.argmax())]}  # type: ignore[index]
            result.update(zip(self._proba_keys, out.tolist()))
        elif self._text:
            result = {PREDICTION: _as_str(out)}
        else:
            result = {PREDICTION: float(out)}
        for key, v in extra.items():
            result[key] = float(v[0])
        return result

    def predict_columns(self, cols: Mapping[str, Any], *, on_unknown: str = "ignore") -> dict[str, np.ndarray]:
        """Raw column arrays in, output arrays out: ``{target: (N,)}`` plus ``{"probabilities": (N, K)}``
        for classifiers (the manifest's output names), and ``ood_score`` (N,) when the graph has one.
        For the server's batcher."""
        if self._onnx is None:
            out = self._native_output(pd.DataFrame({k: np.asarray(v) for k, v in cols.items()}), on_unknown)
            extra: dict[str, np.ndarray] = {}
        else:
            feeds = self._encoded(self._encoder.encode_columns(cols, on_unknown))
            if self._extra or self.monitored:
                got = self._onnx.outputs(feeds, self._fetch)
                out = got[0]
                extra = {key: _extra_output(v, key) for (_, key), v in zip(self._extra, got[1:])}
                extra.update(zip(self.monitored, got[1 + len(self._extra):]))
            else:
                out, extra = self._onnx.output(feeds), {}
        if self._classifier:
            assert self._labels_arr is not None
            return {self.target: self._labels_arr[np.argmax(out, axis=1)], "probabilities": out, **extra}
        return {self.target: out, **extra}

    def format_outputs(self, out: np.ndarray, extra: Mapping[str, np.ndarray] | None = None) -> pd.DataFrame:
        if self._items:  # one list of item ids per row (best first) and their scores
            ids, scores = top_lists(out, (extra or {})["scores"])
            notes = {key: v for key, v in (extra or {}).items() if key != "scores"}
            return pd.DataFrame({PREDICTION: pd.Series(ids, dtype=object), "scores": pd.Series(scores, dtype=object),
                                 **notes})
        if self._text:  # one string per row
            frame: dict[str, Any] = {PREDICTION: pd.Series([_as_str(t) for t in np.asarray(out).reshape(-1)],
                                                           dtype=object)}
        elif self._classifier:
            assert self._labels_arr is not None
            frame = {PREDICTION: self._labels_arr[out.argmax(axis=1)]}
            for j, lab in enumerate(self.labels or []):
                frame[f"proba_{lab}"] = out[:, j]
        else:
            frame = {PREDICTION: out}
        for key, v in (extra or {}).items():
            frame[key] = v
        return pd.DataFrame(frame)

    def __repr__(self) -> str:
        v = f", variant={self.variant!r}" if self.variant else ""
        return f"Predictor({self.package.ref!r}, engine={self.engine!r}{v})"
