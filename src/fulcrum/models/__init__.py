"""Models: torch modules and classical (scikit-learn / LightGBM) adapters behind one contract."""

from __future__ import annotations

from ..errors import ConfigError
from ._base import ModelAdapter, TaskSpec
from ._gbm import LightGBMAdapter
from ._linear import LinearAdapter
from ._mlp import MLP, InferenceHead, MLPAdapter

__all__ = ["ModelAdapter", "TaskSpec", "MLP", "InferenceHead", "MLPAdapter", "LinearAdapter", "LightGBMAdapter",
           "FAMILIES", "adapter_class"]

FAMILIES: dict[str, type[ModelAdapter]] = {
    "linear": LinearAdapter,
    "lightgbm": LightGBMAdapter,
    "mlp": MLPAdapter,
}


def adapter_class(family: str) -> type[ModelAdapter]:
    try:
        return FAMILIES[family]
    except KeyError:
        raise ConfigError(f"Unknown model {family!r}; choose one of {', '.join(FAMILIES)} or 'auto'.") from None
