"""One rule for what a model reference means, used by every verb that takes one.

``iris``, ``iris@3``, ``iris@production`` are registry references, always, even when a
directory ``./iris/`` exists. A package directory is loaded only when the reference clearly is
a path: it contains a ``/`` or starts with ``.`` (``./iris``, ``../models/iris``, ``/srv/iris``),
or it is a ``pathlib.Path``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import NotFoundError
from ._names import is_path_ref
from ._package import ModelPackage
from ._registry import Registry

__all__ = ["load_reference"]


def load_reference(ref: str | os.PathLike[str], registry: Registry | str | os.PathLike[str] | None = None, *,
                   verify: bool = True) -> tuple[ModelPackage, Registry | None]:
    """(package, registry or None) for a reference: a registry model (``name``, ``name@3``,
    ``name@alias``) in ``registry`` (default ``$FULCRUM_HOME/registry``), or a package directory
    when the reference is a path (see :func:`fulcrum.artifact.is_path_ref`)."""
    if is_path_ref(ref):
        return ModelPackage.load(Path(os.fspath(ref)).expanduser(), verify=verify), None
    reg = registry if isinstance(registry, Registry) else Registry(registry)
    try:
        return reg.load(ref, verify=verify), reg  # type: ignore[arg-type]
    except NotFoundError as exc:
        hint = _directory_hint(ref)
        if hint:
            raise NotFoundError(f"{exc} {hint}") from None
        raise


def _directory_hint(ref: Any) -> str:
    if not isinstance(ref, str):
        return ""
    try:
        here = Path(ref)
        is_package = here.is_dir() and (here / "manifest.json").exists()
    except (OSError, ValueError):
        return ""
    if not is_package:
        return ""
    return f"(A package directory ./{ref} exists here; to load it rather than the registry, write './{ref}'.)"
