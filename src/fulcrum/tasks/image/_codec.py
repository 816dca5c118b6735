"""Raw user images -> the graph's feeds ``image`` uint8 (N, H, W, C) and ``image_size`` int64 (N, 2).

Accepted per cell: base64 strings (or ``data:image/...;base64,`` URIs), ``bytes`` of a PNG/JPEG/WebP file, a
Pillow image, or a uint8 pixel array (H, W) / (H, W, C). Column names: ``image`` and the training table's image
column. Every image is checked against the model's limits (``max_bytes`` encoded, ``max_pixels`` decoded, read
from the header before decoding) and converted to the model's colour mode; a batch's images share one canvas
of the largest height and width, at most ``MAX_BATCH_BYTES`` of pixels. Anything else is a SchemaError naming
the row and the fix (the server answers 422).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ...errors import SchemaError
from .._codec import OneColumnCodec
from ._data import decode_image
from ._graph import batch_feeds

__all__ = ["ImageCodec", "INPUT", "MAX_BATCH_BYTES"]

INPUT = "image"
MAX_BATCH_BYTES = 512 * 1024 * 1024


class ImageCodec(OneColumnCodec):
    INPUT, WHAT, PLURAL = INPUT, "image", "images"

    def __init__(self, mode: str, max_bytes: int, max_pixels: int, column: str | None = None) -> None:
        self.mode = mode
        self.channels = 1 if mode == "L" else 3
        self.max_bytes, self.max_pixels = int(max_bytes), int(max_pixels)
        self._init_column(column)
        self.input_names = ["image", "image_size"]

    def _encode(self, values: Sequence[Any], name: str, rows: bool = True) -> dict[str, np.ndarray]:
        images = [decode_image(v, self.mode, max_bytes=self.max_bytes, max_pixels=self.max_pixels,
                               where=f"{name!r} at row {i} (0-based)" if rows else repr(name))
                  for i, v in enumerate(values)]
        if images:
            canvas = len(images) * max(a.shape[0] for a in images) * max(a.shape[1] for a in images) * self.channels
            if canvas > MAX_BATCH_BYTES:
                raise SchemaError(f"These {len(images)} images need a {canvas >> 20} MiB canvas together (the largest "
                                  f"height x the largest width), over {MAX_BATCH_BYTES >> 20} MiB; send images of "
                                  "similar sizes together, or fewer at a time.")
        return batch_feeds(images, self.channels)

    def _as_rows(self, values: Any, name: str) -> list[Any]:
        if isinstance(values, np.ndarray) and values.dtype == np.uint8:
            return list(values)  # (N, H, W[, C]) pixels: one image per row
        return super()._as_rows(values, name)

    def dummy(self) -> dict[str, np.ndarray]:
        return batch_feeds([np.full((24, 20, self.channels), 128, np.uint8)], self.channels)
