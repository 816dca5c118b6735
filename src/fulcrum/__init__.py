"""Fulcrum: training and inference, and the balance between them.

    >>> import fulcrum
    >>> pkg = fulcrum.train("builtin:iris")                 # train, package, register
    >>> predictor = fulcrum.load("iris")                    # latest version; "iris@2", "iris@production"
    >>> predictor.predict(frame)                             # DataFrame, dict or list of dicts
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from . import errors
from .errors import FulcrumError

try:
    __version__ = version("fulcrum")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

# Public name -> module that defines it. Imported on first use (PEP 562), so
# `import fulcrum` and the CLI start fast and only pay for torch when needed.
_LAZY = {
    "train": "._api",
    "tune": "._api",
    "load": "._api",
    "evaluate": "._api",
    "Registry": ".artifact",
    "ModelPackage": ".artifact",
    "Predictor": ".runtime",
    "TrainConfig": ".config",
    "FulcrumClassifier": "._estimator",
    "FulcrumRegressor": "._estimator",
    "read_table": ".data",
    "list_builtin": ".data",
}

__all__ = ["__version__", "FulcrumError", "errors", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fulcrum' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover
    from ._api import evaluate, load, train, tune
    from ._estimator import FulcrumClassifier, FulcrumRegressor
    from .artifact import ModelPackage, Registry
    from .config import TrainConfig
    from .data import list_builtin, read_table
    from .runtime import Predictor
