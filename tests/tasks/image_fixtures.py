"""Small image data sets made on the spot from scikit-learn's digits, and bad files."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def digit_images(per_class: int = 30, classes: tuple[int, ...] = (0, 1, 7)) -> list[tuple[np.ndarray, str]]:
    from sklearn.datasets import load_digits

    d = load_digits()
    out = []
    for c in classes:
        idx = np.flatnonzero(d.target == c)[:per_class]
        for i in idx:
            px = np.clip(np.round(d.images[i] * 255 / 16), 0, 255).astype(np.uint8)
            out.append((np.asarray(Image.fromarray(px).resize((24, 24), Image.NEAREST)), str(c)))
    return out


def encode(px: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(px).save(buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buf.getvalue()


def write_folder(root: Path, per_class: int = 30) -> Path:
    """root/<digit>/<n>.png|jpg|webp: three classes, three formats."""
    fmts = [("PNG", ".png"), ("JPEG", ".jpg"), ("WEBP", ".webp")]
    for n, (px, label) in enumerate(digit_images(per_class)):
        fmt, ext = fmts[n % 3]
        (root / label).mkdir(parents=True, exist_ok=True)
        (root / label / f"{n}{ext}").write_bytes(encode(px, fmt) if fmt != "WEBP" else _webp(px))
    return root


def train_folder(root: Path, name: str, *settings: str, per_class: int = 30) -> tuple[Path, Path]:
    """A digits folder under ``root`` and ``fulcrum train FOLDER --name NAME SETTINGS`` into ``root/registry``
    through the CLI (asserted to succeed): (the folder, the registry directory)."""
    from fulcrum.cli import main

    folder = write_folder(root / "digits", per_class=per_class)
    reg = root / "registry"
    assert main(["train", str(folder), "--name", name, "--registry", str(reg), *settings, "--no-progress"]) == 0
    return folder, reg


def _webp(px: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(px).save(buf, format="WEBP", lossless=True)
    return buf.getvalue()


def bomb_png(width: int = 20_000, height: int = 20_000) -> bytes:
    """A valid PNG header claiming width x height pixels (400 megapixels), a few hundred bytes long."""
    small = encode(np.zeros((8, 8), np.uint8))
    ihdr_at = small.index(b"IHDR")
    body = bytearray(small[ihdr_at: ihdr_at + 17])  # type + 13 data bytes
    body[4:12] = struct.pack(">II", width, height)
    crc = struct.pack(">I", zlib.crc32(bytes(body)) & 0xFFFFFFFF)
    return small[:ihdr_at] + bytes(body) + crc + small[ihdr_at + 21:]
