"""The registered tasks, in the order ``fulcrum train`` asks them whether a table is theirs.

::

    list_tasks()                          # [ImageTask(), TextTask(), TabularTask()]: specific tasks first, the fallback last
    get_task("text") / get_task(manifest) # by name, or the task that trained a package (manifest["task"]["workload"])
    detect_task(frame, "label")           # (task, why): the first task whose detect() answers, else tabular
    detect_task(frame, "label", forced="text")

A task is registered by the module and class that define it and imported on first use, so
``import fulcrum`` stays light (a task's module may import torch, tokenizers, ...).
"""

from __future__ import annotations

import difflib
import importlib
import threading
from typing import Any, Callable, Mapping

from ..errors import ConfigError, FormatError
from ._base import Task

__all__ = ["get_task", "detect_task", "list_tasks", "task_names", "register_task", "FALLBACK"]

#: The task that takes every table no other task claims.
FALLBACK = "tabular"

# name -> "module:Class", in detection order (the fallback last)
_REGISTERED: dict[str, str] = {
    "image": "fulcrum.tasks.image._task:ImageTask",
    "transcribe": "fulcrum.tasks.speech._transcribe:TranscribeTask",  # before speech: audio + transcripts
    "speech": "fulcrum.tasks.speech._task:SpeechTask",
    "text": "fulcrum.tasks.text._task:TextTask",
    "forecast": "fulcrum.tasks.forecast._task:ForecastTask",
    "recommend": "fulcrum.tasks.recommend._task:RecommendTask",
    "tabular": "fulcrum.tasks.tabular._task:TabularTask",
}
_INSTANCES: dict[str, Task] = {}
_LOCK = threading.Lock()


def register_task(name: str, target: str | type[Task], *, before: str | None = FALLBACK) -> None:
    """Register a task class (or ``"module:Class"``) under ``name``, asked before ``before`` when detecting
    (default: before the fallback; ``before=None`` appends)."""
    if not name or not name.replace("_", "").isalnum():
        raise ConfigError(f"A task name is letters, digits and underscores, got {name!r}.")
    with _LOCK:
        items = [(k, v) for k, v in _REGISTERED.items() if k != name]
        spec: Any = target
        pos = next((i for i, (k, _) in enumerate(items) if k == before), len(items)) if before else len(items)
        items.insert(pos, (name, spec))
        _REGISTERED.clear()
        _REGISTERED.update(items)
        _INSTANCES.pop(name, None)


def task_names() -> list[str]:
    """The registered task names, in detection order."""
    return list(_REGISTERED)


def _load(name: str) -> Task:
    with _LOCK:
        task = _INSTANCES.get(name)
        if task is not None:
            return task
        spec: Any = _REGISTERED[name]
        if isinstance(spec, str):
            module, _, cls_name = spec.partition(":")
            cls = getattr(importlib.import_module(module), cls_name)
        else:
            cls = spec
        task = cls()
        _INSTANCES[name] = task
        return task


def list_tasks() -> list[Task]:
    """Every registered task (instances), in detection order."""
    return [_load(name) for name in _REGISTERED]


def _unknown(name: str) -> str:
    close = difflib.get_close_matches(name, list(_REGISTERED), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"Unknown task {name!r}.{hint} Registered tasks: {', '.join(_REGISTERED)} (see `fulcrum tasks`)."


def get_task(ref: str | Mapping[str, Any] | Any) -> Task:
    """The task named ``ref``, or the one that trained a package (a manifest, a package or a Predictor).

    A package of a task this Fulcrum does not know is a :class:`~fulcrum.errors.FormatError` that says to
    upgrade; an unknown name is a :class:`~fulcrum.errors.ConfigError` listing the registered tasks."""
    if isinstance(ref, str):
        if ref not in _REGISTERED:
            raise ConfigError(_unknown(ref))
        return _load(ref)
    manifest = getattr(getattr(ref, "package", ref), "manifest", ref)
    if not isinstance(manifest, Mapping):
        raise ConfigError(f"get_task takes a task name, a manifest or a package, not {type(ref).__name__}.")
    task = manifest.get("task")
    workload = (task.get("workload") if isinstance(task, Mapping) else None) or FALLBACK  # before workloads: tables
    if workload not in _REGISTERED:
        name = manifest.get("name")
        ref_text = f"Package {name}@{manifest.get('version')}" if name else "This package"
        raise FormatError(
            f"{ref_text} is a {workload!r} model; this Fulcrum knows the tasks {', '.join(_REGISTERED)}. "
            "Upgrade fulcrum to load it."
        )
    return _load(workload)


def detect_task(frame: Any, target: str | None, forced: str | None = None,
                log: Callable[[str], None] | None = None) -> Task:
    """The task that trains on ``frame``: ``forced`` when given (a registered name), else the first task
    whose :meth:`~Task.detect` answers (its reason is logged), else the fallback (tabular)."""
    say = log or (lambda msg: None)
    if forced not in (None, "", "auto"):
        task = get_task(str(forced))
        say(f"task: {task.name} (asked for)")
        return task
    for name in _REGISTERED:
        if name == FALLBACK:
            continue
        task = _load(name)
        why = task.detect(frame, target)
        if why:
            say(f"task: {task.name}: {why} (force another with --task NAME)")
            return task
    return _load(FALLBACK)
