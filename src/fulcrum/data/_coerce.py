"""Value coercions shared by schema inference, preprocessing, profiling and the server.

The cell rules here are the only ones: the CLI and Python API (through the Preprocessor
and the ONNX input encoder) and both server routes (friendly JSON and KServe v2, through
``fulcrum.serve._model``) parse values with :func:`parse_number` and :func:`parse_bool`.

* missing: ``None``/null, NaN, NaT and empty or blank strings.
* numeric: a number (JSON number, Python/numpy int or float; never a boolean), or a plain
  decimal string: optional sign, ASCII digits, optional fraction, optional exponent, and
  nothing else but surrounding spaces (``"-1.5e3"`` yes; ``"5_1"``, ``"0x10"``, ``"nan"``,
  ``"inf"``, ``"1,5"``, ``"true"`` no). Infinite values are refused.
* boolean: true/false, or the words true/false, yes/no, y/n, t/f, 1/0 (any case), or the
  numbers 0 and 1.
* categorical: any string, number or boolean; its label is :func:`_category_label`'s.
* text and datetime: strings (datetime: what ``pandas.to_datetime`` reads, e.g. ISO 8601).

Each column function turns one column into plain numbers (NaN = missing) and names the
first bad value and its row position when it cannot.
"""

from __future__ import annotations

import math
import numbers
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

#: A plain decimal number: what a numeric cell may hold as text (JSON Schema ``pattern`` too).
NUMBER_PATTERN = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_SPACE = r"[ \t\r\n]*"
#: A whole numeric cell as text: a plain decimal between optional spaces, or blank (missing).
NUMBER_TEXT_PATTERN = f"^{_SPACE}({NUMBER_PATTERN})?{_SPACE}$"
_NUMBER_TEXT = re.compile(NUMBER_PATTERN)
#: ``NUMBER_PATTERN`` compiled: ``fullmatch`` it against a stripped cell (what :func:`parse_number` does).
NUMBER_TEXT = _NUMBER_TEXT
NUMBER_RULE = (
    "numbers, or plain decimal strings such as 12, -0.5 or 1.5e3 (no underscores, hex, "
    "nan/inf words or true/false)"
)
BOOLEAN_RULE = "true/false, yes/no, y/n, t/f or 1/0"


class CellError(ValueError):
    """A cell that does not follow its kind's rules (the message says what was expected)."""


def _is_missing_scalar(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    if isinstance(v, (float, np.floating)):
        return v != v
    if isinstance(v, np.datetime64):
        return bool(np.isnat(v))
    return False


def parse_number(v: Any) -> float:
    """One numeric cell -> float (NaN = missing). CellError for anything but a number or a
    plain decimal string; infinite values come back as inf (callers refuse them)."""
    t = type(v)
    if t is float or t is int:
        return float(v)
    if isinstance(v, (bool, np.bool_)):
        raise CellError(f"{v!r} is a boolean, not a number; numeric values are {NUMBER_RULE}")
    if isinstance(v, str):
        text = v.strip()
        if _NUMBER_TEXT.fullmatch(text):
            return float(text)
        if not text:
            return math.nan
        raise CellError(f"{v!r} is not a number; numeric values are {NUMBER_RULE}")
    if _is_missing_scalar(v):
        return math.nan
    if isinstance(v, numbers.Real):
        return float(v)
    raise CellError(f"{v!r} is not a number; numeric values are {NUMBER_RULE}")


def parse_bool(v: Any) -> float:
    """One boolean cell -> 1.0 / 0.0 (NaN = missing). CellError for anything else."""
    if isinstance(v, (bool, np.bool_)):
        return float(v)
    if isinstance(v, str):
        t = v.strip().lower()
        if t in TRUE_STRINGS:
            return 1.0
        if t in FALSE_STRINGS:
            return 0.0
        if not t:
            return math.nan
    elif _is_missing_scalar(v):
        return math.nan
    elif isinstance(v, numbers.Real) and v in (0, 1):
        return float(v)
    raise CellError(f"{v!r} is not a boolean; boolean values are {BOOLEAN_RULE}")


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
    value = s.iloc[pos]
    if isinstance(value, np.generic):  # np.True_ -> True, np.float64(1.0) -> 1.0
        value = value.item()
    return SchemaError(
        f"Column {column!r} holds non-{expected} value {value!r} at row {pos} (0-based); "
        f"{expected} columns accept {_ACCEPTS[expected]} or empty cells for missing values."
    )


_ACCEPTS = {
    "numeric": NUMBER_RULE,
    "boolean": BOOLEAN_RULE,
    "datetime": "dates such as 2024-01-31 or 2024-01-31T12:00:00",
}


def to_float(s: pd.Series, column: str) -> np.ndarray:
    """A numeric column as float64 (NaN = missing). Raises SchemaError (a value that is not a
    number, booleans included: see :func:`parse_number`) or DataError (an infinite value)."""
    if pd.api.types.is_bool_dtype(s.dtype):
        bad = ~missing_mask(s)
        if bad.any():
            raise _first_bad(s, bad, column, "numeric")
        out = np.full(len(s), np.nan)
    elif is_plain_numeric(s):
        out = s.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        values = s.to_numpy(dtype=object)
        out = np.empty(len(values), dtype=np.float64)
        for i, v in enumerate(values.tolist()):
            try:
                out[i] = parse_number(v)
            except CellError:
                bad = np.zeros(len(values), dtype=bool)
                bad[i] = True
                raise _first_bad(s, bad, column, "numeric") from None
    if np.isinf(out).any():
        pos = int(np.flatnonzero(np.isinf(out))[0])
        raise DataError(
            f"Column {column!r} holds an infinite value at row {pos} (0-based); "
            "replace it with a finite number, or leave the cell empty to mark it missing."
        )
    return out


def _bool_value(v: Any) -> float:
    try:
        return parse_bool(v)
    except CellError:
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
