"""Raw values -> the ONNX graph's inputs (see ``_export``'s table), checked like the Python path.

The general path (``InputEncoder._column`` over a pandas Series) reuses ``fulcrum.data._coerce``
(the helpers the Preprocessor uses), so a bad value raises the same SchemaError / DataError,
naming column, value and row. In front of it, fast paths cover the common inputs without
pandas: numpy number arrays as they are, lists of numbers in one conversion, strings parsed
one by one only where there are strings, category labels computed once per distinct value.
A fast path gives exactly the general path's feeds or steps aside (returns None) before
anything is raised or recorded; then the general path runs from the start, so errors and
their order are the general path's own.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ...data._coerce import (
    MISSING_CATEGORY,
    NUMBER_TEXT,
    CellError,
    category_strings,
    parse_bool,
    text_values,
    to_bool,
    to_datetime,
    to_float,
)
from ...data._preprocess import record_unknown
from ...data._schema import blank_na_tokens
from ...errors import ConfigError, SchemaError
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


# --------------------------------------------------------------------------- fast paths
#
# Each returns exactly what the general path (``InputEncoder._column`` over the pandas Series the
# caller's values make) returns, or ``None`` when the values are anything it does not cover; then
# the general path runs and raises its own error. A fast path never raises and has no side effects.

_NONE = type(None)
_NUMBER_TYPES = frozenset({float, int, _NONE})
_NUMBER_OR_TEXT_TYPES = _NUMBER_TYPES | {str}
_BOOL_TYPES = frozenset({bool, np.bool_, str, float, int, _NONE})
_LABEL_TYPES = frozenset({str, int, float, bool, _NONE})
_TEXT_TYPES = frozenset({str, float, _NONE})
#: Row values taken as numbers as they are (the Python types a record or ``to_dict`` gives; never bool).
_ROW_NUMBER_TYPES = frozenset({float, int, _NONE, np.float64, np.float32, np.int64, np.int32})
#: Up to this many rows, category labels are computed per value; above it, per distinct value.
_SMALL = 32
#: Frames with at least this many numeric model columns have them read in one array (see _frame_numbers).
_FRAME_BLOCK_MIN = 8
_EXACT_INT = 2**53  # ints up to this size survive the float64 column pandas makes of ints mixed with floats/None


def _values(x: Any) -> tuple[np.ndarray | None, list[Any] | None]:
    """(ndarray of a numpy dtype, None) or (None, list of Python values): the 1-D data of one column
    as the fast paths take it; (None, None) for anything else."""
    if isinstance(x, np.ndarray):
        if x.ndim == 2 and x.shape[1] == 1:
            x = x[:, 0]
        if x.ndim != 1:
            return None, None
        if x.dtype.kind in "OU":
            return None, x.tolist()
        return x, None
    if type(x) is list:
        return None, x
    if isinstance(x, pd.Series):
        if isinstance(x.dtype, np.dtype):
            return (None, x.to_numpy().tolist()) if x.dtype.kind == "O" else (x.to_numpy(), None)
        if pd.api.types.is_string_dtype(x.dtype):
            return None, x.to_numpy(dtype=object).tolist()
    return None, None


def _mixed_list_ints(values: list[Any], types: set[type]) -> bool:
    """A list whose ints pandas would turn into float64 (ints with floats or None) with a loss."""
    return int in types and (float in types or _NONE in types) and any(
        type(v) is int and not -_EXACT_INT <= v <= _EXACT_INT for v in values
    )


def _fast_numeric(x: Any, tokens: frozenset[str]) -> np.ndarray | None:
    """1-D float64 (NaN = missing; infinities are left for the caller to check) or None."""
    arr, values = _values(x)
    if arr is not None:
        return np.ascontiguousarray(arr, dtype=np.float64) if arr.dtype.kind in "fiu" else None
    if values is None:
        return None
    types = set(map(type, values))
    if types <= _NUMBER_TYPES:
        return np.array(values, dtype=np.float64)
    if not types <= _NUMBER_OR_TEXT_TYPES:
        return None
    out = []  # strings are parsed one by one: a column's na_tokens, then parse_number's rule
    append, match = out.append, NUMBER_TEXT.fullmatch
    for v in values:
        if type(v) is str:
            t = v.strip()
            if not t or t in tokens:
                append(_NAN)
            elif match(t):
                append(float(t))
            else:
                return None
        else:
            append(v)
    return np.array(out, dtype=np.float64)


def _fast_boolean(x: Any) -> np.ndarray | None:
    arr, values = _values(x)
    if arr is not None:
        kind = arr.dtype.kind
        if kind == "b":
            return arr.astype(np.float64)
        if kind in "fiu":
            out = arr.astype(np.float64)
            return out if ((out == 0) | (out == 1) | np.isnan(out)).all() else None
        return None
    if values is None or not set(map(type, values)) <= _BOOL_TYPES:
        return None
    try:
        return np.array([parse_bool(v) for v in values], dtype=np.float64)
    except CellError:
        return None


def _label(v: Any) -> str:
    """``category_strings``'s label of one str, int, float, bool or None."""
    t = type(v)
    if t is str:
        return v.strip() or MISSING_CATEGORY
    if t is float:
        if v != v:
            return MISSING_CATEGORY
        return str(int(v)) if v.is_integer() else str(v)
    if t is bool:
        return "true" if v else "false"
    if v is None:
        return MISSING_CATEGORY
    return str(v)


def _object_array(values: list[Any]) -> np.ndarray:
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr


_Labels = tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]
_NO_LABELS: _Labels = (None, None, None)


def _from_codes(codes: np.ndarray, uniques: list[Any]) -> _Labels:
    """Labels of the distinct values (``table``, with missing last: code -1) spread back over the rows."""
    table = _object_array([_label(u) for u in uniques] + [MISSING_CATEGORY])
    return table[codes], table, codes


def _fast_labels(x: Any) -> _Labels:
    """(category labels: 1-D object array of str, table, codes) — table and codes when the labels
    were computed once per distinct value — or (None, None, None)."""
    if isinstance(x, pd.Series) and not isinstance(x.dtype, np.dtype) and pd.api.types.is_string_dtype(x.dtype):
        if len(x) > _SMALL:  # hash the column once (arrow-backed strings stay in arrow)
            codes, uniques = pd.factorize(x, use_na_sentinel=True)
            ulist = uniques.tolist()
            if all(type(u) is str for u in ulist):
                return _from_codes(codes, ulist)
            return _NO_LABELS
    obj = x.to_numpy() if isinstance(x, pd.Series) and x.dtype == object else x
    if isinstance(obj, np.ndarray) and obj.dtype == object and obj.ndim == 1 and len(obj) > _SMALL:
        codes, uniques = pd.factorize(obj, use_na_sentinel=True)
        ulist = uniques.tolist()
        if all(type(u) is str for u in ulist):  # strings and missing values only: no two labels share a key
            return _from_codes(codes, ulist)
    arr, values = _values(x)
    if arr is not None:
        if arr.dtype.kind not in "biuf":
            return _NO_LABELS
        if len(arr) > _SMALL:
            codes, uniques = pd.factorize(arr, use_na_sentinel=True)
            return _from_codes(codes, uniques.tolist())
        values = arr.tolist()
    elif values is None:
        return _NO_LABELS
    types = set(map(type, values))
    if not types <= _LABEL_TYPES or (type(x) is list and _mixed_list_ints(values, types)):
        return _NO_LABELS
    # per distinct value when the hash table cannot confuse labels (True == 1 == 1.0 as keys)
    if len(values) > _SMALL and not (bool in types and types & {int, float}):
        codes, uniques = pd.factorize(_object_array(values), use_na_sentinel=True)
        return _from_codes(codes, uniques.tolist())
    return _object_array([_label(v) for v in values]), None, None


def _any_inf(numbers: list[np.ndarray]) -> bool:
    if len(numbers) == 1:
        return bool(np.isinf(numbers[0]).any())
    return bool(np.isinf(np.concatenate(numbers)).any())


def _checked_feeds(names: list[str], block: np.ndarray) -> dict[str, np.ndarray] | None:
    """``{name: [N, 1] view}`` of a (columns, N) float64 block without infinite values, else None."""
    if np.isinf(block).any():
        return None
    return dict(zip(names, block.reshape(len(names), -1, 1)))


def _fast_text(x: Any) -> np.ndarray | None:
    """Strings and missing values (None / NaN -> ""); None for anything else."""
    _, values = _values(x)
    if values is None or not set(map(type, values)) <= _TEXT_TYPES:
        return None
    out = []
    append = out.append
    for v in values:
        if type(v) is str:
            append(v)
        elif v is None or v != v:
            append("")
        else:  # a number among the texts: the general path writes numbers its own way
            return None
    return _object_array(out)


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
        # per-column work done once: (step, name, kind, the column's na_tokens)
        self._plan = [(s, s["name"], s["kind"], frozenset(s.get("na_tokens") or ())) for s in self.steps]
        self._numeric_names = [s["name"] for s in self.steps if s["kind"] == "numeric"]
        self._all_numeric = len(self._numeric_names) == len(self.steps)
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
        """The general path: one column as a pandas Series -> its feed (the reference for the fast paths)."""
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

    def _given_column(self, step: Mapping[str, Any], values: Any, n: int | None, on_unknown: str) -> np.ndarray:
        """The general path for one ``encode_columns`` value: shape checks, then the Series pandas makes of it."""
        name = step["name"]
        arr = np.asarray(values)
        squeezed = arr.ndim == 2 and arr.shape[1] == 1
        if squeezed:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise SchemaError(f"Column {name!r} must be one-dimensional (one value per row); got shape {arr.shape}.")
        if n is not None and len(arr) != n:
            raise SchemaError(f"Columns have different lengths: {name!r} has {len(arr)} values, others {n}.")
        # a list is read as pandas reads it (pd.Series infers its dtype: [True, 2.0] stays booleans and fails)
        s = pd.Series(arr) if squeezed or isinstance(values, np.ndarray) else pd.Series(values)
        return self._column(step, s, on_unknown)

    def _fast_feeds(self, get: Any, general: Any, on_unknown: str,
                    ready: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray] | None:
        """The feeds by the fast paths, each column the general path's exactly, or None: then the caller
        runs the general path from the start (it raises the right error in the right order).

        ``get(name)`` is a column's raw values; ``general(step, values, n)`` the general path for one
        column (run here for a column no fast path covers, e.g. dates); ``ready``: numeric feeds already
        made and checked (see ``_checked_feeds``). Infinite numbers are looked for once, over all numeric
        columns, before anything could raise or is returned."""
        feeds: dict[str, np.ndarray] = {}
        numbers: list[np.ndarray] = []  # numeric columns not yet checked for infinite values
        n: int | None = None
        for step, name, kind, tokens in self._plan:
            if ready:
                feed = ready.get(name)
                if feed is not None:
                    if n is None:
                        n = len(feed)
                    elif len(feed) != n:
                        return None
                    feeds[name] = feed
                    continue
            values = get(name)
            table = codes = None
            if kind == "numeric":
                out = _fast_numeric(values, tokens)
            elif kind == "categorical":
                out, table, codes = _fast_labels(values)
            elif kind == "boolean":
                out = _fast_boolean(values)
            elif kind == "text":
                out = _fast_text(values)
            else:
                out = None
            if out is None:  # this column takes the general path, which may raise: earlier ones must be clean
                if numbers and _any_inf(numbers):
                    return None
                numbers = []
                feed = general(step, values, n, on_unknown)
                n = len(feed)
                feeds[name] = feed
                continue
            if n is None:
                n = len(out)
            elif len(out) != n:
                return None
            if kind == "numeric":
                numbers.append(out)
            elif kind == "categorical":
                known = self._category_sets[name]
                if table is not None:  # look up each distinct label once
                    bad = [c not in known for c in table.tolist()]
                    unseen = out[np.array(bad)[codes]].tolist() if any(bad) else []
                else:
                    unseen = [c for c in out.tolist() if c not in known]
                if unseen:
                    if on_unknown == "error" and numbers and _any_inf(numbers):
                        return None
                    self._unknown(name, unseen, on_unknown)
            feeds[name] = out.reshape(-1, 1)
        if numbers and _any_inf(numbers):
            return None
        return feeds

    def _start(self, columns: Any, on_unknown: str) -> None:
        self._check_on_unknown(on_unknown)
        missing = [c for c in self.columns if c not in columns]
        if missing:
            raise self._missing_error(missing)
        self.last_extra_ = [str(c) for c in columns if c not in self.known]
        self.last_unknown_, self.last_unknown_counts_ = {}, {}

    def encode_frame(self, df: pd.DataFrame, on_unknown: str = "ignore") -> dict[str, np.ndarray]:
        """A DataFrame -> feeds. Raises SchemaError / DataError exactly where ``Preprocessor.transform`` would."""
        self._check_on_unknown(on_unknown)
        if not isinstance(df, pd.DataFrame):
            raise SchemaError(f"Expected a pandas DataFrame with columns {self.columns}, got {type(df).__name__}.")
        self._start(df.columns, on_unknown)
        general = lambda step, s, n, unknown: self._column(step, s, unknown)  # noqa: E731
        feeds = self._fast_feeds(df.__getitem__, general, on_unknown, self._frame_numbers(df))
        if feeds is None:
            self.last_unknown_, self.last_unknown_counts_ = {}, {}
            feeds = {step["name"]: self._column(step, df[step["name"]], on_unknown) for step in self.steps}
        return feeds

    def _frame_numbers(self, df: pd.DataFrame) -> dict[str, np.ndarray] | None:
        """The numeric feeds of a frame made only of numpy int/float columns, from one array (taking
        the columns one at a time costs more than the rest of the encoding); None for any other frame."""
        if len(self._numeric_names) < _FRAME_BLOCK_MIN:
            return None
        names = df.columns.tolist()
        if len(set(names)) != len(names) or not all(isinstance(d, np.dtype) and d.kind in "fiu" for d in df.dtypes.tolist()):
            return None
        where = {name: i for i, name in enumerate(names)}
        block = df.to_numpy(dtype=np.float64).T[[where[name] for name in self._numeric_names]]  # one row per column
        return _checked_feeds(self._numeric_names, np.ascontiguousarray(block))

    def _column_numbers(self, cols: Mapping[str, Any]) -> dict[str, np.ndarray] | None:
        """The numeric feeds when every numeric column is a 1-D numpy int/float array of one length (as
        the server's batcher sends them): one array, one check for infinite values; else None."""
        names = self._numeric_names
        if len(names) < 2:
            return None
        arrays = [cols[name] for name in names]
        if set(map(type, arrays)) != {np.ndarray} or len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 1:
            return None  # (different lengths: the general path says which)
        if not all(d.kind in "fiu" for d in {a.dtype for a in arrays}):
            return None
        block = np.concatenate(arrays).astype(np.float64, copy=False).reshape(len(names), -1)
        return _checked_feeds(names, block)

    def encode_columns(self, cols: Mapping[str, Any], on_unknown: str = "ignore") -> dict[str, np.ndarray]:
        """``{column: 1-D array or list}`` -> feeds (no DataFrame is built)."""
        self._start(cols, on_unknown)
        feeds = self._fast_feeds(cols.__getitem__, self._given_column, on_unknown, self._column_numbers(cols))
        if feeds is None:
            self.last_unknown_, self.last_unknown_counts_ = {}, {}
            feeds = self._general_columns(cols, on_unknown)
        return feeds

    def _general_columns(self, cols: Mapping[str, Any], on_unknown: str) -> dict[str, np.ndarray]:
        feeds: dict[str, np.ndarray] = {}
        n = None
        for step in self.steps:
            feeds[step["name"]] = feed = self._given_column(step, cols[step["name"]], n, on_unknown)
            n = len(feed)
        return feeds

    # ------------------------------------------------------------------ one row (the latency path)

    def encode_row(self, row: Mapping[str, Any], on_unknown: str = "ignore") -> dict[str, np.ndarray]:
        """One record -> feeds of shape [1, 1], with plain Python per value (no pandas for common types).

        The numeric values are converted together (one array, one check for infinite values);
        any other value of theirs sends the whole row down the per-value path."""
        if on_unknown != "ignore":
            self._check_on_unknown(on_unknown)
        if self.last_unknown_:
            self.last_unknown_, self.last_unknown_counts_ = {}, {}
        try:
            feeds = self._fast_row(row, on_unknown)
            if feeds is None:
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

    def _fast_row(self, row: Mapping[str, Any], on_unknown: str) -> dict[str, np.ndarray] | None:
        names = self._numeric_names
        if not names:
            return None
        values = [row[name] for name in names]
        if not set(map(type, values)) <= _ROW_NUMBER_TYPES:
            return None
        x = np.array(values, dtype=np.float64)
        if np.isinf(x).any():
            return None
        cells = x.reshape(-1, 1, 1)  # one [1, 1] view per column
        if self._all_numeric:
            return dict(zip(names, cells))
        feeds = {}
        it = iter(cells)
        for step, name, kind, _ in self._plan:  # the other kinds in column order: their errors come in order
            feeds[name] = next(it) if kind == "numeric" else _ROW[kind](self, step, row[name], on_unknown)
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
