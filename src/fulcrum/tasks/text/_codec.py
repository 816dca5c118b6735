"""Raw user texts -> the graph's feed ``text`` (N, 1) object array, with the same checks on every path."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ...errors import SchemaError
from ._data import check_text

__all__ = ["TextCodec", "INPUT"]

INPUT = "text"


class TextCodec:
    """Encodes texts for a text package's graph.

    Accepted column names: ``text`` and the training table's text column (e.g. ``review``). Each text
    must be a non-empty UTF-8 string without NUL of at most ``max_chars`` characters; anything else is a
    :class:`~fulcrum.errors.SchemaError` naming the row and the fix. Other columns are ignored
    (``last_extra_`` lists them).
    """

    def __init__(self, max_chars: int, column: str | None = None) -> None:
        self.max_chars = int(max_chars)
        self.column = column
        self.input_names = [INPUT]
        self.last_extra_: list[str] | None = None
        self.last_unknown_: dict[str, list[str]] | None = None

    def _names(self) -> list[str]:
        return [INPUT] + ([self.column] if self.column and self.column != INPUT else [])

    def _pick(self, keys: Sequence[Any]) -> str:
        for name in self._names():
            if name in keys:
                return name
        wanted = " or ".join(repr(n) for n in self._names())
        raise SchemaError(f"No text column: the input needs a column {wanted}; got {sorted(map(str, keys))[:10]}.")

    def _encode(self, values: Sequence[Any], name: str, rows: bool = True) -> dict[str, np.ndarray]:
        out = np.empty((len(values), 1), dtype=object)
        for i, v in enumerate(values):
            # "at row N (0-based)", as the tabular codec says it (predict_file turns it into the file's row)
            out[i, 0] = check_text(v, self.max_chars, where=f"{name!r} at row {i} (0-based)" if rows else repr(name))
        return {INPUT: out}

    def encode_frame(self, df: pd.DataFrame, on_unknown: str = "ignore") -> dict[str, np.ndarray]:
        name = self._pick(list(df.columns))
        self.last_extra_ = [str(c) for c in df.columns if c not in self._names()]
        self.last_unknown_ = {}
        return self._encode(df[name].tolist(), name)

    def encode_columns(self, cols: Mapping[str, Any], on_unknown: str = "ignore") -> dict[str, np.ndarray]:
        name = self._pick(list(cols))
        values = cols[name]
        if isinstance(values, (str, bytes)):
            raise SchemaError(f"{name!r} must be a list of texts (one per row), got a single string; wrap it in a list.")
        arr = np.asarray(values, dtype=object)
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise SchemaError(f"{name!r} must be a list of texts or an (N, 1) array, got shape {arr.shape}.")
        self.last_extra_ = [str(c) for c in cols if c not in self._names()]
        self.last_unknown_ = {}
        return self._encode(list(arr), name)

    def encode_row(self, row: Mapping[str, Any], on_unknown: str = "ignore") -> dict[str, np.ndarray]:
        name = self._pick(list(row))
        self.last_extra_ = [str(c) for c in row if c not in self._names()]
        self.last_unknown_ = {}
        return self._encode([row[name]], name, rows=False)

    def dummy(self) -> dict[str, np.ndarray]:
        return {INPUT: np.asarray([["a short example text"]], dtype=object)}
