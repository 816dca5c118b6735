"""Raw user clips -> the graph's feed ``audio`` float32 (N, S): mono PCM at 16 kHz, cut or padded to S samples.

Accepted per cell: base64 strings (or ``data:audio/...;base64,`` URIs), ``bytes`` of a WAV/FLAC/OGG file, or a
1-D float array of PCM at 16 kHz. Column names: ``audio`` and the training table's audio column. Every clip is
checked against the model's limits (``max_bytes`` encoded, ``max_seconds`` from the header before decoding).
Anything else is a SchemaError naming the row and the fix (the server answers 422).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .._codec import OneColumnCodec
from ._data import decode_audio, fix_length

__all__ = ["SpeechCodec", "INPUT"]

INPUT = "audio"


class SpeechCodec(OneColumnCodec):
    INPUT, WHAT, PLURAL = INPUT, "audio", "clips"

    def __init__(self, samples: int, max_bytes: int, max_seconds: float, column: str | None = None) -> None:
        self.samples = int(samples)
        self.max_bytes, self.max_seconds = int(max_bytes), float(max_seconds)
        self._init_column(column)
        self.input_names = [INPUT]

    def _encode(self, values: Sequence[Any], name: str, rows: bool = True) -> dict[str, np.ndarray]:
        out = np.zeros((len(values), self.samples), np.float32)
        for i, v in enumerate(values):
            x = decode_audio(v, max_bytes=self.max_bytes, max_seconds=self.max_seconds,
                             where=f"{name!r} at row {i} (0-based)" if rows else repr(name))
            out[i] = fix_length(x, self.samples)
        return {INPUT: out}

    def _as_rows(self, values: Any, name: str) -> list[Any]:
        if isinstance(values, np.ndarray) and values.dtype.kind == "f":
            return list(values.reshape(len(values), -1)) if values.ndim == 2 else [values]
        return super()._as_rows(values, name)

    def dummy(self) -> dict[str, np.ndarray]:
        return {INPUT: np.zeros((1, self.samples), np.float32)}
