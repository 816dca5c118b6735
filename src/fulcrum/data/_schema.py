"""Schema inference: what kind of feature each column is, and which columns to drop."""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections import Counter
from typing import Any, Literal, Sequence

import numpy as np
import pandas as pd

from ..errors import DataError, SchemaError
from ._coerce import is_plain_numeric, looks_boolean, missing_mask, to_datetime, to_float, tokenize

__all__ = ["ColumnSpec", "Schema", "infer_schema", "COLUMN_KINDS", "blank_na_tokens"]

ColumnKind = Literal["numeric", "categorical", "boolean", "datetime", "text", "identifier"]
COLUMN_KINDS: tuple[str, ...] = ("numeric", "categorical", "boolean", "datetime", "text", "identifier")

#: A string/int column with at least this many non-missing values, nearly all unique, is an identifier.
IDENTIFIER_MIN_ROWS = 20
IDENTIFIER_UNIQUE_RATIO = 0.95
#: Free text: at least this many words per value on average, and mostly distinct values.
TEXT_MIN_WORDS = 3.0
TEXT_MIN_UNIQUE_RATIO = 0.5
#: A string column is datetime when at least this fraction of its values looks like and parses as a date.
DATETIME_MIN_FRACTION = 0.9
#: A column whose non-missing cells are all numbers except at most this share (5 %) stays numeric:
#: the other cells are read as missing, at training and at prediction time alike, with a notice.
#: So one needs at least 20 numbers per unparsable cell. Not applied when those cells hold more than
#: NUMERIC_MAX_NA_TOKENS distinct texts (that is data, not a few missing-value markers), nor to a
#: column whose values are all distinct and whose numbers are all integers (codes or ids: "1042", "A-17").
NUMERIC_MAX_BAD_FRACTION = 0.05
NUMERIC_MAX_NA_TOKENS = 20
#: A column that is at least this share numbers but not numeric by the rule above gets a notice too.
NUMERIC_NOTICE_FRACTION = 0.8
_EXAMPLES = 3
_ID_NAME = re.compile(r"(^|[^a-z])(id|ids|uuid|guid|key|index|idx)$|^(row|rownum|row_?number|record)$|[a-z]Id$|ID$")
_DATE_LIKE = re.compile(
    r"^\s*(\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}"
    r"|\d{1,2}\s+[A-Za-z]{3,9}\.?\s+\d{4}|[A-Za-z]{3,9}\.?\s+\d{1,2},?\s+\d{4})"
)


@dataclasses.dataclass
class ColumnSpec:
    """One input column: its name, its kind and the dtype it was read with.

    ``na_tokens`` (numeric columns only): the texts that were not numbers in training and are read
    as missing values, then and at prediction time (e.g. ``["n/a", "42,1"]``; see NUMERIC_MAX_BAD_FRACTION).
    """

    name: str
    kind: ColumnKind
    dtype: str
    na_tokens: list[str] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        if self.kind not in COLUMN_KINDS:
            raise SchemaError(f"Column {self.name!r} has unknown kind {self.kind!r}; use one of {', '.join(COLUMN_KINDS)}.")


@dataclasses.dataclass
class Schema:
    """Every non-target column with its kind, the target, and the columns dropped (name, reason).

    ``feature_columns`` are the columns a model uses: ``columns`` minus ``dropped``.
    ``notices`` are what inference decided that the user should hear about (not stored).
    """

    columns: list[ColumnSpec]
    target: str | None = None
    dropped: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    notices: list[str] = dataclasses.field(default_factory=list, compare=False, repr=False)

    @property
    def feature_columns(self) -> list[str]:
        gone = {name for name, _ in self.dropped}
        return [c.name for c in self.columns if c.name not in gone]

    @property
    def features(self) -> list[ColumnSpec]:
        """The ColumnSpecs of ``feature_columns``."""
        gone = {name for name, _ in self.dropped}
        return [c for c in self.columns if c.name not in gone]

    def __getitem__(self, name: str) -> ColumnSpec:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": [_spec_dict(c) for c in self.columns],
            "target": self.target,
            "dropped": [[name, reason] for name, reason in self.dropped],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schema:
        try:
            return cls(
                columns=[
                    ColumnSpec(str(c["name"]), c["kind"], str(c["dtype"]), [str(t) for t in c.get("na_tokens", [])])
                    for c in data["columns"]
                ],
                target=data.get("target"),
                dropped=[(str(n), str(r)) for n, r in data.get("dropped", [])],
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, SchemaError):
                raise
            raise SchemaError(
                f"Schema dict is malformed ({exc!r}); it needs 'columns' as a list of {{name, kind, dtype}}, "
                "'target' and 'dropped' as [name, reason] pairs, as written by Schema.to_dict()."
            ) from exc


def check_column(df: pd.DataFrame, name: str, what: str = "Target") -> None:
    """Raise DataError naming ``name`` and the available columns if ``df`` lacks it."""
    if name in df.columns:
        return
    cols = [str(c) for c in df.columns]
    close = [c for c in cols if c.lower() == str(name).lower()] or difflib.get_close_matches(str(name), cols, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise DataError(f"{what} column {name!r} is not in the data.{hint} Available columns: {', '.join(map(repr, cols))}.")


def _spec_dict(c: ColumnSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"name": c.name, "kind": c.kind, "dtype": c.dtype}
    if c.na_tokens:  # only where used: clean columns are stored as before
        out["na_tokens"] = list(c.na_tokens)
    return out


def _token(v: Any) -> str:
    return v.strip() if isinstance(v, str) else str(v).strip()


def na_token_mask(s: pd.Series, tokens: Sequence[str]) -> np.ndarray:
    """Which cells of ``s`` hold one of ``tokens`` (compared after stripping surrounding spaces)."""
    if not tokens or is_plain_numeric(s) or pd.api.types.is_bool_dtype(s.dtype):
        return np.zeros(len(s), dtype=bool)
    wanted = frozenset(tokens)
    return np.fromiter(
        (v is not None and not isinstance(v, (int, float, np.number)) and _token(v) in wanted for v in s.to_numpy(dtype=object)),
        dtype=bool, count=len(s),
    )


def blank_na_tokens(s: pd.Series, tokens: Sequence[str]) -> pd.Series:
    """``s`` with every cell holding one of the column's ``na_tokens`` made missing (NaN).

    The one rule for training (Preprocessor, profile) and prediction (Python and ONNX input paths).
    """
    mask = na_token_mask(s, tokens)
    if not mask.any():
        return s
    return s.astype(object).where(~mask, np.nan)


def infer_schema(df: pd.DataFrame, target: str | None = None) -> Schema:
    """Infer each non-target column's kind; identifiers, empty and constant columns are dropped with a reason.

    A column of numbers with a few unparsable cells (see NUMERIC_MAX_BAD_FRACTION) stays numeric:
    those texts are recorded as its ``na_tokens`` and read as missing, and ``notices`` says so.
    """
    if target is not None:
        check_column(df, target)
    columns: list[ColumnSpec] = []
    dropped: list[tuple[str, str]] = []
    notices: list[str] = []
    for name in df.columns:
        if name == target:
            continue
        kind, reason, tokens, notice = _infer_column(str(name), df[name])
        columns.append(ColumnSpec(str(name), kind, str(df[name].dtype), tokens))
        if reason is not None:
            dropped.append((str(name), reason))
        if notice is not None:
            notices.append(notice)
    return Schema(columns=columns, target=target, dropped=dropped, notices=notices)


def _infer_column(name: str, s: pd.Series) -> tuple[ColumnKind, str | None, list[str], str | None]:
    """(kind, drop reason or None, na_tokens, notice or None)."""
    missing = missing_mask(s)
    present = s[~missing]
    n = len(present)
    base, tokens, near = _base_kind(name, s, present)
    notice = None
    if tokens:
        bad = na_token_mask(present, tokens)
        counts = Counter(_token(v) for v in present[bad])
        shown = ", ".join(f"{t!r}" for t, _ in counts.most_common(_EXAMPLES)) + (" ..." if len(counts) > _EXAMPLES else "")
        notice = (
            f"column {name!r} is numeric, but {int(bad.sum())} cell(s) of {n} are not numbers and are read as "
            f"missing values: {shown}; the same text is read as missing at prediction time. "
            "Correct those cells if they hold real values."
        )
        present = present[~bad]
        n = len(present)
    if n == 0:
        return base, "all values are missing", tokens, notice
    nunique = present.astype(str).nunique() if base in ("categorical", "text") else present.nunique()
    kind: ColumnKind = base
    reason = None
    if nunique == 1:
        first = present.iloc[0]
        reason = f"constant: every value is {first.item() if isinstance(first, np.generic) else first!r}"
    elif base == "numeric" and _integer_identifier(name, present, nunique):
        kind, reason = "identifier", "identifier: unique integer per row (an id or row number), carries no general signal"
    elif base == "text":
        ratio = nunique / n
        words = float(np.mean([len(tokenize(str(v))) for v in present]))
        if words >= TEXT_MIN_WORDS and ratio >= TEXT_MIN_UNIQUE_RATIO:
            kind = "text"
        elif n >= IDENTIFIER_MIN_ROWS and ratio >= IDENTIFIER_UNIQUE_RATIO:
            kind, reason = "identifier", f"identifier: {nunique} distinct values in {n} rows (an id, code or name)"
        else:
            kind = "categorical"
    if near is not None and kind != "numeric":
        notice = f"column {name!r} {near}; it is treated as {kind}. Correct or empty those cells to make it numeric."
    return kind, reason, tokens, notice


def _base_kind(name: str, s: pd.Series, present: pd.Series) -> tuple[ColumnKind, list[str], str | None]:
    """(kind, na_tokens, 'mostly numbers' description for a notice when the column is not made numeric)."""
    if looks_boolean(s):
        return "boolean", [], None
    if is_plain_numeric(s):
        return "numeric", [], None
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return "datetime", [], None
    if isinstance(s.dtype, pd.CategoricalDtype) or present.empty:
        return "categorical", [], None
    all_str = bool(present.map(lambda v: isinstance(v, str)).all())
    values = present.str.strip() if all_str else present.map(lambda v: v.strip() if isinstance(v, str) else v)
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna().to_numpy()
    if not bad.any():
        return "numeric", [], None
    tokens, near = _numeric_with_tokens(name, s, values, numbers, bad)
    if tokens:
        return "numeric", tokens, None
    if not all_str:  # Python numbers (e.g. from JSON) mixed with other things
        return "categorical", [], near
    if values.str.match(_DATE_LIKE).mean() >= DATETIME_MIN_FRACTION:
        parsed = to_datetime(values, "", strict=False)
        if parsed.notna().mean() >= DATETIME_MIN_FRACTION:
            return "datetime", [], None
    return "text", [], near  # refined to categorical / text / identifier by the caller


def _numeric_with_tokens(
    name: str, s: pd.Series, values: pd.Series, numbers: pd.Series, bad: np.ndarray
) -> tuple[list[str], str | None]:
    """The na_tokens that make this mostly-numeric column numeric, or ([], notice text or None)."""
    n, n_bad = len(values), int(bad.sum())
    if n_bad > n * (1 - NUMERIC_NOTICE_FRACTION):
        return [], None  # not mostly numbers: a categorical or text column, nothing to say
    counts = Counter(_token(v) for v in values[bad])
    shown = ", ".join(f"{t!r}" for t, _ in counts.most_common(_EXAMPLES))
    near = f"holds numbers except for {n_bad} cell(s) of {n} ({n_bad / n:.0%}; e.g. {shown})"
    if n_bad > n * NUMERIC_MAX_BAD_FRACTION or len(counts) > NUMERIC_MAX_NA_TOKENS:
        return [], near
    good = numbers[~bad].to_numpy(dtype=np.float64)
    if values.astype(str).nunique() == n and np.all(np.mod(good, 1) == 0):
        return [], None  # all distinct, integral numbers: codes or ids ("1042", "A-17"), not measurements
    tokens = sorted(counts)
    try:  # the value parser that training and prediction use must agree with this split
        to_float(blank_na_tokens(s, tokens), name)
    except (SchemaError, DataError):
        return [], near
    return tokens, None


def _integer_identifier(name: str, present: pd.Series, nunique: int) -> bool:
    n = len(present)
    if n < IDENTIFIER_MIN_ROWS or nunique != n:
        return False
    values = pd.to_numeric(present, errors="coerce").to_numpy(dtype=np.float64)
    if not np.all(np.mod(values, 1) == 0):
        return False
    if _ID_NAME.search(name) or _ID_NAME.search(name.lower()):
        return True
    steps = np.diff(values)
    return bool(np.all(steps > 0) or np.all(steps < 0))
