"""Schema inference: what kind of feature each column is, and which columns to drop."""

from __future__ import annotations

import dataclasses
import difflib
import re
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..errors import DataError, SchemaError
from ._coerce import is_plain_numeric, looks_boolean, missing_mask, tokenize, to_datetime

__all__ = ["ColumnSpec", "Schema", "infer_schema", "COLUMN_KINDS"]

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
_ID_NAME = re.compile(r"(^|[^a-z])(id|ids|uuid|guid|key|index|idx)$|^(row|rownum|row_?number|record)$|[a-z]Id$|ID$")
_DATE_LIKE = re.compile(
    r"^\s*(\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}"
    r"|\d{1,2}\s+[A-Za-z]{3,9}\.?\s+\d{4}|[A-Za-z]{3,9}\.?\s+\d{1,2},?\s+\d{4})"
)


@dataclasses.dataclass
class ColumnSpec:
    """One input column: its name, its kind and the dtype it was read with."""

    name: str
    kind: ColumnKind
    dtype: str

    def __post_init__(self) -> None:
        if self.kind not in COLUMN_KINDS:
            raise SchemaError(f"Column {self.name!r} has unknown kind {self.kind!r}; use one of {', '.join(COLUMN_KINDS)}.")


@dataclasses.dataclass
class Schema:
    """Every non-target column with its kind, the target, and the columns dropped (name, reason).

    ``feature_columns`` are the columns a model uses: ``columns`` minus ``dropped``.
    """

    columns: list[ColumnSpec]
    target: str | None = None
    dropped: list[tuple[str, str]] = dataclasses.field(default_factory=list)

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
            "columns": [dataclasses.asdict(c) for c in self.columns],
            "target": self.target,
            "dropped": [[name, reason] for name, reason in self.dropped],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schema:
        try:
            return cls(
                columns=[ColumnSpec(str(c["name"]), c["kind"], str(c["dtype"])) for c in data["columns"]],
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


def infer_schema(df: pd.DataFrame, target: str | None = None) -> Schema:
    """Infer each non-target column's kind; identifiers, empty and constant columns are dropped with a reason."""
    if target is not None:
        check_column(df, target)
    columns: list[ColumnSpec] = []
    dropped: list[tuple[str, str]] = []
    for name in df.columns:
        if name == target:
            continue
        kind, reason = _infer_column(str(name), df[name])
        columns.append(ColumnSpec(str(name), kind, str(df[name].dtype)))
        if reason is not None:
            dropped.append((str(name), reason))
    return Schema(columns=columns, target=target, dropped=dropped)


def _infer_column(name: str, s: pd.Series) -> tuple[ColumnKind, str | None]:
    """(kind, drop reason or None)."""
    missing = missing_mask(s)
    present = s[~missing]
    n = len(present)
    base = _base_kind(s, present)
    if n == 0:
        return base, "all values are missing"
    nunique = present.astype(str).nunique() if base in ("categorical", "text") else present.nunique()
    if nunique == 1:
        first = present.iloc[0]
        return base, f"constant: every value is {first.item() if isinstance(first, np.generic) else first!r}"
    if base == "numeric" and _integer_identifier(name, present, nunique):
        return "identifier", "identifier: unique integer per row (an id or row number), carries no general signal"
    if base == "text":
        ratio = nunique / n
        words = float(np.mean([len(tokenize(str(v))) for v in present]))
        if words >= TEXT_MIN_WORDS and ratio >= TEXT_MIN_UNIQUE_RATIO:
            return "text", None
        if n >= IDENTIFIER_MIN_ROWS and ratio >= IDENTIFIER_UNIQUE_RATIO:
            return "identifier", f"identifier: {nunique} distinct values in {n} rows (an id, code or name)"
    return ("categorical" if base == "text" else base), None


def _base_kind(s: pd.Series, present: pd.Series) -> ColumnKind:
    if looks_boolean(s):
        return "boolean"
    if is_plain_numeric(s):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return "datetime"
    if isinstance(s.dtype, pd.CategoricalDtype) or present.empty:
        return "categorical"
    if not present.map(lambda v: isinstance(v, str)).all():
        # Python numbers (e.g. from JSON) in an object column
        if pd.to_numeric(present, errors="coerce").notna().all():
            return "numeric"
        return "categorical"
    stripped = present.str.strip()
    if pd.to_numeric(stripped, errors="coerce").notna().all():
        return "numeric"
    if stripped.str.match(_DATE_LIKE).mean() >= DATETIME_MIN_FRACTION:
        parsed = to_datetime(stripped, "", strict=False)
        if parsed.notna().mean() >= DATETIME_MIN_FRACTION:
            return "datetime"
    return "text"  # refined to categorical / text / identifier by the caller


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
