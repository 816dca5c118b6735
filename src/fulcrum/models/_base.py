"""The model adapter contract every model family implements.

An adapter turns prepared features (float32, shape (N, D)) into task outputs:
class probabilities (N, K) for classification, values (N,) for regression.
It saves itself as plain files (safetensors, JSON, LightGBM's text format) plus
a JSON-able ``meta`` dict, and loads back from them without executing code.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Literal

import numpy as np

from ..config import TrainConfig
from ..errors import NotFittedError

__all__ = ["TaskSpec", "ModelAdapter", "ReadFile"]

ReadFile = Callable[[str], bytes]


@dataclass
class TaskSpec:
    """What the model must predict: the task kind and, for classification, the classes."""

    kind: Literal["classification", "regression"]
    n_classes: int = 0
    class_weights: list[float] | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "n_classes": self.n_classes}


class ModelAdapter(ABC):
    family: ClassVar[str]

    def __init__(self, task: TaskSpec, config: TrainConfig) -> None:
        self.task = task
        self.config = config
        self.history_: list[dict[str, Any]] = []
        # FLOPs spent by fit: counted by torch's FLOP counter for torch models,
        # a stated estimate (see each adapter's flops_method) for classical ones
        self.training_flops_: int = 0

    flops_method: ClassVar[str] = "counted"

    @abstractmethod
    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        X_val: np.ndarray | None,
        y_val: np.ndarray | None,
        **kwargs: Any,
    ) -> "ModelAdapter":
        """Train; returns self."""

    @abstractmethod
    def predict_output(self, X: np.ndarray) -> np.ndarray:
        """(N, D) features -> (N, K) probabilities or (N,) values."""

    @abstractmethod
    def to_files(self) -> tuple[dict[str, Any], dict[str, bytes]]:
        """(meta, files) that ``from_files`` restores."""

    @classmethod
    @abstractmethod
    def from_files(cls, task: TaskSpec, meta: dict[str, Any], read: ReadFile) -> "ModelAdapter":
        """Restore a fitted adapter from its files; never executes code."""

    def describe(self) -> dict[str, Any]:
        """Human-facing facts about the fitted model (e.g. coefficients)."""
        return {}

    def _check_fitted(self, attr: str) -> None:
        if getattr(self, attr, None) is None:
            raise NotFittedError(
                f"This {type(self).__name__} is not fitted yet; call fit(X, y) before predicting."
            )


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def balanced_class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """scikit-learn's 'balanced' weights: n_samples / (n_classes * count(class))."""
    counts = np.bincount(y.astype(np.int64), minlength=n_classes).astype(np.float64)
    counts[counts == 0] = 1.0
    return len(y) / (n_classes * counts)
