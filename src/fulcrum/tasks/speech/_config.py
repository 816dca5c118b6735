"""The speech task's options: a typed config that refuses unknown keys."""

from __future__ import annotations

import dataclasses
from typing import Literal

from ...config import NetTaskConfig
from ...errors import ConfigError
from ._data import DEFAULT_MAX_BYTES, DEFAULT_MAX_SECONDS

__all__ = ["SpeechConfig"]


@dataclasses.dataclass
class SpeechConfig(NetTaskConfig):
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
        self.check("width", "depth", "epochs", "patience", "max_bytes", "n_mels", "max_seconds")
        if not 1 <= self.stages <= 4:
            raise ConfigError(f"stages is between 1 and 4, got {self.stages}.")
        if not 0.1 <= self.seconds <= 10:
            raise ConfigError(f"seconds (the clip length the model hears) is between 0.1 and 10, got {self.seconds}.")
        if self.shift_ms < 0 or self.gain_db < 0:
            raise ConfigError(f"shift_ms and gain_db must be >= 0; got {self.shift_ms} and {self.gain_db}.")
