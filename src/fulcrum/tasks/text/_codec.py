"""Raw user texts -> the graph's feed ``text`` (N, 1) object array, with the same checks on every path."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ...errors import SchemaError
from .._codec import OneColumnCodec
from ._data import check_text

__all__ = ["TextCodec", "INPUT"]

INPUT = "text"


class TextCodec(OneColumnCodec):
    """Encodes texts for a text package's graph.

    Accepted column names: ``text`` and the training table's text column (e.g. ``review``). Each text
    must be a non-empty UTF-8 string without NUL of at most ``max_chars`` characters; anything else is a
    :class:`~fulcrum.errors.SchemaError` naming the row and the fix. Other columns are ignored
    (``last_extra_`` lists them).
    """

    INPUT, WHAT, PLURAL, SINGLE = INPUT, "text", "texts", "a single string"

    def __init__(self, max_chars: int, column: str | None = None) -> None:
        self.max_chars = int(max_chars)
        self._init_column(column)
        self.input_names = [INPUT]

    def _encode(self, values: Sequence[Any], name: str, rows: bool = True) -> dict[str, np.ndarray]:
        out = np.empty((len(values), 1), dtype=object)
        for i, v in enumerate(values):
            # "at row N (0-based)", as the tabular codec says it (predict_file turns it into the file's row)
            out[i, 0] = check_text(v, self.max_chars, where=f"{name!r} at row {i} (0-based)" if rows else repr(name))
        return {INPUT: out}

    def _as_rows(self, values: Any, name: str) -> list[Any]:
        arr = np.asarray(values, dtype=object)
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise SchemaError(f"{name!r} must be a list of texts or an (N, 1) array, got shape {arr.shape}.")
        return list(arr)

    def dummy(self) -> dict[str, np.ndarray]:
        return {INPUT: np.asarray([["a short example text"]], dtype=object)}
