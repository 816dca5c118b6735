"""Build optimized variants of a model package, measure each on this machine, store them with it.

::

    from fulcrum.optimize import optimize_package
    report = optimize_package("iris@1")                  # every variant that applies to the model family
    report.variants["int8-dynamic"]["latency_ms"]["b1"]  # {"p50": ..., "p95": ..., "p99": ...}

Variant kinds (ids in brackets):

=================  ======================  =================================================================
kind               families                what it is
=================  ======================  =================================================================
onnx-fp32          mlp, linear, lightgbm   the package graph after ONNX Runtime's offline graph optimization
int8-dynamic       mlp, linear             quantize_dynamic of the model part, composed after preprocessing
int8-static        mlp, linear             quantize_static (QDQ), calibrated on prepared training rows
pruned [pruned-S]  mlp                     structured pruning: S% of each hidden layer's units removed,
                                           then a short fine-tune on the training split
distilled          mlp                     a 4x narrower MLP trained on the teacher's soft targets (T = 2)
trees [trees-P]    lightgbm                the first P% of the boosting rounds (truncated num_iteration)
shallow            lightgbm                retrained with num_leaves = 7 on the training split
=================  ======================  =================================================================

Linear models get only fp32 / int8: there is nothing to prune or distil in one matrix
product. Tree ensembles have no int8 kernels in ONNX Runtime, so they get fewer or
shallower trees instead. The data a variant needs (calibration rows, fine-tuning, the
held-out test split every variant is scored on) is re-created from the package's data
source with the stored seed and split sizes, and checked against the stored fingerprint.

The parent is measured alongside as variant ``"base"`` (its file is the package's own
``model.onnx``); every figure of a variant is compared with it, and a variant that is
slower, larger or worse than its parent is recorded as such.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import ConfigError, DataError, FormatError, NotFoundError
from ._bench import METHOD, BenchSettings, benchmark_graphs, evaluate_graph

__all__ = ["VARIANT_KINDS", "OptimizeOptions", "OptimizeReport", "optimize_package", "promote_variant",
           "variant_kinds_for", "verdict", "store", "expand_ids"]

#: kind -> families it applies to
VARIANT_KINDS: dict[str, tuple[str, ...]] = {
    "onnx-fp32": ("mlp", "linear", "lightgbm"),
    "int8-dynamic": ("mlp", "linear"),
    "int8-static": ("mlp", "linear"),
    "pruned": ("mlp",),
    "distilled": ("mlp",),
    "trees": ("lightgbm",),
    "shallow": ("lightgbm",),
}
_WHY_NOT = {
    "linear": "a linear model is one matrix product: nothing to prune or distil (only fp32 / int8 apply)",
    "lightgbm": "tree ensembles have no int8 kernels in ONNX Runtime, and pruning/distillation here are for MLPs; "
                "trees and shallow are the tree analogues",
    "mlp": "trees and shallow are for tree ensembles",
}


@dataclass
class OptimizeOptions:
    sparsities: tuple[float, ...] = (0.5, 0.8)
    fine_tune_epochs: int = 10
    student_shrink: int = 4
    temperature: float = 2.0
    alpha: float = 0.7
    distill_epochs: int | None = None  # None: the teacher's configured epochs (with early stopping)
    tree_fractions: tuple[float, ...] = (0.5, 0.25)
    shallow_leaves: int = 7
    calibration_rows: int = 512
    bench: BenchSettings = field(default_factory=BenchSettings)

    def __post_init__(self) -> None:
        for s in self.sparsities:
            if not 0 < float(s) < 1:
                raise ConfigError(f"Pruning sparsities are fractions in (0, 1), e.g. 0.5 for 50%; got {s!r}.")
        for f in self.tree_fractions:
            if not 0 < float(f) < 1:
                raise ConfigError(f"Tree fractions are in (0, 1), e.g. 0.5 keeps half the boosting rounds; got {f!r}.")


@dataclass
class OptimizeReport:
    package: Any  # the package, reloaded after the variants were added
    variants: dict[str, dict[str, Any]]
    built: list[str]
    skipped: dict[str, str]
    metric_name: str
    greater_is_better: bool
    measured: bool
    registry: Any = None  # the registry the package came from (None for a package directory)

    def to_dict(self) -> dict[str, Any]:
        return {"ref": self.package.ref, "metric": self.metric_name, "greater_is_better": self.greater_is_better,
                "built": self.built, "skipped": self.skipped, "variants": self.variants}


# ----------------------------------------------------------------------------- context


@dataclass
class _Context:
    package: Any
    kind: str
    task: Any
    labels: list[Any] | None
    preprocess: dict[str, Any]
    adapter: Any
    family: str
    config: Any
    metric_name: str
    greater: bool
    n_features: int
    X_tr: np.ndarray
    y_tr: np.ndarray
    X_va: np.ndarray
    y_va: np.ndarray
    test: Any
    y_te: np.ndarray


def _train_config(manifest: Mapping[str, Any]) -> Any:
    import dataclasses

    from ..config import TrainConfig

    known = {f.name for f in dataclasses.fields(TrainConfig)}
    stored = {k: v for k, v in (manifest.get("config") or {}).items() if k in known}
    return TrainConfig.from_dict(stored)


def _check_onnx(pkg: Any) -> str:
    m = pkg.manifest
    graph = (m.get("onnx") or {}).get("file", "model.onnx")
    if not pkg.has_file(graph):
        raise FormatError(
            f"Model {pkg.ref} (package format {m.get('format_version')}, written by fulcrum {m.get('fulcrum_version', '?')}) "
            f"has no model.onnx, so there is no graph to optimize; re-train it with this Fulcrum "
            f"(`fulcrum train ...`) to get one."
        )
    if "task" not in m or "model" not in m:
        raise FormatError(f"Package {pkg.ref} has no task/model section; it was not written by `fulcrum train`.")
    return str(graph)


def _load_data(manifest: Mapping[str, Any], data: Any) -> Any:
    from .. import data as D

    source = data if data is not None else (manifest.get("data") or {}).get("source")
    if source is None or (isinstance(source, str) and source == "dataframe"):
        raise DataError(
            "This model was trained from an in-memory DataFrame, so its training data cannot be re-read; pass the "
            "same table (Python: data=frame; CLI: --data FILE) to calibrate, fine-tune and score variants."
        )
    if isinstance(source, str) and not source.startswith("builtin:") and not Path(source).exists():
        raise DataError(
            f"The training data {source!r} recorded in the package no longer exists; pass the same table with "
            f"--data FILE (Python: data=...) to calibrate, fine-tune and score variants."
        )
    return D.read_table(source), source


def load_context(pkg: Any, data: Any = None) -> _Context:
    """Everything variants need: adapter, preprocessing, and the re-created train/val/test splits."""
    from .. import data as D
    from ..models import TaskSpec, adapter_class
    from ..tasks._metrics import GREATER_IS_BETTER, PRIMARY

    m = pkg.manifest
    kind = m["task"]["kind"]
    target = m["task"]["target"]
    labels = m["task"].get("labels")
    cfg = _train_config(m)
    df, source = _load_data(m, data)
    if target not in df.columns:
        raise DataError(f"The data {source!r} has no target column {target!r}; pass the table the model was trained on.")
    df, _ = D.check_target(df, target, kind)
    stored_fp = (m.get("data") or {}).get("fingerprint")
    if stored_fp and D.fingerprint(df) != stored_fp:
        raise DataError(
            f"The data {source!r} differs from the data {pkg.ref} was trained on (fingerprint mismatch), so its "
            f"held-out test split cannot be re-created; pass the original training table with --data FILE."
        )
    train, val, test = D.train_val_test_split(df, target, task=kind, test_size=cfg.test_size, val_size=cfg.val_size,
                                              seed=cfg.seed)
    if kind == "classification":
        codec = D.LabelCodec().fit(df[target])
        if json.loads(json.dumps(codec.classes_)) != labels:
            raise DataError(f"The data's classes {codec.classes_} differ from the model's {labels}; pass the training table.")
        y_tr, y_va, y_te = (codec.encode(s[target]) for s in (train, val, test))
        task = TaskSpec("classification", n_classes=len(labels))
    else:
        y_tr, y_va, y_te = (s[target].to_numpy(dtype=np.float64) for s in (train, val, test))
        task = TaskSpec("regression")
    preprocess = pkg.read_json("preprocess.json")
    pre = D.Preprocessor.from_dict(preprocess)
    family = m["model"]["family"]
    adapter = adapter_class(family).from_files(task, m["model"], pkg.read_bytes)
    primary = (m.get("metrics") or {}).get("primary", {}).get("name") or PRIMARY[kind]
    return _Context(pkg, kind, task, labels, preprocess, adapter, family, cfg, primary,
                    GREATER_IS_BETTER.get(primary, True), int(pre.n_features_), pre.transform(train), y_tr,
                    pre.transform(val), y_va, test, y_te)


# ----------------------------------------------------------------------------- planning


def variant_kinds_for(family: str) -> list[str]:
    return [k for k, fams in VARIANT_KINDS.items() if family in fams]


def expand_ids(items: Sequence[str], opts: OptimizeOptions) -> set[str]:
    """Kinds or ids -> the variant ids they name (``pruned`` -> ``pruned-50``, ``pruned-80``, ...)."""
    out: set[str] = set()
    for item in items:
        if item in VARIANT_KINDS:
            out.update(vid for vid, _ in _ids_for(item, opts))
        else:
            out.add(item)
    return out


def _ids_for(kind: str, opts: OptimizeOptions) -> list[tuple[str, dict[str, Any]]]:
    if kind == "pruned":
        return [(f"pruned-{round(100 * s)}", {"sparsity": float(s), "method": "structured"}) for s in opts.sparsities]
    if kind == "trees":
        return [(f"trees-{round(100 * f)}", {"fraction": float(f)}) for f in opts.tree_fractions]
    return [(kind, {})]


def _plan(family: str, requested: Sequence[str] | None, existing: Mapping[str, Any],
          opts: OptimizeOptions) -> tuple[list[tuple[str, str, dict[str, Any]]], dict[str, str], list[str]]:
    """(to build: [(id, kind, params)], skipped: {kind: reason}, wanted existing ids)."""
    applicable = variant_kinds_for(family)
    all_ids = {vid: (kind, p) for kind in VARIANT_KINDS for vid, p in _ids_for(kind, opts)}
    skipped: dict[str, str] = {}
    wanted: list[tuple[str, str, dict[str, Any]]] = []
    if requested is None:
        for kind in VARIANT_KINDS:
            if kind in applicable:
                wanted += [(vid, kind, p) for vid, p in _ids_for(kind, opts)]
            else:
                skipped[kind] = f"not for {family} models: {_WHY_NOT[family]}"
    else:
        for item in requested:
            if item in VARIANT_KINDS:
                if item not in applicable:
                    raise ConfigError(f"Variant kind {item!r} does not apply to a {family} model ({_WHY_NOT[family]}); "
                                      f"for {family} choose from {', '.join(applicable)}.")
                wanted += [(vid, item, p) for vid, p in _ids_for(item, opts)]
            elif item in all_ids and all_ids[item][0] in applicable:
                wanted.append((item, *all_ids[item]))
            elif item in existing or item == "base":
                continue
            else:
                prefix = {"pruned-": "pruned", "trees-": "trees"}
                kind = next((k for p, k in prefix.items() if item.startswith(p)), None)
                num = item.split("-", 1)[1] if kind else ""
                if kind in applicable and num.isdigit() and 0 < int(num) < 100:
                    key = "sparsity" if kind == "pruned" else "fraction"
                    params = {key: int(num) / 100, **({"method": "structured"} if kind == "pruned" else {})}
                    wanted.append((item, kind, params))
                    continue
                raise NotFoundError(
                    f"Unknown variant {item!r} for this {family} model. Existing variants: "
                    f"{', '.join(sorted(existing)) or '(none yet)'}; kinds that can be built: {', '.join(applicable)}"
                    f"{' (pruned-NN / trees-NN for another percentage)' if {'pruned', 'trees'} & set(applicable) else ''}."
                )
    seen: set[str] = set()
    build = []
    for vid, kind, p in wanted:
        if vid in seen:
            continue
        seen.add(vid)
        build.append((vid, kind, p))
    return build, skipped, sorted(seen)


# ----------------------------------------------------------------------------- building


@dataclass
class _Built:
    graph: bytes
    kind: str
    params: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)  # extra files under variants/<id>/
    model: dict[str, Any] | None = None  # manifest "model" section for a native copy
    build_s: float = 0.0
    build_cost: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def _model_graph(ctx: _Context, adapter: Any = None) -> Any:
    from ._export import export_model
    from ._quantize import to_float32

    model = export_model(adapter if adapter is not None else ctx.adapter, ctx.task, ctx.n_features)
    return to_float32(model) if ctx.family == "linear" else model


def _full_graph(ctx: _Context, model: Any) -> bytes:
    import onnx

    from ._export import compose, export_preprocess

    full = compose(export_preprocess(ctx.preprocess), model)
    full.producer_name = "fulcrum"
    onnx.checker.check_model(full)
    return full.SerializeToString()


def _mlp_adapter(ctx: _Context, head: Any, widths: list[int]) -> Any:
    from ..models import MLPAdapter

    ad = MLPAdapter(ctx.task, ctx.config)
    ad.module_ = head
    args = dict(ctx.adapter.args_)
    args.update(hidden_sizes=list(widths), dropout=float(args.get("dropout", 0.0)))
    ad.args_ = args
    return ad


def _native_files(vid: str, adapter: Any) -> tuple[dict[str, Any], dict[str, bytes]]:
    meta, files = adapter.to_files()
    out: dict[str, bytes] = {}
    for name, data in files.items():
        out[name] = data
    for key in ("weights", "model_file"):
        if key in meta:
            meta[key] = f"variants/{vid}/{meta[key]}"
    return meta, out


def _build(ctx: _Context, vid: str, kind: str, params: dict[str, Any], base_graph: bytes, opts: OptimizeOptions) -> _Built:
    from ._quantize import (
        has_quantizable_ops,
        ort_optimize_offline,
        quantize_dynamic_model,
        quantize_static_model,
    )

    t0 = time.perf_counter()
    b: _Built
    if kind == "onnx-fp32":
        b = _Built(ort_optimize_offline(base_graph, "extended"), kind, {"ort_optimization": "extended", "saved_offline": True})
    elif kind in ("int8-dynamic", "int8-static"):
        model = _model_graph(ctx)
        if not has_quantizable_ops(model):
            raise ConfigError(f"The {ctx.family} model graph has no MatMul/Gemm to quantize.")
        if kind == "int8-dynamic":
            q = quantize_dynamic_model(model)
            p = {"weights": "int8 per-tensor", "activations": "uint8, dynamic range per call", "ops": ["MatMul", "Gemm"],
                 "scope": "model part only; preprocessing stays float/string"}
        else:
            rng = np.random.default_rng(int(ctx.config.seed))
            n = min(len(ctx.X_tr), opts.calibration_rows)
            calib = ctx.X_tr[np.sort(rng.choice(len(ctx.X_tr), n, replace=False))]
            q = quantize_static_model(model, calib)
            p = {"format": "QDQ", "weights": "int8 per-tensor", "activations": "uint8, calibrated (MinMax)",
                 "calibration": {"split": "train", "rows": int(n), "seed": int(ctx.config.seed)},
                 "ops": ["MatMul", "Gemm"], "scope": "model part only; preprocessing stays float/string"}
        b = _Built(_full_graph(ctx, q), kind, p)
    elif kind == "pruned":
        from ._prune import fine_tune, prune_mlp

        head, widths = prune_mlp(copy.deepcopy(ctx.adapter.torch_module()), float(params["sparsity"]))
        head = fine_tune(head, ctx.X_tr, ctx.y_tr, ctx.X_va, ctx.y_va, ctx.config, epochs=opts.fine_tune_epochs,
                         lr=float(ctx.config.lr))
        ad = _mlp_adapter(ctx, head, widths)
        meta, files = _native_files(vid, ad)
        b = _Built(_full_graph(ctx, _model_graph(ctx, ad)), kind,
                   {**params, "hidden_sizes": widths, "parent_hidden_sizes": list(ctx.adapter.args_["hidden_sizes"]),
                    "fine_tune": {"epochs": opts.fine_tune_epochs, "split": "train", "best_by": "val_loss"}},
                   files, meta)
    elif kind == "distilled":
        from ._distill import distill_mlp, student_sizes

        sizes = student_sizes(ctx.adapter.args_["hidden_sizes"], opts.student_shrink)
        head = distill_mlp(ctx.adapter.torch_module(), ctx.X_tr, ctx.y_tr, ctx.X_va, ctx.y_va, ctx.config,
                           hidden_sizes=sizes, temperature=opts.temperature, alpha=opts.alpha, epochs=opts.distill_epochs)
        ad = _mlp_adapter(ctx, head, sizes)
        ad.args_["dropout"] = 0.0
        meta, files = _native_files(vid, ad)
        b = _Built(_full_graph(ctx, _model_graph(ctx, ad)), kind,
                   {"hidden_sizes": sizes, "teacher_hidden_sizes": list(ctx.adapter.args_["hidden_sizes"]),
                    "temperature": opts.temperature, "alpha": opts.alpha, "split": "train", "best_by": "val_loss",
                    "epochs": opts.distill_epochs or int(ctx.config.epochs)}, files, meta)
    elif kind == "trees":
        import lightgbm as lgb

        from ..models import LightGBMAdapter

        booster = ctx.adapter.booster_
        rounds = int(booster.current_iteration())
        keep = max(1, int(round(rounds * float(params["fraction"]))))
        ad = LightGBMAdapter(ctx.task, ctx.config)
        ad.booster_ = lgb.Booster(model_str=booster.model_to_string(num_iteration=keep))
        meta, files = _native_files(vid, ad)
        b = _Built(_full_graph(ctx, _model_graph(ctx, ad)), kind,
                   {**params, "rounds": keep, "parent_rounds": rounds, "trees": int(ad.booster_.num_trees())}, files, meta)
    elif kind == "shallow":
        from ..models import LightGBMAdapter

        leaves = int(opts.shallow_leaves)
        ad = LightGBMAdapter(ctx.task, ctx.config.replace(num_leaves=leaves)).fit(ctx.X_tr, ctx.y_tr, ctx.X_va, ctx.y_va)
        meta, files = _native_files(vid, ad)
        b = _Built(_full_graph(ctx, _model_graph(ctx, ad)), kind,
                   {"num_leaves": leaves, "parent_num_leaves": int(ctx.config.num_leaves), "split": "train",
                    "early_stopping": "validation split", "trees": int(ad.booster_.num_trees())}, files, meta)
    else:  # pragma: no cover - _plan only yields known kinds
        raise ConfigError(f"Unknown variant kind {kind!r}.")
    b.build_s = time.perf_counter() - t0
    return b


# ----------------------------------------------------------------------------- measuring


def _machine() -> dict[str, Any]:
    import onnxruntime as ort

    from ..runtime._engines import physical_cores

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "logical_cpus": os.cpu_count(), "ort_threads": physical_cores(), "onnxruntime": ort.__version__}


def _bench_inputs(ctx: _Context, batch: int) -> tuple[list[dict[str, np.ndarray]], dict[str, np.ndarray], dict[str, np.ndarray]]:
    import pandas as pd

    from ._export_inputs import InputEncoder

    enc = InputEncoder(ctx.preprocess)
    test = ctx.test.reset_index(drop=True)
    feeds_test = enc.encode_frame(test)
    rows = [{k: v[i:i + 1] for k, v in feeds_test.items()} for i in range(min(len(test), 64))]
    reps = -(-batch // len(test))
    block_df = pd.concat([test] * reps, ignore_index=True).iloc[:batch]
    return rows, enc.encode_frame(block_df), feeds_test


def _speed_interval(entry: Mapping[str, Any], batch: str) -> tuple[float, float]:
    """The p50 interval at ``batch`` ("b1", "b256"); a point when no interval was recorded."""
    ci = ((entry.get("latency_ci_ms") or {}).get(batch) or {}).get("p50")
    if ci:
        return float(ci[0]), float(ci[1])
    p = float(entry["latency_ms"][batch]["p50"])
    return p, p


def verdict(entry: Mapping[str, Any], base: Mapping[str, Any], greater: bool) -> dict[str, Any]:
    """Compare one measured variant with its parent: speed, size and metric, each stated plainly.

    Speed: the median latency (p50 over interleaved rounds) at batch 1 and at the large
    batch; a variant is "faster" or "slower" at a batch size only when its interval and the
    parent's separate (:func:`fulcrum.costs._compare.separated`), otherwise the two are the
    same speed within the noise of this machine.
    """
    from ..costs._compare import separated

    big = next(k for k in entry["latency_ms"] if k != "b1")
    calls = {}
    for b in ("b1", big):
        calls[b] = separated(_speed_interval(entry, b), _speed_interval(base, b))  # -1: variant faster
    r_b1 = entry["latency_ms"]["b1"]["p50"] / base["latency_ms"]["b1"]["p50"]
    r_big = entry["latency_ms"][big]["p50"] / base["latency_ms"][big]["p50"]
    r_thr = entry["throughput_rps"] / base["throughput_rps"]
    faster = [b for b, c in calls.items() if c < 0]
    slower = [b for b, c in calls.items() if c > 0]
    same = [b for b, c in calls.items() if c == 0]
    if faster and slower:
        speed = f"mixed (faster at {faster[0]}, slower at {slower[0]})"
    elif faster or slower:
        word, where = ("faster", faster) if faster else ("slower", slower)
        speed = word if not same else f"{word} at {where[0]} (same within noise at {same[0]})"
    else:
        speed = "same speed within noise"
    size_ratio = entry["size_bytes"] / base["size_bytes"]
    size = "smaller" if size_ratio < 0.95 else ("larger" if size_ratio > 1.05 else "same size")
    drop = entry.get("metric_drop")
    if drop is None:
        metric = "metric unknown"
    elif abs(drop) < 1e-9:
        metric = "same metric"
    else:
        metric = f"metric {'worse' if drop > 0 else 'better'} by {abs(drop):.4g}"
    return {
        "faster_than_parent": speed.startswith("faster"),
        "slower_than_parent": speed.startswith("slower"),
        "smaller_than_parent": size == "smaller",
        "worse_than_parent": bool(drop is not None and drop > 1e-9),
        "speed_vs_parent": {"b1_p50_ratio": round(r_b1, 4), f"{big}_p50_ratio": round(r_big, 4),
                            "throughput_ratio": round(r_thr, 4), "b1_speedup": round(1 / r_b1, 3),
                            "b1": {-1: "faster", 0: "same within noise", 1: "slower"}[calls["b1"]],
                            big: {-1: "faster", 0: "same within noise", 1: "slower"}[calls[big]],
                            "rule": "different only when the p50 intervals over interleaved rounds separate"},
        "size_ratio": round(size_ratio, 4),
        "verdict": f"{speed}, {size}, {metric}",
    }


def _metric_drop(parent: float | None, value: float | None, greater: bool) -> float | None:
    if parent is None or value is None:
        return None
    return round((parent - value) if greater else (value - parent), 6)


def _slim_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if k != "confusion_matrix"}


# ----------------------------------------------------------------------------- the verb


def _resolve(ref: Any, registry: Any) -> tuple[Any, Any]:
    """(package, registry or None): a registry reference, a package directory or a ModelPackage."""
    from ..artifact import ModelPackage, Registry

    if isinstance(ref, ModelPackage):
        return ref, registry if isinstance(registry, Registry) else None
    from ..artifact import load_reference  # one rule: a directory only when the reference is clearly a path

    return load_reference(ref, registry)


def store(pkg: Any, reg: Any, files: dict[str, bytes], updates: dict[str, Any]) -> Any:
    from ..artifact import add_files

    if reg is not None and pkg.version is not None:
        return reg.add_files(pkg.ref, files, updates)
    return add_files(pkg.path, files, updates)


def optimize_package(
    ref: Any,
    *,
    registry: Any = None,
    variants: Sequence[str] | None = None,
    data: Any = None,
    options: OptimizeOptions | None = None,
    remeasure: bool = False,
    log: Callable[[str], None] | None = None,
) -> OptimizeReport:
    """Build the variants of ``ref`` that are missing, measure them with the parent, and store them.

    ``variants``: kinds or ids to build (default: every kind that applies to the model family);
    existing variants are kept, not rebuilt (package files are immutable). Everything is
    measured together whenever something is built, or with ``remeasure=True``.
    ``data``: the training table when the package's recorded source cannot be read again.
    """
    say = log or (lambda msg: None)
    opts = options or OptimizeOptions()
    pkg, reg = _resolve(ref, registry)
    graph_file = _check_onnx(pkg)
    existing: dict[str, Any] = {k: v for k, v in (pkg.manifest.get("variants") or {}).items() if k != "base"}
    family = pkg.manifest["model"]["family"]
    plan, skipped, wanted_ids = _plan(family, variants, existing, opts)
    to_build = [(vid, kind, p) for vid, kind, p in plan if vid not in existing]
    kept = [vid for vid, _, _ in plan if vid in existing]
    if kept:
        say(f"keeping existing variant(s) {', '.join(kept)} (package files are immutable)")
    stored = pkg.manifest.get("variants") or {}
    metric_name = (pkg.manifest.get("metrics") or {}).get("primary", {}).get("name") or "metric"
    if not to_build and not remeasure and "base" in stored:
        from ..tasks._metrics import GREATER_IS_BETTER

        return OptimizeReport(pkg, copy.deepcopy(stored), [], skipped, metric_name,
                              GREATER_IS_BETTER.get(metric_name, True), measured=False, registry=reg)

    ctx = load_context(pkg, data)
    base_graph = pkg.read_bytes(graph_file)
    built: dict[str, _Built] = {}
    for vid, kind, params in to_build:
        say(f"building {vid} ...")
        from ..costs import measure

        with measure() as meter:  # what building the variant cost: optimization is training spent to save inference
            built[vid] = _build(ctx, vid, kind, params, base_graph, opts)
        built[vid].build_cost = meter.record.to_dict()
        say(f"built {vid} in {built[vid].build_s:.1f}s")

    graphs: dict[str, bytes] = {"base": base_graph}
    for vid in sorted(existing):
        graphs[vid] = pkg.read_bytes(existing[vid].get("file") or f"variants/{vid}/model.onnx")
    for vid, b in built.items():
        graphs[vid] = b.graph
    say(f"measuring {len(graphs)} graph(s) on this machine ...")
    rows, block, feeds_test = _bench_inputs(ctx, opts.bench.batch)
    n_classes = ctx.task.n_classes
    scored: dict[str, tuple[dict[str, Any], np.ndarray]] = {
        gid: evaluate_graph(g, ctx.kind, feeds_test, ctx.y_te, n_classes) for gid, g in graphs.items()
    }
    timings = benchmark_graphs(graphs, ctx.kind, rows, block, opts.bench)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    machine = _machine()
    base_out = scored["base"][1]
    base_value = scored["base"][0].get(ctx.metric_name)

    entries: dict[str, dict[str, Any]] = {}
    for gid, g in graphs.items():
        metrics, out = scored[gid]
        value = metrics.get(ctx.metric_name)
        if gid == "base":
            kind, params, file = "base", {"graph": graph_file}, graph_file
        elif gid in built:
            kind, params, file = built[gid].kind, built[gid].params, f"variants/{gid}/model.onnx"
        else:
            kind, params, file = existing[gid].get("kind"), existing[gid].get("params", {}), existing[gid].get("file")
        entry: dict[str, Any] = {
            "kind": kind,
            "params": params,
            "file": file,
            "size_bytes": len(g),
            "metric": {"name": ctx.metric_name, "value": value, "split": "test", "rows": int(len(ctx.y_te))},
            "metrics": _slim_metrics(metrics),
            "metric_drop": 0.0 if gid == "base" else _metric_drop(base_value, value, ctx.greater),
            "max_abs_diff_vs_parent": float(np.max(np.abs(out.astype(np.float64) - base_out.astype(np.float64))))
            if out.shape == base_out.shape and out.size else None,
            **timings[gid],
            "measured_at": now,
            "machine": machine,
        }
        if gid in built:
            entry["build_s"] = round(built[gid].build_s, 3)
            entry["build_cost"] = built[gid].build_cost
            if built[gid].model is not None:
                entry["model"] = built[gid].model
        elif gid in existing:
            for k in ("build_s", "build_cost", "model"):
                if k in existing[gid]:
                    entry[k] = existing[gid][k]
        entries[gid] = entry
    for gid, entry in entries.items():
        if gid == "base":
            entry.update(faster_than_parent=False, slower_than_parent=False, smaller_than_parent=False,
                         worse_than_parent=False, size_ratio=1.0, verdict="parent (reference)")
        else:
            entry.update(verdict(entry, entries["base"], ctx.greater))

    files: dict[str, bytes] = {}
    for vid, b in built.items():
        files[f"variants/{vid}/model.onnx"] = b.graph
        for name, data in b.files.items():
            files[f"variants/{vid}/{name}"] = data
    updates = {
        "variants": entries,
        "optimize": {"measured_at": now, "machine": machine, "bench": opts.bench.to_dict(), "skipped": skipped,
                     "metric": ctx.metric_name, "greater_is_better": ctx.greater, "method": METHOD,
                     "speed_rule": "faster/slower only when p50 intervals over interleaved rounds separate"},
    }
    pkg = store(pkg, reg, files, updates)
    say(f"stored {len(built)} new variant(s) in {pkg.ref}")
    return OptimizeReport(pkg, copy.deepcopy(pkg.manifest.get("variants") or {}), sorted(built), skipped,
                          ctx.metric_name, ctx.greater, measured=True, registry=reg)


# ----------------------------------------------------------------------------- serving a choice


def promote_variant(registry: Any, ref: str, variant_id: str, alias: str | None, selection: Mapping[str, Any],
                    *, force: bool = False, log: Callable[[str], None] | None = print) -> Any:
    """Register a new version of ``ref``'s model whose ``model.onnx`` is the variant's graph, then point
    ``alias`` at it through the promotion policy (:func:`fulcrum.artifact.promote`: a version worse than
    the alias's current target needs ``force``; ``alias=None`` only registers). Lineage: parent =
    ``ref``'s version, variant = ``variant_id``. Re-promoting the same variant of the same parent reuses
    the version made the first time."""
    from ..artifact import validate_alias
    from ._export import graph_signature

    def point(target: str) -> None:
        if alias is not None:
            from ..artifact import promote

            promote(registry, target, alias, force=force, log=log)

    alias = validate_alias(alias) if alias is not None else None
    pkg = registry.load(ref)
    variants = pkg.manifest.get("variants") or {}
    if variant_id not in variants:
        raise NotFoundError(f"Model {pkg.ref} has no variant {variant_id!r}; its variants: {', '.join(sorted(variants)) or '(none)'}.")
    entry = variants[variant_id]
    if variant_id == "base":
        point(pkg.ref)
        return pkg
    graph = pkg.read_bytes(entry["file"])
    from ..artifact._atomic import sha256_bytes

    digest = sha256_bytes(graph)
    for row in registry.list():
        if row["name"] != pkg.name:
            continue
        other = registry.load(f"{row['name']}@{row['version']}", verify=False)
        lin = other.manifest.get("lineage") or {}
        if lin.get("parent") == pkg.ref and lin.get("variant") == variant_id and \
                (other.manifest.get("files", {}).get("model.onnx") or {}).get("sha256") == digest:
            point(other.ref)
            return registry.load(other.ref)

    m = pkg.manifest
    skip = {"name", "version", "created", "files", "format_version", "variants", "selected_variant", "optimize", "onnx"}
    manifest = {k: copy.deepcopy(v) for k, v in m.items() if k not in skip}
    files: dict[str, bytes] = {"model.onnx": graph}
    for name in pkg.files:
        if name == "model.onnx" or name.startswith("variants/") or name == (m.get("onnx") or {}).get("file"):
            continue
        files[name] = pkg.read_bytes(name)
    native = entry.get("model")
    if native:  # the variant's own native weights (pruned / distilled / trees): the reference engine matches the graph
        model = copy.deepcopy(native)
        for key in ("weights", "model_file"):
            if key in model:
                local = model[key].rsplit("/", 1)[-1]
                files[local] = pkg.read_bytes(model[key])
                model[key] = local
        model.setdefault("describe", {})
        manifest["model"] = model
    section = {**graph_signature(graph), "file": "model.onnx", "parity": None,
               "variant": variant_id, "quantized": entry.get("kind", "").startswith("int8")}
    for e in section["inputs"]:
        e["kind"] = next((c["kind"] for c in m.get("onnx", {}).get("inputs", []) if c["name"] == e["name"]), None)
    manifest["onnx"] = section
    metrics = copy.deepcopy(m.get("metrics") or {})
    metrics["primary"] = dict(entry.get("metric") or {})
    metrics["test"] = dict(entry.get("metrics") or {})
    metrics["parent_test"] = (m.get("metrics") or {}).get("test")
    manifest["metrics"] = metrics
    lineage = dict(m.get("lineage") or {})
    lineage.update(parent=pkg.ref, variant=variant_id, variant_kind=entry.get("kind"))
    manifest["lineage"] = lineage
    base_entry = {k: copy.deepcopy(v) for k, v in entry.items() if k != "model"}
    base_entry.update(kind="base", file="model.onnx", derived_from=f"{pkg.ref}:{variant_id}", metric_drop=0.0,
                      faster_than_parent=False, slower_than_parent=False, smaller_than_parent=False,
                      worse_than_parent=False, size_ratio=1.0, verdict=f"parent (reference); {variant_id} of {pkg.ref}")
    manifest["variants"] = {"base": base_entry}
    manifest["selected_variant"] = {**dict(selection), "source": pkg.ref}
    new = registry.register(pkg.name, manifest, files)
    point(new.ref)
    return new
