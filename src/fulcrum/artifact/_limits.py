"""Bounded, link-refusing reads of package files.

Every package file is read through :func:`read_regular`: opened without following a symbolic
link (``O_NOFOLLOW``) and without blocking on a FIFO (``O_NONBLOCK``), refused unless it is a
regular file, refused when larger than the per-file limit, and then read with a bounded read.
So a package can neither point a file at ``/dev/zero`` nor make Fulcrum read gigabytes.

The per-file limit is ``FULCRUM_MAX_FILE_MB`` megabytes (default 1024); ``manifest.json`` is also
held to 64 MB (it is parsed as JSON), ``MANIFEST.sha256`` to 64 KB (it holds one or two lines).
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from ..errors import ConfigError, IntegrityError

__all__ = ["ENV_MAX_FILE_MB", "DEFAULT_MAX_FILE_MB", "MAX_MANIFEST_BYTES", "MAX_DIGEST_BYTES", "max_file_bytes",
           "open_regular", "read_regular", "sha256_regular"]

ENV_MAX_FILE_MB = "FULCRUM_MAX_FILE_MB"
DEFAULT_MAX_FILE_MB = 1024.0
MAX_MANIFEST_BYTES = 64_000_000
MAX_DIGEST_BYTES = 64_000
_CHUNK = 1 << 20
_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def max_file_bytes() -> int:
    """The per-file size limit in bytes, from ``FULCRUM_MAX_FILE_MB`` (megabytes, 10^6 bytes)."""
    raw = os.environ.get(ENV_MAX_FILE_MB, "").strip()
    if not raw:
        return int(DEFAULT_MAX_FILE_MB * 1_000_000)
    try:
        mb = float(raw)
    except ValueError:
        mb = float("nan")
    if not (mb > 0 and mb != float("inf")):
        raise ConfigError(
            f"{ENV_MAX_FILE_MB} must be a positive number of megabytes (e.g. 2048), not {raw!r}; "
            f"unset it for the default ({DEFAULT_MAX_FILE_MB:g})."
        )
    return max(1, int(mb * 1_000_000))


def _too_big(where: str, relpath: str, size: int, limit: int, manifest_limit: bool) -> IntegrityError:
    if manifest_limit:
        fix = "a manifest this large is not one Fulcrum writes; re-train the model or restore the package"
    else:
        fix = (f"if you trust this package, raise the limit with {ENV_MAX_FILE_MB} "
               f"(now {limit / 1e6:g}; e.g. {ENV_MAX_FILE_MB}={max(limit * 2, size) / 1e6:g})")
    return IntegrityError(f"{where}: file {relpath!r} is {size} bytes, over the {limit}-byte limit per package file; {fix}.")


def open_regular(path: Path, where: str, relpath: str, limit: int | None = None, *,
                 manifest_limit: bool = False) -> tuple[int, int]:
    """Open ``path`` for reading if it is a regular file (not a link, FIFO, device or directory) no
    larger than ``limit`` (default: the per-file limit); returns (fd, size). The caller closes fd."""
    limit = max_file_bytes() if limit is None else limit
    try:
        fd = os.open(path, _FLAGS)
    except FileNotFoundError:
        raise
    except OSError as exc:  # ELOOP: a symbolic link (O_NOFOLLOW); EISDIR, ENXIO, ...: not a file
        if os.path.lexists(path):
            raise IntegrityError(
                f"{where}: file {relpath!r} is not a regular file (a link, directory or device); "
                f"re-train or restore it from a backup."
            ) from None
        raise FileNotFoundError(str(path)) from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise IntegrityError(
                f"{where}: file {relpath!r} is not a regular file (a link, directory or device); "
                f"re-train or restore it from a backup."
            )
        if st.st_size > limit:
            raise _too_big(where, relpath, st.st_size, limit, manifest_limit)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, int(st.st_size)


def read_regular(path: Path, where: str, relpath: str, limit: int | None = None, *, manifest_limit: bool = False) -> bytes:
    """The bytes of a regular file no larger than ``limit``, read with a bounded read."""
    limit = max_file_bytes() if limit is None else limit
    fd, _ = open_regular(path, where, relpath, limit, manifest_limit=manifest_limit)
    chunks: list[bytes] = []
    total = 0
    try:
        while True:
            chunk = os.read(fd, min(_CHUNK, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:  # grew after the size check
                raise _too_big(where, relpath, total, limit, manifest_limit)
    finally:
        os.close(fd)
    return b"".join(chunks)


def sha256_regular(path: Path, where: str, relpath: str, limit: int | None = None) -> tuple[str, int]:
    """(sha256 hex digest, size) of a regular file no larger than ``limit``, read in bounded chunks."""
    limit = max_file_bytes() if limit is None else limit
    fd, _ = open_regular(path, where, relpath, limit)
    h = hashlib.sha256()
    total = 0
    try:
        while chunk := os.read(fd, min(_CHUNK, limit + 1 - total) or 1):
            h.update(chunk)
            total += len(chunk)
            if total > limit:
                raise _too_big(where, relpath, total, limit, False)
    finally:
        os.close(fd)
    return h.hexdigest(), total
