"""Atomic training checkpoints: write to a temp file, fsync, rename.

A checkpoint holds everything a resumed run needs to continue exactly where the
interrupted one stopped: model, optimizer, scheduler, the global torch RNG, the
sampler's generator, early-stopping state and the history so far. It is read
with ``torch.load(weights_only=True)``, which cannot execute code; a checkpoint that
is not a regular file, cannot be read that way (poisoned, truncated, foreign) or lacks
a part is refused with a :class:`~fulcrum.errors.TrainingError` naming the file and the
fix (delete it, or run without resume). Loading it with ``weights_only=False`` is never
the fix and is never suggested.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..errors import TrainingError

__all__ = ["save_checkpoint", "load_checkpoint", "unusable_checkpoint", "CHECKPOINT_NAME"]

CHECKPOINT_NAME = "checkpoint.pt"

# part -> accepted types; a checkpoint without one of them cannot continue a run
_PARTS: dict[str, tuple[type, ...]] = {
    "epoch": (int,), "model": (dict,), "optimizer": (dict,), "torch_rng": (torch.Tensor,),
    "sampler_rng": (torch.Tensor,), "best": (float, int), "bad_epochs": (int,), "best_epoch": (int,),
    "best_state": (dict,), "history": (list,),
}
_GLOBAL = re.compile(r"GLOBAL ([A-Za-z_][\w.]*)")


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


def unusable_checkpoint(path: Path, why: str) -> TrainingError:
    """The one error for a checkpoint a run cannot continue from: which file, why, and the fix."""
    return TrainingError(
        f"Cannot resume from the checkpoint {path}: {why}. Delete that file to start this run over, "
        "or run without --resume (resume=False)."
    )


def load_checkpoint(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The checkpoint in ``directory``, or None when there is none; never executes code from it."""
    path = Path(directory) / CHECKPOINT_NAME
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(mode):
        raise unusable_checkpoint(path, "it is not a regular file (a symlink, device or directory)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError (forbidden global), RuntimeError/EOFError (truncated), ...
        # torch's own message advises weights_only=False, i.e. running the file's code: not repeated here
        found = _GLOBAL.search(str(exc))
        if found:
            why = (f"it refers to {found.group(1)}, which no training checkpoint contains "
                   "(it was not written by Fulcrum, or was tampered with); it was not loaded")
        else:
            why = f"it is corrupt or truncated ({type(exc).__name__}); it was not loaded"
        raise unusable_checkpoint(path, why) from None
    if not isinstance(state, dict):
        raise unusable_checkpoint(path, f"it holds a {type(state).__name__}, not a training checkpoint")
    missing = [k for k, types in _PARTS.items() if not isinstance(state.get(k), types)]
    if missing:
        raise unusable_checkpoint(path, f"it is not a training checkpoint (missing or malformed: {', '.join(missing)})")
    if state["epoch"] < 0:
        raise unusable_checkpoint(path, f"its epoch is {state['epoch']}")
    return state
