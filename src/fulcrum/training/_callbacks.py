"""Trainer callbacks: hooks that observe (or stop) a run without changing the loop."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._trainer import Trainer

__all__ = ["Callback", "ProgressBar"]


class Callback:
    """Override what you need. Setting ``trainer.stop_training = True`` ends the run after this epoch."""

    def on_train_begin(self, trainer: "Trainer") -> None: ...

    def on_epoch_end(self, trainer: "Trainer", epoch: int, logs: dict[str, Any]) -> None: ...

    def on_train_end(self, trainer: "Trainer") -> None: ...


class ProgressBar(Callback):
    """A tqdm bar over epochs with live train loss and validation metrics (stderr, TTY only)."""

    def __init__(self, desc: str = "train", *, force: bool = False) -> None:
        self.desc = desc
        self.force = force
        self._bar: Any = None

    def on_train_begin(self, trainer: "Trainer") -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(
            total=trainer.config.epochs,
            initial=trainer.start_epoch,
            desc=self.desc,
            unit="epoch",
            file=sys.stderr,
            disable=None if not self.force else False,
            leave=True,
            dynamic_ncols=True,
        )

    def on_epoch_end(self, trainer: "Trainer", epoch: int, logs: dict[str, Any]) -> None:
        if self._bar is None:
            return
        shown = {k: f"{v:.4g}" for k, v in logs.items() if k != "epoch" and isinstance(v, float)}
        self._bar.set_postfix(shown, refresh=False)
        self._bar.update(1)

    def on_train_end(self, trainer: "Trainer") -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
