"""Raw values -> the ONNX graph's inputs (see ``_export``'s table), checked like the Python path.

The conversions reuse ``fulcrum.data._coerce`` (the helpers the Preprocessor uses), so
a bad value raises the same SchemaError / DataError, naming column, value and row.
Common dtypes take vectorized shortcuts that give the same result as those helpers.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..data._coerce import (
    MISSING_CATEGORY,
    category_strings,
    text_values,
    to_bool,
    to_datetime,
    to_float,
)
from ..data._preprocess import record_unknown
from ..data._schema import blank_na_tokens
from ..errors import ConfigError, SchemaError
from ._export import MISSING_DATETIME

__all__ = ["InputEncoder"]

_UNITS = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}
_NAN = float("nan")


def _epoch_seconds(dt: pd.Series) -> np.ndarray:
    """datetime64 series (naive UTC, NaT = missing) -> int64 seconds, floored; NaT -> MISSING_DATETIME."""
    arr = np.asarray(dt.to_numpy())
    if arr.dtype.kind != "M":  # pragma: no cover - to_datetime always returns datetime64
        arr = arr.astype("datetime64[ns]")
    unit, _ = np.datetime_data(arr.dtype)
    ints = arr.view(np.int64)
    nat = ints == MISSING_DATETIME
    secs = np.floor_divide(ints, _UNITS.get(unit, 1)) if unit in _UNITS else ints
    return np.where(nat, MISSING_DATETIME, secs).astype(np.int64)


def _string_labels(s: pd.Series) -> np.ndarray | None:
    """``category_strings`` for a column of strings and missing values, in one Python pass;
    None when the column holds anything else (then the general helper runs)."""
    out = []
    append = out.append
    for v in s.to_numpy(dtype=object).tolist():
        if type(v) is str:
            append(v.strip() or MISSING_CATEGORY)
        elif v is None or (type(v) is float and v != v) or v is pd.NA:
            append(MISSING_CATEGORY)
        else:
            return None
    arr = np.empty(len(out), dtype=object)
    arr[:] = out
    return arr


def _all_strings(s: pd.Series) -> bool:
    if s.dtype == object:
        return pd.api.types.infer_dtype(s, skipna=True) in ("string", "empty")
    return pd.api.types.is_string_dtype(s.dtype)


class InputEncoder:
    """Encodes frames, single rows or column arrays into ONNX feeds (``{column: [N, 1] array}``).

    After each call: ``last_extra_`` (input columns the model ignores), ``last_unknown_``
    (column -> up to 5 unseen categories) and ``last_unknown_counts_`` — as the Preprocessor.
    """

    def __init__(self, preprocess: Mapping[str, Any]) -> None:
        self.steps = [dict(s) for s in preprocess["columns"]]
        self.columns: list[str] = [s["name"] for s in self.steps]
        schema = preprocess.get("schema", {})
        known = set(self.columns) | {d[0] for d in schema.get("dropped", [])}
        if schema.get("target") is not None:
            known.add(schema["target"])
        self.known = frozenset(known)
        self.kinds = {s["name"]: s["kind"] for s in self.steps}
        self.categories = {s["name"]: list(s["categories"]) for s in self.steps if s["kind"] == "categorical"}
        self._category_sets = {k: frozenset(v) | {MISSING_CATEGORY} for k, v in self.categories.items()}
        self.last_extra_: list[str] = []
        self.last_unknown_: dict[str, list[str]] = {}
        self.last_unknown_counts_: dict[str, int] = {}

    # ------------------------------------------------------------------ checks shared by every entry point

    def _missing_error(self, missing: list[str]) -> SchemaError:
        return SchemaError(
            f"Input is missing required column(s) {missing}. Every row needs all of {self.columns} "
            "(use empty values for missing data); extra columns are ignored."
        )

    def _unknown(self, name: str, unseen: list[str], on_unknown: str) -> None:
        record_unknown(name, unseen, self.categories[name], on_unknown, self.last_unknown_, self.last_unknown_counts_)

    @staticmethod
    def _check_on_unknown(on_unknown: str) -> None:
        if on_unknown not in ("ignore", "error"):
            raise ConfigError(f"on_unknown must be 'ignore' or 'error', got {on_unknown!r}.")

    # ------------------------------------------------------------------ whole columns (frames, column dicts)

    def _column(self, step: Mapping[str, Any], s: pd.Series, on_unknown: str) -> np.ndarray:
        name, kind = step["name"], step["kind"]
        if kind == "numeric":  # a column's na_tokens are missing values, as in the Preprocessor
            return to_float(blank_na_tokens(s, step.get("na_tokens", ())), name).reshape(-1, 1)
        if kind == "boolean":
            if pd.api.types.is_bool_dtype(s.dtype) and not s.hasnans:
                return s.to_numpy(dtype=np.float64).reshape(-1, 1)
            return to_bool(s, name).reshape(-1, 1)
        if kind == "categorical":
            out = _string_labels(s) if pd.api.types.is_string_dtype(s.dtype) else None
            if out is None:
                if pd.api.types.is_integer_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype) and not s.hasnans:
                    out = s.astype(str).to_numpy(dtype=object)
                else:
                    out = category_strings(s)
            known = self._category_sets[name]
            unseen = [c for c in out.tolist() if c not in known]
            if unseen:
                self._unknown(name, unseen, on_unknown)
            return out.reshape(-1, 1)
        if kind == "text":
            if _all_strings(s):
                return s.fillna("").to_numpy(dtype=object).reshape(-1, 1)  # blank cells tokenize to nothing either way
            return np.asarray(text_values(s), dtype=object).reshape(-1, 1)
        if kind == "datetime":
            return _epoch_seconds(to_datetime(s, name)).reshape(-1, 1)
        raise SchemaError(f"Column {name!r} has kind {kind!r}, which cannot be encoded.")  # pragma: no cover

    def encode_frame(self, df: pd.DataFrame, on_unknown: str = "ignore") -> dict[str, np.ndarray]:
        """A DataFrame -> feeds. Raises SchemaError / DataError exactly where ``Preprocessor.transform`` would."""
        self._check_on_unknown(on_unknown)
        if not isinstance(df, pd.DataFrame):
            raise SchemaError(f"Expected a pandas DataFrame with columns {self.columns}, got {type(df).__name__}.")
        missing = [c for c in self.columns if c not in df.columns]
        if missing:
            raise self._missing_error(missing)
        self.last_extra_ = [str(c) for c in df.columns if c not in self.known]
        self.last_unknown_, self.last_unknown_counts_ = {}, {}
        return {step["name"]: self._column(step, df[step["name"]], on_unknown) for step in self.steps}

    def encode_columns(self, cols: Mapping[str, Any], on_unknown: str = "ignore") -> dict[str, np.ndarray]:
        """``{column: 1-D array or list}`` -> feeds (no DataFrame is built)."""
        self._check_on_unknown(on_unknown)
        missing = [c for c in self.columns if c not in cols]
        if missing:
            raise self._missing_error(missing)
        self.last_extra_ = [str(c) for c in cols if c not in self.known]
        self.last_unknown_, self.last_unknown_counts_ = {}, {}
        feeds = {}
        n = None
        for step in self.steps:
            values = cols[step["name"]]
            arr = np.asarray(values)
            if arr.ndim == 2 and arr.shape[1] == 1:
                arr = arr[:, 0]
            if arr.ndim != 1:
                raise SchemaError(f"Column {step['name']!r} must be one-dimensional (one value per row); got shape {arr.shape}.")
            if n is not None and len(arr) != n:
                raise SchemaError(f"Columns have different lengths: {step['name']!r} has {len(arr)} values, others {n}.")
            n = len(arr)
            if step["kind"] == "numeric" and arr.dtype.kind in "fiu":
                s = pd.Series(arr, copy=False)
            else:
                s = pd.Series(values if not isinstance(values, np.ndarray) else arr)
            feeds[step["name"]] = self._column(step, s, on_unknown)
        return feeds

    # ------------------------------------------------------------------ one row (the latency path)

    def encode_row(self, row: Mapping[str, Any], on_unknown: str = "ignore") -> dict[str, np.ndarray]:
        """One record -> feeds of shape [1, 1], with plain Python per value (no pandas for common types)."""
        if on_unknown != "ignore":
            self._check_on_unknown(on_unknown)
        if self.last_unknown_:
            self.last_unknown_, self.last_unknown_counts_ = {}, {}
        try:
            feeds = {}
            for step in self.steps:
                name = step["name"]
                feeds[name] = _ROW[step["kind"]](self, step, row[name], on_unknown)
        except KeyError:
            raise self._missing_error([c for c in self.columns if c not in row]) from None
        if len(row) != len(self.columns) or not self.known.issuperset(row):
            self.last_extra_ = [str(c) for c in row if c not in self.known]
        elif self.last_extra_:
            self.last_extra_ = []
        return feeds

    def _row_slow(self, step: Mapping[str, Any], value: Any, on_unknown: str) -> np.ndarray:
        # pd.Series([value]) infers the dtype pd.DataFrame([row]) would give that column
        return self._column(step, pd.Series([value]), on_unknown)

    def _row_numeric(self, step: Mapping[str, Any], v: Any, on_unknown: str) -> np.ndarray:
        t = type(v)
        if (t is float or t is int) and not (t is float and math.isinf(v)):
            return np.array([[v]], dtype=np.float64)
        if v is None:
            return np.array([[_NAN]])
        return self._row_slow(step, v, on_unknown)

    def _row_boolean(self, step: Mapping[str, Any], v: Any, on_unknown: str) -> np.ndarray:
        if type(v) is bool:
            return np.array([[1.0 if v else 0.0]])
        if v is None or (type(v) is float and v != v):
            return np.array([[_NAN]])
        return self._row_slow(step, v, on_unknown)

    def _row_categorical(self, step: Mapping[str, Any], v: Any, on_unknown: str) -> np.ndarray:
        t = type(v)
        if t is str:
            label = v.strip() or MISSING_CATEGORY
        elif v is None or (t is float and v != v):
            label = MISSING_CATEGORY
        elif t is int:
            label = str(v)
        elif t is float and v.is_integer():
            label = str(int(v))
        else:
            return self._row_slow(step, v, on_unknown)
        name = step["name"]
        if label not in self._category_sets[name]:
            self._unknown(name, [label], on_unknown)
        return np.array([[label]], dtype=object)

    def _row_text(self, step: Mapping[str, Any], v: Any, on_unknown: str) -> np.ndarray:
        if type(v) is str:
            return np.array([[v]], dtype=object)
        if v is None or (type(v) is float and v != v):
            return np.array([[""]], dtype=object)
        return self._row_slow(step, v, on_unknown)

    def _row_datetime(self, step: Mapping[str, Any], v: Any, on_unknown: str) -> np.ndarray:
        return self._row_slow(step, v, on_unknown)

    def reset_notices(self) -> None:
        self.last_extra_, self.last_unknown_, self.last_unknown_counts_ = [], {}, {}

    def dummy(self) -> dict[str, np.ndarray]:
        """One all-missing row (for warm-up runs)."""
        out: dict[str, np.ndarray] = {}
        for step in self.steps:
            kind = step["kind"]
            if kind in ("numeric", "boolean"):
                out[step["name"]] = np.full((1, 1), np.nan)
            elif kind == "datetime":
                out[step["name"]] = np.full((1, 1), MISSING_DATETIME, dtype=np.int64)
            else:
                out[step["name"]] = np.array([[""]], dtype=object)
        return out


_ROW = {
    "numeric": InputEncoder._row_numeric,
    "boolean": InputEncoder._row_boolean,
    "categorical": InputEncoder._row_categorical,
    "text": InputEncoder._row_text,
    "datetime": InputEncoder._row_datetime,
}
