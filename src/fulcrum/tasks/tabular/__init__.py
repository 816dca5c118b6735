"""Tabular prediction: classification and regression on a table of columns.

Modules: ``_task`` (TabularTask, the contract's answers), ``_fit`` (the training recipe), ``_export``
(one ONNX graph: raw columns -> preprocessing -> model -> outputs), ``_codec`` (raw values -> that
graph's feeds), ``_native`` (the adapters themselves: the reference engine), ``_variants`` (pruned,
distilled, fewer and shallower trees), ``_prune`` / ``_distill`` (the MLP's), ``_flops``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._task import TabularTask

_LAZY = {
    "fit_tabular": "._fit",
    "TrainedTabular": "._fit",
    "evaluate_outputs": "._fit",
    "library_versions": "._fit",
    "AUTO_CANDIDATES": "._fit",
    "InputEncoder": "._codec",
}

__all__ = ["TabularTask", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fulcrum.tasks.tabular' has no attribute {name!r}")


if TYPE_CHECKING:  # pragma: no cover
    from ._codec import InputEncoder
    from ._fit import AUTO_CANDIDATES, TrainedTabular, evaluate_outputs, fit_tabular, library_versions
