"""Build optimized variants of a model package, measure each on this machine, store them with it.

::

    from fulcrum.optimize import optimize_package
    report = optimize_package("iris@1")                  # every variant that applies to the model
    report.variants["int8-dynamic"]["latency_ms"]["b1"]  # {"p50": ..., "p95": ..., "p99": ...}

Which variants apply is the package's task's answer (``Task.variant_kinds(manifest)``, with a reason
for each kind that does not). Two builders:

- graph kinds, built here from the package graph alone: ``onnx-fp32`` (ONNX Runtime's offline graph
  optimization) and ``int8-dynamic`` / ``int8-static`` (:func:`fulcrum.optimize._quantize.quantize_graph`
  with the task's params; static int8 calibrated on ``Task.calibration_feeds``);
- task kinds, which need the trained model itself (retraining, cutting it): built by
  ``Task.build_variant`` (for tables: pruned, distilled, trees, shallow; for text: distilled, ngram).

Every graph is then measured the same way (``_bench``): the task's primary metric on the run's
held-out test split (re-created by ``Task.splits`` from the package's data source, checked against
the stored fingerprint), latency, throughput, size, energy. The parent is measured alongside as
variant ``"base"`` (its file is the package's own ``model.onnx``); every figure of a variant is
compared with it, and a variant that is slower, larger or worse than its parent is recorded as such.
"""

from __future__ import annotations

import copy
import os
import platform
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import ConfigError, FormatError, NotFoundError
from ._bench import METHOD, BenchSettings, benchmark_graphs, evaluate_graph

__all__ = ["GRAPH_KINDS", "OptimizeOptions", "OptimizeReport", "optimize_package", "promote_variant",
           "verdict", "store", "expand_ids", "load_context"]

#: Variant kinds built here from the graph alone (the others are built by the package's task).
GRAPH_KINDS = ("onnx-fp32", "int8-dynamic", "int8-static")


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
    """What measuring and building need: the package, its task, the held-out rows and their truth."""

    package: Any
    task: Any  # the package's Task
    kind: str
    metric_name: str
    greater: bool
    primary: str  # the graph output scored and compared: probabilities or value
    custom_ops: list[str]
    data: Any
    train: Any
    val: Any
    test: Any
    truth: Any  # the test split's target values


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


def _metric(manifest: Mapping[str, Any]) -> tuple[str, bool]:
    from ..tasks import PRIMARY, greater_is_better

    name = (manifest.get("metrics") or {}).get("primary", {}).get("name") or PRIMARY.get(manifest["task"]["kind"], "metric")
    return name, greater_is_better(name)


def load_context(pkg: Any, data: Any = None) -> _Context:
    """The package's task and the run's splits, re-created from ``data`` or the recorded source."""
    from ..runtime._engines import custom_op_libraries, primary_output
    from ..tasks import get_task

    m = pkg.manifest
    task = get_task(m)
    if task.has_native_engine(m):
        # the trained model itself must be readable before variants are made from the package (a damaged
        # weights file is one error naming it, before any work; promoted variants copy the package's files)
        task.native_predictor(pkg)
    train, val, test = task.splits(pkg, data)
    metric, greater = _metric(m)
    test = test.reset_index(drop=True)
    return _Context(pkg, task, m["task"]["kind"], metric, greater, primary_output(m), custom_op_libraries(m), data,
                    train, val, test, test[m["task"]["target"]].tolist())


# ----------------------------------------------------------------------------- planning


def _kinds(pkg: Any) -> tuple[Any, list[Any], dict[str, str]]:
    from ..tasks import get_task

    task = get_task(pkg.manifest)
    kinds, why_not = task.variant_kinds(pkg.manifest)
    return task, list(kinds), dict(why_not)


def expand_ids(items: Sequence[str], opts: OptimizeOptions, package: Any = None) -> set[str]:
    """Kinds or ids -> the variant ids they name (``pruned`` -> ``pruned-50``, ``pruned-80``, ...): the
    package's task expands its kinds; without a package, items are taken as ids."""
    if package is None:
        return set(items)
    task, kinds, _ = _kinds(package)
    by_kind = {k.kind: k for k in kinds}
    out: set[str] = set()
    for item in items:
        if item in by_kind:
            out.update(vid for vid, _ in task.variant_ids(by_kind[item], opts))
        else:
            out.add(item)
    return out


def _plan(pkg: Any, requested: Sequence[str] | None, existing: Mapping[str, Any],
          opts: OptimizeOptions) -> tuple[list[tuple[str, Any, dict[str, Any]]], dict[str, str], list[str]]:
    """(to build: [(id, VariantKind, params)], skipped: {kind: reason}, wanted ids)."""
    task, kinds, why_not = _kinds(pkg)
    what = f"a {pkg.manifest['model'].get('family') or task.name} model"
    by_kind = {k.kind: k for k in kinds}
    ids = {k.kind: task.variant_ids(k, opts) for k in kinds}
    all_ids = {vid: (by_kind[kind], p) for kind, pairs in ids.items() for vid, p in pairs}
    skipped: dict[str, str] = {}
    wanted: list[tuple[str, Any, dict[str, Any]]] = []
    if requested is None:
        for k in kinds:
            wanted += [(vid, k, p) for vid, p in ids[k.kind]]
        skipped = dict(why_not)
    else:
        for item in requested:
            if item in by_kind:
                wanted += [(vid, by_kind[item], p) for vid, p in ids[item]]
            elif item in why_not:
                raise ConfigError(f"Variant kind {item!r} does not apply to {what} ({why_not[item]}); "
                                  f"for it choose from {', '.join(by_kind)}.")
            elif item in all_ids:
                wanted.append((item, *all_ids[item]))
            elif item in existing or item == "base":
                continue
            else:
                parsed = task.variant_from_id(item, kinds)
                if parsed is not None and parsed[0] in by_kind:
                    wanted.append((item, by_kind[parsed[0]], dict(parsed[1])))
                    continue
                raise NotFoundError(
                    f"Unknown variant {item!r} for {what}. Existing variants: "
                    f"{', '.join(sorted(existing)) or '(none yet)'}; kinds that can be built: {', '.join(by_kind)}."
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
    notes: dict[str, Any] = field(default_factory=dict)
    build_s: float = 0.0
    build_cost: dict[str, Any] | None = None


def _build(ctx: _Context, vid: str, kind: Any, params: dict[str, Any], base_graph: bytes, opts: OptimizeOptions,
           log: Callable[[str], None] | None = None) -> _Built:
    from ..tasks import VariantContext
    from ._quantize import ort_optimize_offline, quantize_graph

    t0 = time.perf_counter()
    name = kind.kind
    if kind.builder == "graph" and name == "onnx-fp32":
        b = _Built(ort_optimize_offline(base_graph, "extended", ctx.custom_ops), name,
                   {"ort_optimization": "extended", "saved_offline": True})
    elif kind.builder == "graph" and name in ("int8-dynamic", "int8-static"):
        calibration = None
        described_extra: dict[str, Any] = {}
        if name == "int8-static":
            seed = int((ctx.package.manifest.get("config") or {}).get("seed", 0))
            calibration = ctx.task.calibration_feeds(ctx.package, ctx.train, opts.calibration_rows, seed)
            rows = len(next(iter(calibration.values()))) if calibration else 0
            described_extra = {"calibration": {"split": "train", "rows": int(rows), "seed": seed}}
        graph, described = quantize_graph(base_graph, "dynamic" if name == "int8-dynamic" else "static",
                                          dict(params), calibration=calibration, custom_ops=ctx.custom_ops)
        b = _Built(graph, name, {**described, **described_extra})
    elif kind.builder == "graph":
        raise ConfigError(f"fulcrum.optimize builds the graph kinds {', '.join(GRAPH_KINDS)}; {name!r} is not one "
                          f"(the {ctx.task.name} task should build it itself).")
    else:
        context = VariantContext(data=ctx.data, train=ctx.train, val=ctx.val, test=ctx.test, options=opts, vid=vid,
                                 log=log)
        graph, files, notes = ctx.task.build_variant(name, dict(params), ctx.package, context)
        notes = dict(notes or {})
        model = notes.pop("model", None)
        described = notes.pop("params", None)
        b = _Built(graph, name, dict(described) if described is not None else dict(params), dict(files or {}), model,
                   notes)
    b.build_s = time.perf_counter() - t0
    return b


# ----------------------------------------------------------------------------- measuring


def _machine() -> dict[str, Any]:
    import onnxruntime as ort

    from ..runtime._engines import physical_cores

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "logical_cpus": os.cpu_count(), "ort_threads": physical_cores(), "onnxruntime": ort.__version__}


def _bench_inputs(ctx: _Context, batch: int) -> tuple[list[dict[str, np.ndarray]], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(single-row feeds, one block of ``batch`` rows, the whole test split), encoded by the task's codec."""
    import pandas as pd

    pkg = ctx.package
    enc = ctx.task.input_codec(pkg.manifest, pkg.read_json)
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


def _max_diff(out: np.ndarray, base_out: np.ndarray) -> float | None:
    """Largest absolute difference from the parent's primary output; for ids (a recommender's items), the share of
    cells that differ. None when the shapes differ."""
    if out.shape != base_out.shape or not out.size:
        return None
    if out.dtype.kind in "OSU" or base_out.dtype.kind in "OSU":
        return float(np.mean(out.astype(str) != base_out.astype(str)))
    return float(np.max(np.abs(out.astype(np.float64) - base_out.astype(np.float64))))


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

    ``variants``: kinds or ids to build (default: every kind the package's task says applies);
    existing variants are kept, not rebuilt (package files are immutable). Everything is
    measured together whenever something is built, or with ``remeasure=True``.
    ``data``: the training table when the package's recorded source cannot be read again.
    """
    say = log or (lambda msg: None)
    opts = options or OptimizeOptions()
    pkg, reg = _resolve(ref, registry)
    graph_file = _check_onnx(pkg)
    existing: dict[str, Any] = {k: v for k, v in (pkg.manifest.get("variants") or {}).items() if k != "base"}
    plan, skipped, wanted_ids = _plan(pkg, variants, existing, opts)
    to_build = [(vid, kind, p) for vid, kind, p in plan if vid not in existing]
    kept = [vid for vid, _, _ in plan if vid in existing]
    if kept:
        say(f"keeping existing variant(s) {', '.join(kept)} (package files are immutable)")
    stored = pkg.manifest.get("variants") or {}
    if not to_build and not remeasure and "base" in stored:
        metric_name, greater = _metric(pkg.manifest)
        return OptimizeReport(pkg, copy.deepcopy(stored), [], skipped, metric_name, greater, measured=False,
                              registry=reg)

    ctx = load_context(pkg, data)
    refit_full = (pkg.manifest.get("selection") or {}).get("refit_full") or {}
    if refit_full.get("test_rows_in_final_fit"):  # fulcrum train --refit-full: the test rows are not held out
        primary = (pkg.manifest.get("metrics") or {}).get("primary") or {}
        say(f"note: {pkg.ref} was refit on every row, its test split included (refit_full): the metrics below are "
            f"on rows it fitted, optimistic as absolute figures (its honest test {primary.get('name')}, measured "
            f"before the refit, is {primary.get('value')}); a variant trained again on the training split alone "
            "(a distilled student) never saw those rows and is compared at a disadvantage")
    base_graph = pkg.read_bytes(graph_file)
    built: dict[str, _Built] = {}
    for vid, kind, params in to_build:
        say(f"building {vid} ...")
        from ..costs import measure

        with measure() as meter:  # what building the variant cost: optimization is training spent to save inference
            built[vid] = _build(ctx, vid, kind, params, base_graph, opts, say)
        built[vid].build_cost = meter.record.to_dict()
        say(f"built {vid} in {built[vid].build_s:.1f}s")

    graphs: dict[str, bytes] = {"base": base_graph}
    for vid in sorted(existing):
        graphs[vid] = pkg.read_bytes(existing[vid].get("file") or f"variants/{vid}/model.onnx")
    for vid, b in built.items():
        graphs[vid] = b.graph
    say(f"measuring {len(graphs)} graph(s) on this machine ...")
    rows, block, feeds_test = _bench_inputs(ctx, opts.bench.batch)
    scored: dict[str, tuple[dict[str, Any], np.ndarray]] = {
        gid: evaluate_graph(g, ctx.primary, feeds_test, ctx.truth, task=ctx.task, manifest=ctx.package.manifest,
                            custom_ops=ctx.custom_ops)
        for gid, g in graphs.items()
    }
    timings = benchmark_graphs(graphs, ctx.primary, rows, block, opts.bench, custom_ops=ctx.custom_ops)
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
            "metric": {"name": ctx.metric_name, "value": value, "split": "test", "rows": int(len(ctx.truth))},
            "metrics": _slim_metrics(metrics),
            "metric_drop": 0.0 if gid == "base" else _metric_drop(base_value, value, ctx.greater),
            "max_abs_diff_vs_parent": _max_diff(out, base_out),
            **timings[gid],
            "measured_at": now,
            "machine": machine,
        }
        if gid in built:
            entry["build_s"] = round(built[gid].build_s, 3)
            entry["build_cost"] = built[gid].build_cost
            if built[gid].model is not None:
                entry["model"] = built[gid].model
            if built[gid].notes:
                entry["notes"] = built[gid].notes
        elif gid in existing:
            for k in ("build_s", "build_cost", "model", "notes"):
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
    from ..tasks._graph import graph_signature

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
