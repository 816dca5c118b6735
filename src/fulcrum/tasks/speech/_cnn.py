"""The keyword spotter's CNN: the image task's small CNN (``stages`` x ``depth`` x Conv 3x3 -> BatchNorm -> ReLU,
2x2 max-pooling between stages) with one change that matters for speech: the last stage is averaged over
**time only**, so the features keep which mel bands the energy sits in (``features`` = channels x bands).

The image CNN's global average pool over both axes made the features invariant to a shift in frequency: on the
44 training clips of 4 words (tests/tasks/test_speech_task.py) it reached 0.36-0.64 test accuracy where logistic
regression on per-band means reached 0.93; pooling over time only (with early stopping on the validation loss,
see _fit._train) reaches 0.93 on the same split. Input (N, 1, T, n_mels): dim 2 is time.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ...errors import ConfigError
from ..image._cnn import SmallCNN

__all__ = ["KwsCNN", "build_kws_cnn", "bands_after"]


def bands_after(n_mels: int, stages: int) -> int:
    """Mel bands left after the ``stages - 1`` 2x2 max-pools (floor, as torch pools)."""
    b = int(n_mels)
    for _ in range(stages - 1):
        b //= 2
    return b


class KwsCNN(SmallCNN):
    def __init__(self, channels: int, classes: int, widths: Sequence[Sequence[int]], mean: Sequence[float],
                 std: Sequence[float], bands: int, dropout: float = 0.1) -> None:
        super().__init__(channels, classes, widths, mean, std, dropout)
        self.bands = int(bands)
        self.head = nn.Linear(self.widths[-1][-1] * self.bands, classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.body((x - self.mean) / self.std)  # (N, C, T', bands)
        f = torch.flatten(z.mean(dim=2), 1)         # average over time only: (N, C x bands)
        return self.head(self.drop(f)), f

    def spec(self) -> dict[str, Any]:
        return {**super().spec(), "pool": "mean over time (frequency kept)", "bands": self.bands}


def build_kws_cnn(classes: int, width: int, depth: int, stages: int, n_mels: int) -> KwsCNN:
    bands = bands_after(n_mels, stages)
    if bands < 1:
        raise ConfigError(f"n_mels={n_mels} is too few for stages={stages}: each stage after the first halves the "
                          f"mel bands; use n_mels >= {2 ** (stages - 1)} or fewer stages.")
    widths = [[width * 2 ** s] * depth for s in range(stages)]
    return KwsCNN(1, classes, widths, [0.0], [1.0], bands)
