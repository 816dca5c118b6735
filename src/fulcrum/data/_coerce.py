"""Value coercions shared by schema inference, preprocessing and profiling.

Each turns one column into plain numbers (NaN = missing) and names the first bad
value and its row position when it cannot.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, SchemaError

TRUE_STRINGS = frozenset({"true", "yes", "y", "t", "1"})
FALSE_STRINGS = frozenset({"false", "no", "n", "f", "0"})
DATETIME_PARTS = ("year", "month", "day_of_week", "day_of_year")
MISSING_CATEGORY = "<missing>"
_TOKEN = re.compile(r"[a-z0-9]+")


def is_plain_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype)


def missing_mask(s: pd.Series) -> np.ndarray:
    """NaN, None, NaT and empty or blank strings are missing."""
    mask = s.isna().to_numpy(dtype=bool, copy=True)
    if s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
        mask |= np.fromiter((isinstance(v, str) and not v.strip() for v in s), dtype=bool, count=len(s))
    return mask


def _first_bad(s: pd.Series, bad: np.ndarray, column: str, expected: str) -> SchemaError:
    pos = int(np.flatnonzero(bad)[0])
    return SchemaError(
        f"Column {column!r} holds non-{expected} value {s.iloc[pos]!r} at row {pos} (0-based); "
        f"{expected} columns accept {_ACCEPTS[expected]} or empty cells for missing values."
    )


_ACCEPTS = {
    "numeric": "numbers",
    "boolean": "true/false, yes/no, y/n, t/f or 1/0",
    "datetime": "dates such as 2024-01-31 or 2024-01-31T12:00:00",
}


def to_float(s: pd.Series, column: str) -> np.ndarray:
    """A numeric column as float64 (NaN = missing). Raises SchemaError / DataError (inf)."""
    if pd.api.types.is_bool_dtype(s.dtype):
        out = s.astype("float64").to_numpy(dtype=np.float64, na_value=np.nan)
    elif is_plain_numeric(s):
        out = s.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        missing = missing_mask(s)
        vals = s.where(~missing).astype(object)
        num = pd.to_numeric(vals.map(_strip, na_action="ignore"), errors="coerce")
        out = np.asarray(num, dtype=np.float64)
        bad = np.isnan(out) & ~missing
        if bad.any():
            raise _first_bad(s, bad, column, "numeric")
    if np.isinf(out).any():
        pos = int(np.flatnonzero(np.isinf(out))[0])
        raise DataError(
            f"Column {column!r} holds an infinite value at row {pos} (0-based); "
            "replace it with a finite number, or leave the cell empty to mark it missing."
        )
    return out


def _strip(v: Any) -> Any:
    return v.strip() if isinstance(v, str) else v


def _bool_value(v: Any) -> float:
    if isinstance(v, (bool, np.bool_)):
        return float(v)
    if isinstance(v, (int, float, np.integer, np.floating)) and v in (0, 1):
        return float(v)
    if isinstance(v, str):
        t = v.strip().lower()
        if t in TRUE_STRINGS:
            return 1.0
        if t in FALSE_STRINGS:
            return 0.0
    return -1.0  # marker for "not a boolean"


def looks_boolean(s: pd.Series) -> bool:
    """True for bool dtypes, and for string/object columns holding only boolean words."""
    if pd.api.types.is_bool_dtype(s.dtype):
        return True
    if is_plain_numeric(s):
        return False
    vals = s[~missing_mask(s)]
    if vals.empty:
        return False
    if all(isinstance(v, (bool, np.bool_)) for v in vals):
        return True
    words = {str(v).strip().lower() for v in vals}
    return words <= (TRUE_STRINGS | FALSE_STRINGS) and not words <= {"0", "1"}


def to_bool(s: pd.Series, column: str) -> np.ndarray:
    """A boolean column as 0/1 float64 (NaN = missing). Raises SchemaError on other values."""
    missing = missing_mask(s)
    out = np.full(len(s), np.nan)
    present = np.flatnonzero(~missing)
    if present.size:
        vals = np.array([_bool_value(v) for v in s.iloc[present]], dtype=np.float64)
        out[present] = vals
        bad = np.zeros(len(s), dtype=bool)
        bad[present] = vals < 0
        if bad.any():
            raise _first_bad(s, bad, column, "boolean")
    return out


def to_datetime(s: pd.Series, column: str, *, strict: bool = True) -> pd.Series:
    """A column as naive datetimes (UTC for zone-aware input; NaT = missing).

    With ``strict`` an unparsable non-missing value raises SchemaError.
    """
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        out = s.reset_index(drop=True)
        if getattr(out.dt, "tz", None) is not None:
            out = out.dt.tz_convert("UTC").dt.tz_localize(None)
        return out
    missing = missing_mask(s)
    texts = pd.Series([None if m else str(v).strip() for v, m in zip(s.to_numpy(dtype=object), missing)], dtype=object)
    parsed = pd.to_datetime(texts, format="mixed", errors="coerce", utc=True).dt.tz_localize(None)
    if strict:
        bad = parsed.isna().to_numpy() & ~missing
        if bad.any():
            raise _first_bad(s, bad, column, "datetime")
    return parsed


def datetime_parts(dt: pd.Series) -> dict[str, np.ndarray]:
    """year, month, day-of-week (Monday=0) and day-of-year as float64 (NaN = missing)."""
    acc = dt.dt
    return {part: getattr(acc, part).to_numpy(dtype=np.float64, na_value=np.nan) for part in DATETIME_PARTS}


def category_strings(s: pd.Series) -> np.ndarray:
    """Category labels as strings; missing values become ``MISSING_CATEGORY``.

    Integral numbers print without a decimal point so 3 and 3.0 are one category.
    """
    missing = missing_mask(s)
    out = np.empty(len(s), dtype=object)
    for i, (v, m) in enumerate(zip(s.to_numpy(dtype=object), missing)):
        out[i] = MISSING_CATEGORY if m else _category_label(v)
    return out


def _category_label(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    if isinstance(v, (int, np.integer, float, np.floating)):
        return str(v.item() if hasattr(v, "item") else v)
    return str(v).strip()


def tokenize(text: str) -> list[str]:
    """Lowercase runs of [a-z0-9]."""
    return _TOKEN.findall(text.lower())


def text_values(s: pd.Series) -> list[str]:
    """Each cell as a string; missing cells become ''."""
    missing = missing_mask(s)
    return ["" if m else str(v) for v, m in zip(s.to_numpy(dtype=object), missing)]
