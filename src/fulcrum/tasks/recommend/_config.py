"""The recommendation task's options: a typed config that refuses unknown keys."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from ...config import TaskConfig, TrainConfig, _coerce_and_check, config_from_dict
from ...errors import ConfigError

__all__ = ["RecommendConfig", "RECOMMEND_MODELS"]

RECOMMEND_MODELS = ("auto", "popularity", "mf")


@dataclasses.dataclass
class RecommendConfig(TaskConfig):
    """Options of a recommendation run.

    ``user`` / ``item`` / ``rating`` / ``timestamp``: the interaction table's columns (None: found by name;
    ``target`` names the item column when given, or the rating column). ``feedback``: ``implicit`` (every
    interaction is a positive; BPR with sampled negatives), ``explicit`` (ratings; squared error), ``auto``
    (explicit only when the target is the rating column). ``model``: ``auto`` (matrix factorization when it
    beats the popularity baseline on the validation split by NDCG@10), ``popularity`` or ``mf``. ``k``: the
    default number of items a request gets (a request may ask for any k up to the catalogue).
    """

    MODELS = RECOMMEND_MODELS
    WRONG_MODEL = "model={model!r} is not a recommendation model; choose one of {models}."
    WRONG_TYPE = "A recommend config is a RecommendConfig or dict, not {type}."

    target: str | None = None
    user: str | None = None
    item: str | None = None
    rating: str | None = None
    timestamp: str | None = None
    model: Literal["auto", "popularity", "mf"] = "auto"
    feedback: Literal["auto", "implicit", "explicit"] = "auto"
    factors: int = 32
    epochs: int = 40
    batch_size: int = 512
    lr: float = 0.01
    weight_decay: float = 0.0
    patience: int = 5
    k: int = 10
    seed: int = 0
    device: str = "cpu"
    checkpoint_dir: str | None = None
    resume: bool = False
    progress: bool = True
    measure_inference: bool = True

    def __post_init__(self) -> None:
        _coerce_and_check(self)
        if self.factors < 1 or self.epochs < 1 or self.batch_size < 1 or self.k < 1 or self.patience < 1:
            raise ConfigError("factors, epochs, batch_size, patience and k must be >= 1.")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ConfigError(f"lr must be > 0 and weight_decay >= 0; got lr={self.lr}, weight_decay={self.weight_decay}.")

    def train_config(self) -> TrainConfig:
        """The shared Trainer's config for matrix factorization."""
        return TrainConfig(seed=self.seed, epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                           weight_decay=self.weight_decay, lr_schedule="constant", optimizer="adam",
                           early_stopping=True, patience=self.patience, device=self.device, progress=self.progress)
