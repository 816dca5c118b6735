"""The speech task's options: a typed config that refuses unknown keys."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from ...config import TaskConfig, TrainConfig, _coerce_and_check, config_from_dict
from ...errors import ConfigError
from ._data import DEFAULT_MAX_BYTES, DEFAULT_MAX_SECONDS

__all__ = ["SpeechConfig"]


@dataclasses.dataclass
class SpeechConfig(TaskConfig):
    """Options of a keyword-spotting run (a clip -> one of a fixed set of words).

    Clips are decoded, averaged to mono, resampled to 16 kHz and cut or padded to ``seconds``; the graph computes
    ``n_mels`` log-mel bands (25 ms frames, 10 ms hop) and runs a small CNN (``width`` channels in the first of
    ``stages`` stages, doubling per stage, ``depth`` convolutions per stage). ``group_column``: a column naming
    the speaker (None: ``speaker`` when the table has it); the validation and test splits then hold whole
    speakers the model never heard. Augmentation (training only, on the waveform): a time shift of up to
    ``shift_ms``, a gain of up to +/- ``gain_db`` and white noise at an SNR down to ``noise_snr_db``.
    ``max_bytes`` / ``max_seconds``: the limits of one clip, at training and in requests. ``audio_root``: where a
    table's relative paths are resolved (None: the table's folder); a path may not leave it.
    """

    MODELS = ("auto", "cnn")
    WRONG_MODEL = "model={model!r} is a table model; for speech choose 'cnn'."
    WRONG_TYPE = "A speech config is a SpeechConfig, TrainConfig or dict, not {type}."

    target: str | None = None
    audio_column: str | None = None
    audio_root: str | None = None
    group_column: str | None = None
    model: Literal["auto", "cnn"] = "auto"
    seconds: float = 1.0
    n_mels: int = 40
    width: int = 16
    depth: int = 1
    stages: int = 3
    augment: bool = True
    shift_ms: float = 100.0
    gain_db: float = 6.0
    noise_snr_db: float = 10.0
    epochs: int = 40
    batch_size: int | None = None  # None: a tenth of the training clips, between 16 and 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    patience: int = 10
    seed: int = 0
    test_size: float = 0.2
    val_size: float = 0.2
    max_bytes: int = DEFAULT_MAX_BYTES
    max_seconds: float = DEFAULT_MAX_SECONDS
    device: Literal["auto", "cpu", "cuda"] = "auto"
    checkpoint_dir: str | None = None
    resume: bool = False
    progress: bool = True
    measure_inference: bool = True

    def __post_init__(self) -> None:
        _coerce_and_check(self)
        for key in ("width", "depth", "epochs", "patience", "max_bytes", "n_mels"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key} must be > 0, got {getattr(self, key)!r}.")
        if self.batch_size is not None and self.batch_size <= 0:
            raise ConfigError(f"batch_size must be > 0, got {self.batch_size!r}.")
        if not 1 <= self.stages <= 4:
            raise ConfigError(f"stages is between 1 and 4, got {self.stages}.")
        if not 0.1 <= self.seconds <= 10:
            raise ConfigError(f"seconds (the clip length the model hears) is between 0.1 and 10, got {self.seconds}.")
        if self.max_seconds <= 0:
            raise ConfigError(f"max_seconds must be > 0, got {self.max_seconds}.")
        if not (0 < self.test_size < 1 and 0 < self.val_size < 1) or self.test_size + self.val_size >= 0.9:
            raise ConfigError("test_size and val_size are fractions whose sum stays below 0.9, e.g. 0.2 and 0.2.")
        if self.lr <= 0 or self.weight_decay < 0 or self.shift_ms < 0 or self.gain_db < 0:
            raise ConfigError("lr must be > 0; weight_decay, shift_ms and gain_db >= 0.")

    def train_config(self, **changes: Any) -> TrainConfig:
        base = dict(seed=self.seed, epochs=self.epochs, batch_size=self.batch_size or 64, lr=self.lr,
                    weight_decay=self.weight_decay, lr_schedule="cosine", optimizer="adamw", early_stopping=True,
                    patience=self.patience, device=self.device, progress=self.progress)
        return TrainConfig(**{**base, **changes})
