"""Atomic training checkpoints: write to a temp file, fsync, rename.

A checkpoint holds everything a resumed run needs to continue exactly where the
interrupted one stopped: model, optimizer, scheduler, the global torch RNG, the
sampler's generator, early-stopping state and the history so far. It is read
with ``torch.load(weights_only=True)``, which cannot execute code.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["save_checkpoint", "load_checkpoint", "CHECKPOINT_NAME"]

CHECKPOINT_NAME = "checkpoint.pt"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(directory: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Atomically write ``state`` as ``checkpoint.pt`` (plus a small JSON summary)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    target = d / CHECKPOINT_NAME
    fd, tmp = tempfile.mkstemp(prefix=".ckpt-", dir=d)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        summary = {"epoch": int(state["epoch"]), "history": state.get("history", [])}
        tmp_json = d / ".checkpoint.json.tmp"
        tmp_json.write_text(json.dumps(summary))
        os.replace(tmp_json, d / "checkpoint.json")
        _fsync_dir(d)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return target


def load_checkpoint(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    path = Path(directory) / CHECKPOINT_NAME
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)
