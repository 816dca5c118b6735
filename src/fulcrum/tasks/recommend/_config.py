"""The recommendation task's options: a typed config that refuses unknown keys."""

from __future__ import annotations

import dataclasses
from typing import Literal

from ...config import TaskConfig, TrainConfig, _coerce_and_check
from ...errors import ConfigError

__all__ = ["RecommendConfig", "RECOMMEND_MODELS"]

RECOMMEND_MODELS = ("auto", "popularity", "mf", "als")


@dataclasses.dataclass
class RecommendConfig(TaskConfig):
    """Options of a recommendation run.

    ``user`` / ``item`` / ``rating`` / ``timestamp``: the interaction table's columns (None: found by name;
    ``target`` names the item column when given, or the rating column). ``feedback``: ``implicit`` (every
    interaction is a positive; BPR with sampled negatives), ``explicit`` (ratings; squared error), ``auto``
    (explicit only when the target is the rating column). ``model``: ``auto`` (of popularity, matrix
    factorization and, on implicit feedback, ALS from the ``implicit`` library: the one with the highest NDCG@10 on
    the validation split), ``popularity``, ``mf`` or ``als``. ``als_alpha`` / ``als_regularization``: the ALS
    confidence scale and L2 penalty (None: each picked on validation NDCG@10 from a small grid); ``als_iterations``.
    ``reg``: on ratings, the L2 penalty on the factors and biases of each batch's (user, item) pairs (MF starts
    from the bias baseline mu + b_u + b_i). ``item_features``: a table (CSV/Parquet path) with the item column and feature columns (numbers or
    categories); items in it but in no training interaction join the catalogue, scored from their features by a
    ridge map features -> item factors learned on the trained items. ``k``: the default number of items a request
    gets (a request may ask for any k up to the catalogue).
    """

    MODELS = RECOMMEND_MODELS
    WRONG_MODEL = "model={model!r} is not a recommendation model; choose one of {models}."
    WRONG_TYPE = "A recommend config is a RecommendConfig or dict, not {type}."

    target: str | None = None
    user: str | None = None
    item: str | None = None
    rating: str | None = None
    timestamp: str | None = None
    model: Literal["auto", "popularity", "mf", "als"] = "auto"
    feedback: Literal["auto", "implicit", "explicit"] = "auto"
    factors: int = 32
    epochs: int = 40
    batch_size: int = 512
    lr: float = 0.01
    weight_decay: float = 0.0
    reg: float = 0.05
    patience: int = 5
    als_alpha: float | None = None
    als_regularization: float | None = None
    als_iterations: int = 15
    item_features: str | None = None
    feature_ridge: float = 1.0
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
        if self.als_iterations < 1:
            raise ConfigError(f"als_iterations must be >= 1; got {self.als_iterations}.")
        if self.reg < 0:
            raise ConfigError(f"reg must be >= 0; got {self.reg!r}.")
        for key in ("als_alpha", "als_regularization", "feature_ridge"):
            v = getattr(self, key)
            if v is not None and not v > 0:
                raise ConfigError(f"{key} must be > 0; got {v!r}.")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ConfigError(f"lr must be > 0 and weight_decay >= 0; got lr={self.lr}, weight_decay={self.weight_decay}.")

    def train_config(self) -> TrainConfig:
        """The shared Trainer's config for matrix factorization."""
        return TrainConfig(seed=self.seed, epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                           weight_decay=self.weight_decay, lr_schedule="constant", optimizer="adam",
                           early_stopping=True, patience=self.patience, device=self.device, progress=self.progress)
