"""The text task's options: a typed config that refuses unknown keys, built from a dict, a
:class:`~fulcrum.config.TrainConfig` (the shared keys) or itself."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from ...config import TaskConfig, TrainConfig, _coerce_and_check
from ...errors import ConfigError

__all__ = ["TextConfig", "TEXT_MODELS"]

TEXT_MODELS = ("auto", "ngram", "minilm", "ensemble")


@dataclasses.dataclass
class TextConfig(TaskConfig):
    """Options of a text classification run.

    ``model``: ``auto`` (picks on validation among ngram, minilm and ensemble: the simplest within
    noise of the best), or one of them. ``fine_tune`` trains the MiniLM encoder end to end (through the
    shared Trainer) instead of a head on frozen embeddings. ``max_length`` (tokens): None = 256 frozen,
    128 fine-tuning. ``max_chars``: the longest text a request may send; None = max(10,000, 1.5 x the
    longest training text). ``time_budget_s``: ``auto`` skips MiniLM when the first embedding pass is
    estimated to take longer.
    """

    MODELS = TEXT_MODELS
    WRONG_MODEL = "model={model!r} is a table model; for text choose one of {models}."
    WRONG_TYPE = "A text config is a TextConfig, TrainConfig or dict, not {type}."

    target: str | None = None
    text_column: str | None = None
    model: Literal["auto", "ngram", "minilm", "ensemble"] = "auto"
    fine_tune: bool = False
    max_length: int | None = None
    max_chars: int | None = None
    seed: int = 0
    test_size: float = 0.2
    val_size: float = 0.2
    ngram_c: float | None = None  # None: chosen on validation from {0.5, 2, 8, 32}
    ngram_max_features: int = 150_000  # word 1/3, char 2/3
    fine_tune_epochs: int = 2
    fine_tune_lr: float = 3e-5
    fine_tune_batch_size: int = 16
    embed_batch_size: int = 64
    time_budget_s: float = 1800.0
    refit: bool = True
    device: Literal["auto", "cpu", "cuda"] = "auto"
    checkpoint_dir: str | None = None
    resume: bool = False
    progress: bool = True
    measure_inference: bool = True

    def __post_init__(self) -> None:
        _coerce_and_check(self)
        for key in ("fine_tune_epochs", "fine_tune_batch_size", "embed_batch_size", "ngram_max_features"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key} must be > 0, got {getattr(self, key)!r}.")
        if self.max_length is not None and not 8 <= self.max_length <= 512:
            raise ConfigError(f"max_length is in tokens, between 8 and 512 (MiniLM's positions); got {self.max_length}.")
        if self.max_chars is not None and self.max_chars < 1:
            raise ConfigError(f"max_chars must be >= 1, got {self.max_chars}.")
        if not (0 < self.test_size < 1 and 0 < self.val_size < 1) or self.test_size + self.val_size >= 0.9:
            raise ConfigError("test_size and val_size are fractions whose sum stays below 0.9, e.g. 0.2 and 0.2.")
        if self.ngram_c is not None and self.ngram_c <= 0:
            raise ConfigError(f"ngram_c must be > 0, got {self.ngram_c}.")
        if self.fine_tune_lr <= 0 or self.time_budget_s <= 0:
            raise ConfigError("fine_tune_lr and time_budget_s must be > 0.")

    @property
    def tokens(self) -> int:
        """The tokenizer's truncation length for this run."""
        return self.max_length or (128 if self.fine_tune else 256)

    def train_config(self, **changes: Any) -> TrainConfig:
        """The shared Trainer's config for fine-tuning (or distilling) the encoder."""
        base = dict(seed=self.seed, epochs=self.fine_tune_epochs, batch_size=self.fine_tune_batch_size,
                    lr=self.fine_tune_lr, weight_decay=0.01, lr_schedule="constant", optimizer="adamw",
                    early_stopping=True, patience=1, device=self.device, progress=self.progress)
        return TrainConfig(**{**base, **changes})
