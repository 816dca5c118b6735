"""Training: the loop, its callbacks and checkpoints."""

from __future__ import annotations

from ._callbacks import Callback, ProgressBar
from ._checkpoint import load_checkpoint, save_checkpoint
from ._trainer import Trainer, TrainResult, resolve_device

__all__ = ["Trainer", "TrainResult", "Callback", "ProgressBar", "save_checkpoint", "load_checkpoint", "resolve_device"]
