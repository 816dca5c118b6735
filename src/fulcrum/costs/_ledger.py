"""A package's cost ledger: its training record, its variants' measured windows,
and live serving usage, projected with :func:`fulcrum.costs.project`."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError, FormatError, NotFoundError
from ._meter import CostRecord
from ._model import CostModel
from ._project import project
from ._compare import DEFAULT_MAX_DROP
from ._record import Measurement, measurements

__all__ = ["package_ledger", "live_usage", "variant_costs", "DEFAULT_MAX_DROP"]


def _training_record(pkg: Any) -> CostRecord:
    costs = pkg.manifest.get("costs") or {}
    train = costs.get("training")
    if not train:
        raise FormatError(
            f"Package {pkg.ref} has no cost record (it was trained before Fulcrum measured costs); "
            f"re-train it with `fulcrum train` to get one."
        )
    fields = {k: train[k] for k in ("wall_s", "cpu_s", "gpu_s", "peak_rss_mb", "flops", "energy_kwh",
                                    "energy_method", "energy_detail")}
    return CostRecord(**fields)


def variant_costs(pkg: Any, batch: int, cost_model: CostModel) -> dict[str, dict[str, Any]]:
    """Per-prediction cost per variant at ``batch``, re-priced with ``cost_model``, read through
    the package's measurement record (:func:`fulcrum.costs.measurements`)."""
    return {vid: dict(m.per_prediction) for vid, m in measurements(pkg, batch=batch, cost_model=cost_model).items()
            if m.per_prediction is not None}


def _exclusion(m: Measurement, base: Measurement | None, max_drop: float) -> str | None:
    """Why a variant may not be recommended under the quality constraint, or None."""
    if m.variant == "base":
        return None
    name = m.metric_name or "metric"
    if m.metric_drop is None:
        return f"{name} not measured, so its quality is unknown"
    if m.metric_drop > max_drop + 1e-12:
        vs = f" vs {base.metric_value:.4g} for base" if base is not None and base.metric_value is not None else ""
        value = f"{name} {m.metric_value:.4g}{vs}: " if m.metric_value is not None else ""
        return f"{value}{m.metric_drop:.4g} worse, over the allowed drop of {max_drop:g}"
    return None


def _build_costs(pkg: Any) -> dict[str, CostRecord]:
    out: dict[str, CostRecord] = {}
    for vid, v in (pkg.manifest.get("variants") or {}).items():
        rec = v.get("build_cost")
        if isinstance(rec, dict) and "wall_s" in rec:
            out[vid] = CostRecord.from_dict({k: rec[k] for k in rec if k in CostRecord.__dataclass_fields__})
    return out


def live_usage(registry: Any, name: str, version: int | None, records_db: Any = None) -> dict[str, Any] | None:
    """Predictions and compute seconds the server recorded for this model version, if any.
    Read from the serving-records database (``records_db``, else ``<registry>.serving.sqlite``,
    the rule of ``fulcrum.serve._records.records_path``), never the registry index."""
    import sqlite3
    from contextlib import closing
    from pathlib import Path

    root = Path(registry.root).absolute()
    path = Path(records_db) if records_db is not None else root.parent / (root.name + ".serving.sqlite")
    if not path.is_file():
        return None
    try:
        with closing(sqlite3.connect(str(path), timeout=60)) as conn:
            row = conn.execute(
                "SELECT SUM(predictions), SUM(compute_s), MIN(first_seen), MAX(last_seen) FROM serving_usage "
                "WHERE model = ? AND version = ?",
                (name, version),
            ).fetchone()
    except sqlite3.OperationalError:  # no serving table yet: the model never served
        return None
    if not row or not row[0]:
        return None
    predictions, compute_s, first, last = int(row[0]), float(row[1] or 0.0), row[2], row[3]
    rate = None
    try:
        from datetime import datetime

        span = (datetime.fromisoformat(str(last)) - datetime.fromisoformat(str(first))).total_seconds()
        rate = predictions / span if span > 0 else None
    except (TypeError, ValueError):
        pass
    return {"predictions": predictions, "compute_s": compute_s, "first_seen": first, "last_seen": last,
            "rate_per_s": rate}


def package_ledger(
    pkg: Any,
    cost_model: CostModel,
    *,
    rate_per_s: float,
    horizon_s: float,
    batch: int = 1,
    variants: list[str] | None = None,
    usage: dict[str, Any] | None = None,
    max_drop: float = DEFAULT_MAX_DROP,
) -> dict[str, Any]:
    """The cost report of ``pkg`` (:func:`fulcrum.costs.project`) from its measurement record.

    The recommendation (``best``) honours a quality constraint first: a variant whose primary
    metric is more than ``max_drop`` worse than the parent's (or was never measured) is
    excluded, and ``recommendation.excluded`` says why; among the rest, the cheapest over the
    horizon, or the simplest of those within noise of it.
    """
    import math

    from ._compare import SIMPLICITY

    if not (isinstance(max_drop, (int, float)) and math.isfinite(max_drop) and 0 <= max_drop <= 1):
        raise ConfigError(f"max_drop is the largest metric drop a recommended variant may have, a number in [0, 1] "
                          f"(0.01 = one point of accuracy); got {max_drop!r}.")
    training = _training_record(pkg)
    records = {k: m for k, m in measurements(pkg, batch=batch, cost_model=cost_model).items()
               if m.per_prediction is not None}
    if not records:
        raise FormatError(
            f"Package {pkg.ref} has no measured inference cost at batch {batch}; measured batch sizes come from "
            f"training (1 and 256) and `fulcrum optimize {pkg.ref}`. Use --batch 1 or re-train."
        )
    if variants:
        missing = [v for v in variants if v not in records]
        if missing:
            raise NotFoundError(
                f"Unknown variant {missing[0]!r} for {pkg.ref}; measured variants: {', '.join(records)}."
            )
        records = {k: records[k] for k in variants}
    base = records.get("base")
    excluded = {vid: why for vid, m in records.items() if (why := _exclusion(m, base, max_drop)) is not None}
    candidates = [vid for vid in records if vid not in excluded]
    per_pred: dict[str, dict[str, Any]] = {}
    for vid, m in records.items():
        pp = dict(m.per_prediction or {})
        if m.usd_ci is not None:
            pp["usd_ci"] = m.usd_ci
        per_pred[vid] = pp
    builds = {k: v for k, v in _build_costs(pkg).items() if k in per_pred}
    if not candidates:
        report = project(training, per_pred, cost_model, rate_per_s=rate_per_s, horizon_s=horizon_s,
                         optimization=builds or None, baseline="base" if "base" in per_pred else None)
        report["best"] = None
        report["within_noise"] = []
    else:
        report = project(training, per_pred, cost_model, rate_per_s=rate_per_s, horizon_s=horizon_s,
                         optimization=builds or None, baseline="base" if "base" in per_pred else None,
                         candidates=candidates)
    for vid, m in records.items():
        report["variants"][vid].update(
            latency_ms=m.latency_ms, latency_ci_ms=m.latency_ci_ms, size_bytes=m.size_bytes,
            metric={"name": m.metric_name, "value": m.metric_value}, metric_drop=m.metric_drop,
            excluded=excluded.get(vid))
    report["batch"] = batch
    report["model"] = {"ref": pkg.ref, "family": pkg.manifest.get("model", {}).get("family")}
    report["measurements"] = {vid: {"source": m.source, "measured_at": m.measured_at, "machine": m.machine,
                                    "method": m.method} for vid, m in records.items()}
    optimized = [vid for vid in records if vid != "base"]
    report["recommendation"] = {
        "id": report["best"],
        "quality_constraint": f"metric_drop<={max_drop:g}",
        "max_drop": max_drop,
        "excluded": excluded,
        "cheapest_by_point": report.get("cheapest_by_point"),
        "within_noise": report.get("within_noise"),
        "rule": "quality first (metric drop within the limit); then the lowest lifetime cost; variants whose "
                "lifetime intervals overlap it count as equally cheap, and the simplest of those wins ("
                + " < ".join(SIMPLICITY) + ")",
        "optimized_variants_measured": len(optimized),
    }
    if not optimized:
        report["recommendation"]["note"] = (f"no optimized variants measured for {pkg.ref}; run `fulcrum optimize "
                                            f"{pkg.ref}` to build and measure some")
    if usage:
        report["live"] = usage
        if usage.get("compute_s") and usage.get("predictions"):
            report["live"]["compute_s_per_prediction"] = usage["compute_s"] / usage["predictions"]
    return report
