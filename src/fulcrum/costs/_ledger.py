"""A package's cost ledger: its training record, its variants' measured windows,
and live serving usage, projected with :func:`fulcrum.costs.project`."""

from __future__ import annotations

from typing import Any

from ..errors import FormatError, NotFoundError
from ._inference import flops_per_prediction
from ._meter import CostRecord
from ._model import CostModel
from ._project import per_prediction_cost, project

__all__ = ["package_ledger", "live_usage", "variant_costs"]


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
    """Per-prediction cost per variant at ``batch``, re-priced with ``cost_model``.

    Sources: the base model's window measured after training (manifest costs.inference.base),
    and each optimized variant's window (manifest variants.<id>.costs).
    """
    key = f"batch_{batch}"
    out: dict[str, dict[str, Any]] = {}
    windows: dict[str, dict[str, Any]] = {}
    base = (pkg.manifest.get("costs") or {}).get("inference", {}).get("base", {})
    if key in base:
        windows["base"] = base[key]
    for vid, v in (pkg.manifest.get("variants") or {}).items():
        win = (v.get("costs") or {}).get(key)
        if win:  # the optimize run's own "base" window, measured side by side with the variants, wins
            windows[vid] = win
    for vid, win in windows.items():
        rec = CostRecord.from_dict(win["window"])
        if rec.flops is None:  # variants' windows: FLOPs per row from the variant's own model
            spec = (pkg.manifest.get("variants") or {}).get(vid, {}).get("model")
            flops, _ = flops_per_prediction({**pkg.manifest, "model": {**pkg.manifest.get("model", {}), **spec}} if spec
                                            else pkg.manifest)
            if flops is not None:
                rec.flops = flops * int(win["n_predictions"])
        out[vid] = per_prediction_cost(rec, int(win["n_predictions"]), cost_model)
    return out


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
) -> dict[str, Any]:
    training = _training_record(pkg)
    per_pred = variant_costs(pkg, batch, cost_model)
    if not per_pred:
        raise FormatError(
            f"Package {pkg.ref} has no measured inference cost at batch {batch}; measured batch sizes come from "
            f"training (1 and 256) and `fulcrum optimize`. Use --batch 1 or re-train."
        )
    if variants:
        missing = [v for v in variants if v not in per_pred]
        if missing:
            raise NotFoundError(
                f"Unknown variant {missing[0]!r} for {pkg.ref}; measured variants: {', '.join(per_pred)}."
            )
        per_pred = {k: per_pred[k] for k in variants}
    builds = {k: v for k, v in _build_costs(pkg).items() if k in per_pred}
    report = project(training, per_pred, cost_model, rate_per_s=rate_per_s, horizon_s=horizon_s,
                     optimization=builds or None, baseline="base" if "base" in per_pred else None)
    report["batch"] = batch
    report["model"] = {"ref": pkg.ref, "family": pkg.manifest.get("model", {}).get("family")}
    if usage:
        report["live"] = usage
        if usage.get("compute_s") and usage.get("predictions"):
            report["live"]["compute_s_per_prediction"] = usage["compute_s"] / usage["predictions"]
    return report
