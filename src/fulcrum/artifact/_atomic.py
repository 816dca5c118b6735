"""Durable, atomic filesystem writes: temp file or directory on the same filesystem, fsync, rename."""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from pathlib import Path

TMP_PREFIX = ".tmp-"
_CHUNK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> tuple[str, int]:
    """(hex digest, size in bytes) of a file, read in chunks."""
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            n += len(chunk)
    return h.hexdigest(), n


def temp_name(parent: Path, stem: str = "") -> Path:
    """A fresh hidden sibling name inside ``parent`` (never a valid package file or model name)."""
    return parent / f"{TMP_PREFIX}{uuid.uuid4().hex}{'-' + stem if stem else ''}"


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (creates, renames) durable. A no-op where directories cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file and fsync it (the caller makes the name durable)."""
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def replace_file(path: Path, data: bytes) -> None:
    """Atomically replace (or create) ``path`` with ``data``: temp sibling, fsync, os.replace, fsync dir."""
    tmp = temp_name(path.parent, path.name)
    try:
        write_file(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def remove_tree(path: Path) -> None:
    """Best-effort removal of a temporary file or directory tree."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except OSError:
            pass
