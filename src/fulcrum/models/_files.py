"""Reading an adapter's own files from a package: safetensors weights, LightGBM text models.

A file that passed its checksum can still be unreadable (written wrong, or replaced and re-hashed);
the library's exception then becomes one :class:`~fulcrum.errors.FormatError` that names the file
and the fix, instead of a traceback from deep inside safetensors or LightGBM.
"""

from __future__ import annotations

from typing import Any, Callable

from ..errors import FormatError, FulcrumError

__all__ = ["corrupt_file", "read_safetensors", "read_text"]

ReadFile = Callable[[str], bytes]


def _where(read: ReadFile) -> str:
    pkg = getattr(read, "__self__", None)  # ModelPackage.read_bytes: name the package too
    path = getattr(pkg, "path", None)
    return f"Model package {path}: file" if path is not None else "Model file"


def _detail(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text if len(text) <= 200 else text[:200] + "..."


def corrupt_file(read: ReadFile, relpath: str, what: str, exc: BaseException) -> FormatError:
    return FormatError(
        f"{_where(read)} {relpath!r} cannot be read as {what} ({_detail(exc)}); the file is corrupt or does not match "
        f"the manifest: re-train the model or restore the package from a backup."
    )


def read_safetensors(read: ReadFile, relpath: str, framework: str = "numpy") -> dict[str, Any]:
    """The tensors of a safetensors file (``framework``: "numpy" or "torch"), never a traceback."""
    data = read(relpath)  # IntegrityError (checksum, size limit) passes through as it is
    try:
        if framework == "torch":
            from safetensors.torch import load
        else:
            from safetensors.numpy import load  # type: ignore[assignment]
        return load(data)
    except FulcrumError:
        raise
    except Exception as exc:  # SafetensorError, ValueError, ...: the bytes are not safetensors
        raise corrupt_file(read, relpath, "safetensors weights", exc) from None


def read_text(read: ReadFile, relpath: str, what: str) -> str:
    data = read(relpath)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise corrupt_file(read, relpath, what, exc) from None
