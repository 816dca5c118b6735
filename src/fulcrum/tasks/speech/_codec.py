"""Raw user clips -> the graph's feed ``audio`` float32 (N, S): mono PCM at 16 kHz, cut or padded to S samples.

Accepted per cell: base64 strings (or ``data:audio/...;base64,`` URIs), ``bytes`` of a WAV/FLAC/OGG file, or a
1-D float array of PCM at 16 kHz. Column names: ``audio`` and the training table's audio column. Every clip is
checked against the model's limits (``max_bytes`` encoded, ``max_seconds`` from the header before decoding).
Anything else is a SchemaError naming the row and the fix (the server answers 422).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ...errors import SchemaError
from ._data import decode_audio, fix_length

__all__ = ["SpeechCodec", "INPUT"]

INPUT = "audio"


class SpeechCodec:
    def __init__(self, samples: int, max_bytes: int, max_seconds: float, column: str | None = None) -> None:
        self.samples = int(samples)
        self.max_bytes, self.max_seconds = int(max_bytes), float(max_seconds)
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
        raise SchemaError(f"No audio column: the input needs a column {wanted}; got {sorted(map(str, keys))[:10]}.")

    def _encode(self, values: Sequence[Any], name: str, rows: bool = True) -> dict[str, np.ndarray]:
        out = np.zeros((len(values), self.samples), np.float32)
        for i, v in enumerate(values):
            x = decode_audio(v, max_bytes=self.max_bytes, max_seconds=self.max_seconds,
                             where=f"{name!r} at row {i} (0-based)" if rows else repr(name))
            out[i] = fix_length(x, self.samples)
        return {INPUT: out}

    def _done(self, keys: Sequence[Any]) -> None:
        self.last_extra_ = [str(c) for c in keys if c not in self._names()]
        self.last_unknown_ = {}

    def encode_frame(self, df: pd.DataFrame, on_unknown: str = "ignore") -> dict[str, np.ndarray]:
        name = self._pick(list(df.columns))
        self._done(list(df.columns))
        return self._encode(df[name].tolist(), name)

    def encode_columns(self, cols: Mapping[str, Any], on_unknown: str = "ignore") -> dict[str, np.ndarray]:
        name = self._pick(list(cols))
        values = cols[name]
        if isinstance(values, (str, bytes)):
            raise SchemaError(f"{name!r} must be a list of clips (one per row), got a single value; wrap it in a list.")
        if isinstance(values, np.ndarray) and values.dtype.kind == "f":
            values = list(values.reshape(len(values), -1)) if values.ndim == 2 else [values]
        elif not isinstance(values, list):
            values = list(np.asarray(values, dtype=object).reshape(-1))
        self._done(list(cols))
        return self._encode(values, name)

    def encode_row(self, row: Mapping[str, Any], on_unknown: str = "ignore") -> dict[str, np.ndarray]:
        name = self._pick(list(row))
        self._done(list(row))
        return self._encode([row[name]], name, rows=False)

    def dummy(self) -> dict[str, np.ndarray]:
        return {INPUT: np.zeros((1, self.samples), np.float32)}
