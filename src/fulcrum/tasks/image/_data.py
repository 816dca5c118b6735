"""Image data: decoding with Pillow under limits, folders of class subfolders, tables of paths, and the
one rule for a valid image.

An image reaches the model as encoded bytes (PNG, JPEG or WebP), given as ``bytes``, a base64 string
(optionally a ``data:image/...;base64,`` URI), a Pillow image or a uint8 array (H, W) / (H, W, C).
Every path checks the same limits: at most ``max_bytes`` encoded bytes, at most ``max_pixels``
pixels (checked from the header, before any pixel is decoded: decompression bombs are refused), a
readable, complete file (``Image.verify`` and a full decode). Decoded images become uint8 arrays in the
model's colour mode (``L``: 1 channel, ``RGB``: 3; alpha dropped, EXIF orientation applied).

In tables the images travel as base64 strings (column ``image``), so a table of images is a CSV, a
JSON request or a DataFrame alike; a folder ``root/<class>/<file>`` reads into such a table with
``label`` = the subfolder's name and ``path`` = the file relative to ``root``.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from ...errors import DataError, SchemaError
from .. import _media as media

__all__ = ["IMAGE_SUFFIXES", "FORMATS", "DEFAULT_MAX_BYTES", "DEFAULT_MAX_PIXELS", "decode_image", "to_base64",
           "image_columns", "path_columns", "read_folder", "is_image_folder", "load_paths", "digits_images",
           "lfw_faces"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
FORMATS = ("PNG", "JPEG", "WEBP")
DEFAULT_MAX_BYTES = 20 * 1024 * 1024  # encoded size of one image
DEFAULT_MAX_PIXELS = 4096 * 4096  # width x height of one image (a 100-megapixel PNG is refused)
_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF")


FILES = media.FileKind(column="image", suffixes=IMAGE_SUFFIXES, folder="image", files="image files",
                       every="an image file", plural="images", not_one="an image file",
                       layout="root/<class>/<image>.png|jpg|webp", folder_of="images",
                       data_uri="data:image/png;base64,...",
                       send="the image file's bytes base64-encoded (PNG, JPEG or WebP)",
                       one="an image", formats="a PNG, JPEG or WebP file", smaller="a smaller file",
                       signatures="PNG, JPEG or WebP", looks=lambda data: _looks_encoded(data))


def _looks_encoded(data: bytes) -> bool:
    return data.startswith(_MAGIC[:2]) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def decode_image(value: Any, mode: str, *, max_bytes: int = DEFAULT_MAX_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS,
                 where: str = "image") -> np.ndarray:
    """``value`` as a uint8 array (H, W, C) in ``mode`` (``L`` or ``RGB``), or a SchemaError naming the
    problem and the fix."""
    from PIL import Image, ImageOps

    channels = 1 if mode == "L" else 3
    if isinstance(value, np.ndarray):
        arr = value
        if arr.dtype != np.uint8:
            raise SchemaError(f"{where}: a pixel array must be uint8 (0-255), got {arr.dtype}.")
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or 0 in arr.shape:
            raise SchemaError(f"{where}: a pixel array is (H, W) or (H, W, C) with C 1, 3 or 4, got {arr.shape}.")
        if arr.shape[0] * arr.shape[1] > max_pixels:
            raise SchemaError(f"{where} has {arr.shape[0] * arr.shape[1]} pixels, more than this model's limit of "
                              f"{max_pixels} (max_pixels); send a smaller image.")
        img = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
        return _as_array(img, mode, channels)
    if isinstance(value, Image.Image):
        img = value
    else:
        data = media.encoded_bytes(value, where, FILES, max_bytes)
        try:
            with warnings.catch_warnings():  # Pillow warns of 89-179 MP images at open; max_pixels decides below
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                probe = Image.open(io.BytesIO(data), formats=list(FORMATS))
            with probe:
                w, h = probe.size
                if w * h > max_pixels:
                    raise SchemaError(f"{where} is {w}x{h} = {w * h} pixels, more than this model's limit of "
                                      f"{max_pixels} (max_pixels; a decompression bomb is refused this way); send a "
                                      "smaller image.")
                probe.verify()
            img = Image.open(io.BytesIO(data), formats=list(FORMATS))
            img.load()
        except SchemaError:
            raise
        except Image.DecompressionBombError:
            raise SchemaError(f"{where} declares more pixels than Pillow decodes (a decompression bomb), far over this "
                              f"model's limit of {max_pixels} (max_pixels); send a smaller image.") from None
        except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds for broken files
            raise SchemaError(f"{where} cannot be decoded ({type(exc).__name__}: {str(exc)[:80]}); it is corrupt or "
                              "truncated: send a complete PNG, JPEG or WebP file.") from None
    w, h = img.size
    if w * h > max_pixels:
        raise SchemaError(f"{where} is {w}x{h} = {w * h} pixels, more than this model's limit of {max_pixels} "
                          "(max_pixels); send a smaller image.")
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - a broken EXIF block leaves the image as stored
        pass
    return _as_array(img, mode, channels)


def _as_array(img: Any, mode: str, channels: int) -> np.ndarray:
    if img.mode != mode:
        if img.mode in ("RGBA", "LA", "P", "PA") and mode == "RGB":
            img = img.convert("RGBA").convert("RGB")
        img = img.convert(mode)
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    assert arr.shape[2] == channels
    return np.ascontiguousarray(arr)


to_base64 = media.to_base64


def image_columns(frame: pd.DataFrame, target: str | None) -> list[str]:
    """Columns whose values are images (base64 strings or bytes of PNG/JPEG/WebP files)."""
    return media.encoded_columns(frame, target, _looks_encoded)


def path_columns(frame: pd.DataFrame, target: str | None) -> list[str]:
    """Columns whose values are file names ending in an image suffix (a table of paths and labels)."""
    return media.suffix_columns(frame, target, IMAGE_SUFFIXES)


def _reader(max_bytes: int, max_pixels: int) -> Callable[[Path, str], bytes]:
    def read(path: Path, where: str) -> bytes:
        return media.read_checked(path, where, max_bytes, lambda data: decode_image(
            data, "RGB", max_bytes=max_bytes, max_pixels=max_pixels, where=where))
    return read


def is_image_folder(source: Any) -> bool:
    """Whether ``source`` is a folder with at least one subfolder holding an image file."""
    return media.is_class_folder(source, IMAGE_SUFFIXES)


def read_folder(source: Any, *, max_bytes: int = DEFAULT_MAX_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS,
                log: Callable[[str], None] | None = None) -> pd.DataFrame:
    """``root/<class>/<image>`` -> a table ``image`` (base64), ``label`` (the subfolder), ``path`` (relative).

    Every file is checked (a file that is not a PNG/JPEG/WebP image, a corrupt or truncated one, one over
    the limits, a symlink out of the root: one DataError naming it). Hidden files are skipped."""
    return media.read_class_folder(source, FILES, _reader(max_bytes, max_pixels), log)


def load_paths(frame: pd.DataFrame, column: str, root: Path, *, max_bytes: int = DEFAULT_MAX_BYTES,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> pd.DataFrame:
    """A table of paths -> the same table with an ``image`` column (base64) read from ``root`` (paths resolved
    inside it only)."""
    return media.load_path_column(frame, column, root, FILES, _reader(max_bytes, max_pixels))


def digits_images(scale: int = 4) -> pd.DataFrame:
    """scikit-learn's handwritten digits (1,797 8x8 grey images, 16 levels) as PNG files upscaled ``scale`` times
    (nearest neighbour): ``image`` (base64 PNG), ``label`` ("0"-"9")."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    rows = []
    for img, y in zip(d.images, d.target):
        px = np.clip(np.round(img * (255.0 / 16.0)), 0, 255).astype(np.uint8)
        pil = Image.fromarray(px, mode="L").resize((8 * scale, 8 * scale), Image.NEAREST)
        buf = io.BytesIO()
        pil.save(buf, format="PNG", optimize=False)
        rows.append({"image": to_base64(buf.getvalue()), "label": str(int(y))})
    return pd.DataFrame(rows)


def lfw_faces(scale: int = 2) -> pd.DataFrame:
    """200 real photographs from Labeled Faces in the Wild as scikit-image ships them (``skimage/data/lfw_subset.npy``
    inside its wheel: 100 face crops, then 100 crops of the same photos' backgrounds, 25x25 grey), as PNG files
    upscaled ``scale`` times (bilinear): ``image`` (base64 PNG), ``label`` (``face`` / ``not_face``). The file is read
    straight from the installed package (nothing is downloaded; scikit-image itself is not imported)."""
    import importlib.util

    from PIL import Image

    spec = importlib.util.find_spec("skimage")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    path = next((Path(d) / "data" / "lfw_subset.npy" for d in locations
                 if (Path(d) / "data" / "lfw_subset.npy").is_file()), None)
    if path is None:
        raise DataError("builtin:lfw_faces reads scikit-image's bundled LFW subset, and scikit-image is not installed "
                        "(or ships without it); pip install 'scikit-image>=0.19'.")
    faces = np.load(path, allow_pickle=False)  # (200, 25, 25) float in [0, 1]
    rows = []
    for i, img in enumerate(faces):
        px = np.clip(np.round(np.asarray(img, np.float64) * 255.0), 0, 255).astype(np.uint8)
        pil = Image.fromarray(px, mode="L").resize((25 * scale, 25 * scale), Image.BILINEAR)
        buf = io.BytesIO()
        pil.save(buf, format="PNG", optimize=False)
        rows.append({"image": to_base64(buf.getvalue()), "label": "face" if i < 100 else "not_face"})
    return pd.DataFrame(rows)


def decode_many(values: Sequence[Any], mode: str, *, max_bytes: int, max_pixels: int, column: str = "image",
                rows: bool = True) -> list[np.ndarray]:
    return [decode_image(v, mode, max_bytes=max_bytes, max_pixels=max_pixels,
                         where=f"{column!r} at row {i} (0-based)" if rows else repr(column))
            for i, v in enumerate(values)]
