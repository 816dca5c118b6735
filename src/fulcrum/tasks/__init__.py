"""Workloads as plug-ins: one module (or small package) per kind of data, each behind the task
contract (:class:`Task`, see ``_base.py``), found through the registry::

    from fulcrum.tasks import detect_task, get_task, list_tasks
    task = detect_task(frame, "label")          # text when a column holds free text, else tabular
    task = get_task(package.manifest)           # the task that trained a package

Importing this package is light: a task's module (torch, tokenizers, ...) loads on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._base import InputCodec, InputField, Task, TaskExample, Trained, VariantContext, VariantKind
from ._metrics import GREATER_IS_BETTER, PRIMARY, classification_metrics, greater_is_better, regression_metrics
from ._registry import FALLBACK, detect_task, get_task, list_tasks, register_task, task_names

# heavy names (the tabular recipe imports torch through the trainer), imported on first use (PEP 562)
_LAZY = {
    "TabularTask": ".tabular",
    "fit_tabular": ".tabular",
    "TrainedTabular": ".tabular",
    "evaluate_outputs": ".tabular",
    "library_versions": ".tabular",
    "AUTO_CANDIDATES": ".tabular",
}

__all__ = [
    "Task", "Trained", "TaskExample", "VariantContext", "VariantKind", "InputField", "InputCodec",
    "get_task", "detect_task", "list_tasks", "task_names", "register_task", "FALLBACK",
    "classification_metrics", "regression_metrics", "PRIMARY", "GREATER_IS_BETTER", "greater_is_better", *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fulcrum.tasks' has no attribute {name!r}")


if TYPE_CHECKING:  # pragma: no cover
    from .tabular import AUTO_CANDIDATES, TabularTask, TrainedTabular, evaluate_outputs, fit_tabular, library_versions
