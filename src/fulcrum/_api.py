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

__all__ = ["train", "load", "evaluate", "fit_to_package"]


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
    ``config`` (object, dict or file) and keyword overrides, e.g. ``epochs=50``.
    """
    from .artifact import Registry, validate_name
    from .data import builtin_info, read_table

    base: dict[str, Any] = {}
    if isinstance(config, TrainConfig):
        base = config.to_dict()
    elif isinstance(config, dict):
        base = dict(config)
    elif config is not None:
        base = TrainConfig.from_file(config).to_dict()
    if target is not None:
        overrides["target"] = target
    if model is not None:
        overrides["model"] = model
    merged = {**base, **overrides}
    if not merged.get("target") and isinstance(data, str) and data.startswith("builtin:"):
        merged["target"] = builtin_info(data.split(":", 1)[1]).target
    cfg = TrainConfig.from_dict(merged)

    source, default_name = _source_name(data)
    name = validate_name(name or default_name)
    reg = registry if isinstance(registry, Registry) else Registry(registry)
    df = read_table(data, log=log)

    options = {k: v for k, v in cfg.to_dict().items() if k not in ("resume", "progress")}
    run_key = hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode()).hexdigest()
    # Each run in its own directory, locked while it lives: concurrent runs of one name never share
    # files, and --resume finds the interrupted run of the same name and options.
    run = open_run(_runs_root(reg), name, run_key, resume=cfg.resume, config=options, log=log)
    try:
        pkg = fit_to_package(df, cfg, name=name, registry=reg, source=source, callbacks=callbacks,
                             checkpoint_dir=run.checkpoints, log=log)
    except BaseException:
        run.release()  # keep the checkpoints for --resume
        raise
    run.finish()  # the run is in the registry now
    return pkg


def fit_to_package(
    df: pd.DataFrame,
    cfg: TrainConfig,
    *,
    name: str,
    registry: Any,
    source: str = "dataframe",
    callbacks: Sequence[Any] = (),
    checkpoint_dir: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> Any:
    """Train, measure what training cost and what a prediction costs, then register."""
    from .costs import CostModel, measure, money
    from .tasks import fit_tabular

    if cfg.backend != "local":
        raise ConfigError(f"backend={cfg.backend!r} is not available in this build; use backend='local'.")
    with measure() as meter:
        trained = fit_tabular(df, cfg, source=source, callbacks=callbacks, checkpoint_dir=checkpoint_dir, log=log)
        meter.flops = trained.training_flops
    record = meter.record
    priced = money(record, CostModel())
    trained.manifest["costs"] = {
        "training": {**record.to_dict(), "usd": priced["total_usd"], "co2_g": priced["co2_g"],
                     "flops_methods": trained.flops_methods},
    }
    if cfg.measure_inference and trained.test_frame is not None and len(trained.test_frame):
        trained.manifest["costs"]["inference"] = _measure_inference(trained)
    trained.files["costs.json"] = json.dumps(
        {"format": 1, "cost_model": CostModel().to_dict(), **trained.manifest["costs"]}, sort_keys=True
    ).encode()
    return registry.register(name, trained.manifest, trained.files)


def _measure_inference(trained: Any) -> dict[str, Any]:
    """Per-prediction cost of the new model on this machine, from a staged copy of its package."""
    import tempfile

    from .artifact import ModelPackage, write_package
    from .costs import benchmark_predictor, flops_per_prediction
    from .runtime import Predictor

    flops, method = flops_per_prediction(trained.manifest)
    with tempfile.TemporaryDirectory(prefix="fulcrum-bench-") as tmp:
        staged = write_package(Path(tmp) / "pkg", {**trained.manifest, "name": "staged"}, trained.files)
        predictor = Predictor(ModelPackage.load(staged))
        bench = benchmark_predictor(predictor, trained.test_frame, min_seconds=0.2, flops_per_row=flops)
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
    """Metrics of a registered model on labelled data (the target column must be present).

    Rows with a missing target are left out: ``dropped_missing_target`` counts them (``target``
    names the column); a classifier's result also holds ``labels`` (the confusion matrix's order).
    """
    from .data import read_table
    from .data._coerce import missing_mask
    from .tasks import evaluate_outputs

    pred = load(ref, registry=registry)
    df = read_table(data)
    if pred.target not in df.columns:
        raise DataError(
            f"The data has no target column {pred.target!r} to evaluate against; add it or use `fulcrum predict`."
        )
    missing = missing_mask(df[pred.target])
    if missing.all():
        raise DataError(f"Every row's target {pred.target!r} is missing; evaluate needs labelled rows.")
    df = df[~missing]
    out = pred.predict_output(df)
    extra = {"target": pred.target, "dropped_missing_target": int(missing.sum())}
    if pred.kind == "classification":
        index = {lab: i for i, lab in enumerate(pred.labels)}
        values = df[pred.target].tolist()
        unknown = sorted({str(v) for v in values if _label_key(v, index) is None})
        if unknown:
            raise DataError(f"Target values never seen in training: {', '.join(unknown[:5])}; evaluate on the model's labels {pred.labels}.")
        y = [_label_key(v, index) for v in values]
        return {**evaluate_outputs("classification", y, out, len(pred.labels)), **extra, "labels": list(pred.labels)}
    return {**evaluate_outputs("regression", df[pred.target].to_numpy(float), out, 0), **extra}


def _label_key(value: Any, index: dict[Any, int]) -> int | None:
    if value in index:
        return index[value]
    for cand in (str(value),):
        for k, i in index.items():
            if str(k) == cand:
                return i
    return None
