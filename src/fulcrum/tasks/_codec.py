"""What the codecs of tasks whose graph input is built from one request column (image, audio, text) share: which
column a request uses (the task's own name or the training table's), the per-row / per-column / per-record entry
points of the InputCodec protocol (tasks/_base.py), and which other columns were ignored (``last_extra_``)."""

from __future__ import annotations

from typing import Any, ClassVar, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import SchemaError

__all__ = ["OneColumnCodec"]


class OneColumnCodec:
    """A subclass sets ``INPUT`` (the request column's own name), ``WHAT`` (``image``: "No image column") and
    ``PLURAL`` (``images``: "a list of images"), calls ``_init_column(column)``, and implements ``_encode(values,
    name, rows)`` (one value per row -> the graph's feeds) and, where a column may arrive as an array,
    ``_as_rows(values, name)``."""

    INPUT: ClassVar[str]
    WHAT: ClassVar[str]
    PLURAL: ClassVar[str]
    SINGLE: ClassVar[str] = "a single value"

    def _init_column(self, column: str | None) -> None:
        self.column = column
        self.last_extra_: list[str] | None = None
        self.last_unknown_: dict[str, list[str]] | None = None

    def _names(self) -> list[str]:
        return [self.INPUT] + ([self.column] if self.column and self.column != self.INPUT else [])

    def _pick(self, keys: Sequence[Any]) -> str:
        for name in self._names():
            if name in keys:
                return name
        wanted = " or ".join(repr(n) for n in self._names())
        raise SchemaError(f"No {self.WHAT} column: the input needs a column {wanted}; got {sorted(map(str, keys))[:10]}.")

    def _done(self, keys: Sequence[Any]) -> None:
        self.last_extra_ = [str(c) for c in keys if c not in self._names()]
        self.last_unknown_ = {}

    def _encode(self, values: Sequence[Any], name: str, rows: bool = True) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _as_rows(self, values: Any, name: str) -> list[Any]:
        """A request column (list, array) -> one value per row."""
        return values if isinstance(values, list) else list(np.asarray(values, dtype=object).reshape(-1))

    def encode_frame(self, df: pd.DataFrame, on_unknown: str = "ignore") -> dict[str, np.ndarray]:
        name = self._pick(list(df.columns))
        self._done(list(df.columns))
        return self._encode(df[name].tolist(), name)

    def encode_columns(self, cols: Mapping[str, Any], on_unknown: str = "ignore") -> dict[str, np.ndarray]:
        name = self._pick(list(cols))
        values = cols[name]
        if isinstance(values, (str, bytes)):
            raise SchemaError(f"{name!r} must be a list of {self.PLURAL} (one per row), got {self.SINGLE}; wrap it in "
                              "a list.")
        values = self._as_rows(values, name)
        self._done(list(cols))
        return self._encode(values, name)

    def encode_row(self, row: Mapping[str, Any], on_unknown: str = "ignore") -> dict[str, np.ndarray]:
        name = self._pick(list(row))
        self._done(list(row))
        return self._encode([row[name]], name, rows=False)
