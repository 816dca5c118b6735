"""The Python API: ``train``, ``load``, ``evaluate`` — the same verbs as the CLI."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

from ._runs import open_run
from .config import TrainConfig
from .errors import ConfigError, DataError

__all__ = ["train", "tune", "load", "evaluate", "fit_to_package"]


def _source_name(data: Any) -> tuple[str, str]:
    """(source description, default model name) for a path, builtin:NAME or DataFrame."""
    from .artifact import sanitize_name

    if isinstance(data, pd.DataFrame):
        return "dataframe", "model"
    text = str(data)
    if text.startswith("builtin:"):
        return text, sanitize_name(text.split(":", 1)[1])
    return str(Path(text).resolve()), sanitize_name(Path(text).stem)


def _runs_root(registry: Any) -> Path:
    """``runs/`` beside the registry: each run of a name in its own ``runs/<name>/<key>-<id>/`` (see ``_runs``)."""
    return Path(registry.root).parent / "runs"


def _config_options(config: Any) -> dict[str, Any]:
    """Options from a config object (the keys it sets), a dict or a file (JSON/TOML/YAML)."""
    import dataclasses

    from .config import load_config_file

    if config is None:
        return {}
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        out = {}
        for f in dataclasses.fields(config):
            value = getattr(config, f.name)
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING)  # type: ignore[misc]
            if value != default and not (isinstance(value, tuple) and list(value) == default):
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out
    if isinstance(config, dict):
        return dict(config)
    return load_config_file(config)


def _forced_task(options: dict[str, Any]) -> str | None:
    """The task name the options ask for, or None for auto (``task="classification"`` is the old kind)."""
    name = options.get("task")
    if name in (None, "", "auto", "classification", "regression"):
        return None
    return str(name)


def _check_keys(options: dict[str, Any], forced: str | None) -> None:
    """Refuse a key no (forced) task knows, before reading any data: one line with the closest known key."""
    import dataclasses
    import difflib

    from .tasks import get_task, list_tasks

    tasks = [get_task(forced)] if forced else list_tasks()
    known = {"task", "kind"}
    for task in tasks:
        known |= {f.name for f in dataclasses.fields(task.config_class or TrainConfig)}
    for key in options:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            whose = f"the {forced} task" if forced else "any task"
            raise ConfigError(f"Unknown config key {key!r} for {whose}.{hint} Known keys: {', '.join(sorted(known))}.")


def task_config(task: Any, options: dict[str, Any]) -> Any:
    """``task``'s config from plain options: ``task`` is the workload (recorded where the config has the key),
    ``kind`` must be one the task trains (dropped when its config has no such key); the task's config class
    refuses unknown keys."""
    import dataclasses

    opts = dict(options)
    name = opts.pop("task", "auto")
    kind = opts.get("kind", "auto")
    if name in ("classification", "regression"):  # the old meaning of task
        if kind not in ("auto", name):
            raise ConfigError(f"task={name!r} (the old spelling of kind) contradicts kind={kind!r}; pass only kind=...")
        kind = opts["kind"] = name
    if kind not in ("auto", *task.kinds):
        raise ConfigError(f"The {task.name} task trains {' and '.join(task.kinds)} models; kind={kind!r} does not "
                          "apply to it (drop --kind, or force another task with --task NAME).")
    fields = {f.name for f in dataclasses.fields(task.config_class or TrainConfig)}
    if "kind" not in fields:
        opts.pop("kind", None)
    if "task" in fields:
        opts["task"] = task.name
    return task.make_config(opts)


def train(
    data: Any,
    target: str | None = None,
    *,
    name: str | None = None,
    model: str | None = None,
    config: TrainConfig | dict[str, Any] | str | os.PathLike[str] | None = None,
    registry: Any = None,
    callbacks: Sequence[Any] = (),
    log: Callable[[str], None] | None = None,
    **overrides: Any,
) -> Any:
    """Train on ``data`` (path, ``builtin:NAME`` or DataFrame) and register a new model version.

    Returns the registered :class:`~fulcrum.artifact.ModelPackage`. Options come from
    ``config`` (object, dict or file) and keyword overrides, e.g. ``epochs=50``. The task is
    ``task=NAME`` when given, else the first registered task that recognises the table (a long
    free-text column and a label: ``text``), else ``tabular``; its config class checks the options
    (``fulcrum tasks`` lists the tasks).

    Tables: ``preset="fast" | "balanced" | "best"`` says what ``model="auto"`` tries, ``time_limit=SECONDS``
    bounds the whole call (default: the preset's, scaled to the table), ``infer_limit=MS`` keeps only models
    whose graph answers one row within MS milliseconds here, ``refit_full=True`` refits the choice on every
    row; the package's manifest has the leaderboard under ``selection`` (``fulcrum.tasks.tabular._select``).
    """
    import time

    t0 = time.perf_counter()  # a time limit covers the whole run: imports and reading the data too
    from .tasks.tabular._select import RUN_STARTED

    started = RUN_STARTED.set(t0)
    try:
        return _train(data, target, name=name, model=model, config=config, registry=registry, callbacks=callbacks,
                      log=log, overrides=overrides)
    finally:
        RUN_STARTED.reset(started)


def tune(
    data: Any,
    target: str | None = None,
    *,
    trials: int = 20,
    time_limit: float | None = None,
    model: str = "lightgbm",
    backend: str = "local",
    pruner: Any = "median",
    folds: int = 5,
    name: str | None = None,
    registry: Any = None,
    log: Callable[[str], None] | None = None,
    address: str | None = None,
    **overrides: Any,
) -> Any:
    """Search ``model``'s hyperparameters (``lightgbm`` | ``mlp`` | ``linear``) on a table with Optuna (TPE,
    bad trials pruned from their intermediate reports), then train the best trial's configuration through
    ``train``'s path and register it. At most ``trials`` trials, none started after ``time_limit`` seconds.

    Returns the :class:`~fulcrum.artifact.ModelPackage`; its manifest's ``tuning`` holds the study's summary
    (trials, pruned, best params and value, the defaults' value, time) and ``tuning/search.png`` plots the
    search. ``pruner``: ``"median"`` | ``"halving"`` | ``"none"`` or an Optuna pruner; ``folds``: CV folds
    per linear / LightGBM trial. Other keywords are config keys (``epochs=30``). The search spaces and what a
    trial measures: ``fulcrum.tasks.tabular._tune``. ``backend="ray"`` runs the trials on a Ray cluster
    (Ray Tune: OptunaSearch over the same space, ASHA pruning; ``address`` as for ``fulcrum._ray.connect``).
    """
    from .artifact import Registry, validate_name
    from .data import builtin_info
    from .tasks import FALLBACK, detect_task, get_task
    from .tasks.tabular._tune import PLOT_FILE, check_tune_options, plot_study, run_study

    check_tune_options(trials, time_limit, model, backend, pruner, folds)
    merged = dict(overrides)
    if target is not None:
        merged["target"] = target
    for key in ("model", "backend", "search_trials", "time_limit"):
        if key in merged:
            raise ConfigError(f"{key}= is not a config key for tune; pass tune's own argument instead "
                              "(model=, backend=, trials=, time_limit=).")
    if not merged.get("target") and isinstance(data, str) and data.startswith("builtin:"):
        merged["target"] = builtin_info(data.split(":", 1)[1]).target
    forced = _forced_task(merged)
    if forced not in (None, "tabular"):
        raise ConfigError(f"tune searches tabular models (linear, lightgbm, mlp); task={forced!r} is not one.")
    _check_keys(merged, "tabular")
    source, default_name = _source_name(data)
    name = validate_name(name or default_name)
    progress = bool(merged.get("progress", True))
    df = get_task(forced or FALLBACK).read(data, log=log)
    task = detect_task(df, merged.get("target"), "tabular", log=log)
    cfg = task_config(task, {**merged, "model": model})
    summary = run_study(df, cfg, family=model, trials=int(trials), time_limit=time_limit, pruner=pruner,
                        folds=int(folds), say=log, progress=progress, backend=backend,
                        address=address)
    if log:
        base = summary["baseline"]["value"]
        log(f"best trial {summary['best_trial']}: {summary['metric']} {summary['best_value']:.4f} "
            f"(defaults, trial 0: {'-' if base is None else f'{base:.4f}'}); "
            f"{summary['pruned']} of {summary['trials']} trials pruned; training it")
    png = plot_study(summary, title=f"{name}: {model} search, {summary['metric']} per trial "
                                    f"({summary['pruned']} of {summary['trials']} pruned)")
    final = cfg.replace(**summary["best_params"])
    reg = registry if isinstance(registry, Registry) else Registry(registry)
    return fit_to_package(df, final, name=name, registry=reg, source=source, log=log, task=task,
                          extra_manifest={"tuning": summary}, extra_files={PLOT_FILE: png})


def _train(data: Any, target: str | None, *, name: str | None, model: str | None, config: Any, registry: Any,
           callbacks: Sequence[Any], log: Callable[[str], None] | None, overrides: dict[str, Any]) -> Any:
    from .artifact import Registry, validate_name
    from .data import builtin_info
    from .tasks import FALLBACK, detect_task, get_task

    merged = {**_config_options(config), **overrides}
    if target is not None:
        merged["target"] = target
    if model is not None:
        merged["model"] = model
    if not merged.get("target") and isinstance(data, str) and data.startswith("builtin:"):
        merged["target"] = builtin_info(data.split(":", 1)[1]).target
    forced = _forced_task(merged)
    _check_keys(merged, forced)

    source, default_name = _source_name(data)
    name = validate_name(name or default_name)
    reg = registry if isinstance(registry, Registry) else Registry(registry)
    df = get_task(forced or FALLBACK).read(data, log=log)
    task = detect_task(df, merged.get("target"), forced, log=log)
    cfg = task_config(task, merged)

    options = {"task": task.name, **{k: v for k, v in cfg.to_dict().items() if k not in ("resume", "progress")}}
    run_key = hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode()).hexdigest()
    # Each run in its own directory, locked while it lives: concurrent runs of one name never share
    # files, and --resume finds the interrupted run of the same name and options.
    run = open_run(_runs_root(reg), name, run_key, resume=bool(getattr(cfg, "resume", False)), config=options, log=log)
    try:
        pkg = fit_to_package(df, cfg, name=name, registry=reg, source=source, callbacks=callbacks,
                             checkpoint_dir=run.checkpoints, log=log, task=task)
    except BaseException:
        run.fail()  # keep the checkpoints for --resume (a run that saved none leaves nothing)
        raise
    run.finish()  # the run is in the registry now
    return pkg


def fit_to_package(
    df: pd.DataFrame,
    cfg: Any,
    *,
    name: str,
    registry: Any,
    source: str = "dataframe",
    callbacks: Sequence[Any] = (),
    checkpoint_dir: Path | None = None,
    log: Callable[[str], None] | None = None,
    task: Any = None,
    extra_manifest: dict[str, Any] | None = None,
    extra_files: dict[str, bytes] | None = None,
) -> Any:
    """Train through ``task`` (default: detected from the table, or the config's ``task``), measure what
    training cost and what a prediction costs, then register (with ``extra_manifest`` sections and
    ``extra_files``, e.g. ``fulcrum.tune``'s study summary and plot, in the same package)."""
    from .costs import CostModel, measure, money
    from .tasks import detect_task

    if task is None:
        forced = getattr(cfg, "task", None) if not isinstance(cfg, dict) else cfg.get("task")
        task = detect_task(df, getattr(cfg, "target", None), None if forced in ("classification", "regression") else forced,
                           log=log)
    backend = getattr(cfg, "backend", "local")
    if backend == "ray" and (getattr(task, "name", None) != "tabular" or getattr(cfg, "model", None) != "mlp"):
        raise ConfigError("backend='ray' trains the tabular MLP on Ray Train (--model mlp); other models and "
                          "tasks train with --backend local.")
    if backend not in ("local", "ray"):
        raise ConfigError(f"backend={backend!r} is not a training backend; use backend='local' or 'ray'.")
    with measure() as meter:
        trained = task.fit(df, cfg, source=source, callbacks=callbacks, checkpoint_dir=checkpoint_dir, log=log)
        meter.flops = trained.training_flops
    record = meter.record
    priced = money(record, CostModel())
    trained.manifest["costs"] = {
        "training": {**record.to_dict(), "usd": priced["total_usd"], "co2_g": priced["co2_g"],
                     "flops_methods": trained.flops_methods},
    }
    deadline = (trained.extra or {}).get("deadline") if isinstance(getattr(trained, "extra", None), dict) else None
    if getattr(cfg, "measure_inference", True) and trained.test_frame is not None and len(trained.test_frame):
        # within a time limit: the measurement windows shrink to the time left (at least 20 ms each)
        window = 0.2 if deadline is None else max(0.02, min(0.2, (deadline.remaining() - 0.3) / 3))
        trained.manifest["costs"]["inference"] = _measure_inference(trained, min_seconds=window)
    if deadline is not None and isinstance(trained.manifest.get("selection"), dict):
        timing = trained.manifest["selection"]["time"]
        timing["used_s"] = deadline.elapsed()  # to here; registering (writing the files) follows
        if timing["limit_s"] is not None and timing["used_s"] > timing["limit_s"]:
            timing["over_by_s"] = timing["used_s"] - timing["limit_s"]
            if log:
                log(f"note: the run took {timing['used_s']:.1f} s, over its {timing['limit_s']:g} s time limit "
                    "(the first fold of the cheapest candidates and the final fit always run)")
    trained.files["costs.json"] = json.dumps(
        {"format": 1, "cost_model": CostModel().to_dict(), **trained.manifest["costs"]}, sort_keys=True
    ).encode()
    trained.manifest.update(extra_manifest or {})
    trained.files.update(extra_files or {})
    return registry.register(name, trained.manifest, trained.files)


def _measure_inference(trained: Any, min_seconds: float = 0.2) -> dict[str, Any]:
    """Per-prediction cost of the new model on this machine, from a staged copy of its package."""
    import tempfile

    from .artifact import ModelPackage, write_package
    from .costs import benchmark_predictor, flops_per_prediction
    from .runtime import Predictor

    flops, method = flops_per_prediction(trained.manifest)
    with tempfile.TemporaryDirectory(prefix="fulcrum-bench-") as tmp:
        staged = write_package(Path(tmp) / "pkg", {**trained.manifest, "name": "staged"}, trained.files)
        predictor = Predictor(ModelPackage.load(staged))
        bench = benchmark_predictor(predictor, trained.test_frame, min_seconds=min_seconds, flops_per_row=flops)
    return {"base": bench, "flops_per_prediction": flops, "flops_method": method,
            "engine": type(getattr(predictor, "engine", None)).__name__ if hasattr(predictor, "engine") else "native"}


def load(ref: str, *, registry: Any = None, engine: str = "auto", variant: str | None = None, **kwargs: Any) -> Any:
    """Load a registered model (``name``, ``name@3``, ``name@production``) or a package directory as a Predictor.

    A reference is a directory only when it clearly is a path (``./iris``, ``/srv/models/iris``,
    a ``pathlib.Path``); ``iris`` is always the registry's model, even when ``./iris/`` exists.
    ``engine``: "auto" (ONNX Runtime when the package has model.onnx), "onnx" or "native";
    ``variant``: an optimized variant's id (runs ``variants/<id>/model.onnx``).
    """
    from .artifact import load_reference
    from .runtime import Predictor

    pkg, _ = load_reference(ref, registry)
    return Predictor(pkg, engine=engine, variant=variant, **kwargs)


def evaluate(ref: str, data: Any, *, registry: Any = None) -> dict[str, Any]:
    """Metrics of a registered model on labelled data (the target column must be present), as the model's
    task computes them.

    Rows with a missing target are left out: ``dropped_missing_target`` counts them (``target``
    names the column); a classifier's result also holds ``labels`` (the confusion matrix's order).
    """
    from .data._coerce import missing_mask

    pred = load(ref, registry=registry)
    df = pred.task.read(data)
    if pred.target not in df.columns:
        raise DataError(
            f"The data has no target column {pred.target!r} to evaluate against; add it or use `fulcrum predict`."
        )
    missing = missing_mask(df[pred.target])
    if missing.all():
        raise DataError(f"Every row's target {pred.target!r} is missing; evaluate needs labelled rows.")
    df = df[~missing]
    outputs = pred.predict_outputs(df)
    extra = {"target": pred.target, "dropped_missing_target": int(missing.sum()), **pred.task.table_metrics(pred, df)}
    if pred.kind == "classification":
        labels = list(pred.labels)
        index = {lab: i for i, lab in enumerate(labels)}
        values = df[pred.target].tolist()
        unknown = sorted({str(v) for v in values if _label_key(v, index) is None})
        if unknown:
            raise DataError(f"Target values never seen in training: {', '.join(unknown[:5])}; evaluate on the model's labels {pred.labels}.")
        truth = [labels[_label_key(v, index)] for v in values]  # type: ignore[index]
        return {**pred.task.evaluate(pred.manifest, truth, outputs), **extra, "labels": labels}
    if pred.kind != "regression":  # e.g. a recommender's held-out item ids: the task reads its own truth
        return {**pred.task.evaluate(pred.manifest, df[pred.target].tolist(), outputs), **extra}
    return {**pred.task.evaluate(pred.manifest, df[pred.target].to_numpy(float), outputs), **extra}


def _label_key(value: Any, index: dict[Any, int]) -> int | None:
    if value in index:
        return index[value]
    for cand in (str(value),):
        for k, i in index.items():
            if str(k) == cand:
                return i
    return None
