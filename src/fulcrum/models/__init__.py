"""Models: torch modules and classical (scikit-learn / LightGBM) adapters behind one contract."""

from __future__ import annotations

from ..errors import ConfigError
from ._base import ModelAdapter, TaskSpec
from ._ensemble import EnsembleAdapter, caruana_weights
from ._gbm import LightGBMAdapter
from ._linear import LinearAdapter
from ._mlp import MLP, InferenceHead, MLPAdapter

__all__ = ["ModelAdapter", "TaskSpec", "MLP", "InferenceHead", "MLPAdapter", "LinearAdapter", "LightGBMAdapter",
           "EnsembleAdapter", "caruana_weights", "FAMILIES", "TRAINABLE", "adapter_class"]

FAMILIES: dict[str, type[ModelAdapter]] = {
    "linear": LinearAdapter,
    "lightgbm": LightGBMAdapter,
    "mlp": MLPAdapter,
    # loads ensemble packages; built by model selection from fitted members, never trained as a family
    "ensemble": EnsembleAdapter,
}
#: the families a model can be trained as (``--model``)
TRAINABLE: tuple[str, ...] = ("linear", "lightgbm", "mlp")


def adapter_class(family: str) -> type[ModelAdapter]:
    try:
        return FAMILIES[family]
    except KeyError:
        raise ConfigError(f"Unknown model {family!r}; choose one of {', '.join(TRAINABLE)} or 'auto'.") from None
