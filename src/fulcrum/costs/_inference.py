"""What one prediction costs: a measured benchmark window over a Predictor.

The window is real work on this machine (ONNX Runtime by default): warm-up
calls first, then calls until ``min_seconds`` have passed, inside :func:`measure`.
FLOPs per prediction come from the package's task, from its model description (for tables: counted
by torch's FLOP counter for the MLP, a stated estimate for linear and tree models).
"""

from __future__ import annotations

import math
import time
from typing import Any

import pandas as pd

from ._meter import measure
from ._model import CostModel
from ._project import per_prediction_cost

__all__ = ["flops_per_prediction", "benchmark_predictor", "machine_info"]


def machine_info() -> dict[str, Any]:
    """Where a measurement ran: platform, processor, logical CPUs, ONNX Runtime version (when loaded)."""
    import os
    import platform
    import sys

    ort = sys.modules.get("onnxruntime")
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "logical_cpus": os.cpu_count(), "onnxruntime": getattr(ort, "__version__", None)}


def flops_per_prediction(manifest: dict[str, Any]) -> tuple[int | None, str]:
    """(FLOPs for one prediction, how they were obtained), as the package's task counts them
    (``Task.flops_per_prediction``); (None, "unknown") when it cannot."""
    from ..errors import FulcrumError
    from ..tasks import get_task

    try:
        flops, method = get_task(manifest).flops_per_prediction(manifest)
    except FulcrumError:
        return None, "unknown"
    return (None if flops is None else int(flops)), str(method)


def _single_row_call(predictor: Any) -> Any:
    fast = getattr(predictor, "predict_one", None)
    return fast if fast is not None else predictor.predict


def benchmark_predictor(
    predictor: Any,
    rows: pd.DataFrame,
    *,
    batch_sizes: tuple[int, ...] = (1, 256),
    min_seconds: float = 0.25,
    max_calls: int = 2000,
    warmup: int = 3,
    cost_model: CostModel | None = None,
    flops_per_row: int | None = None,
) -> dict[str, Any]:
    """Per-prediction cost at each batch size, from measured windows.

    Returns ``{"batch_1": {...per_prediction_cost..., "batch_size": 1, "calls": n,
    "p50_ms": ..., "p95_ms": ..., "p99_ms": ..., "window": CostRecord dict, "measured_at", "machine",
    "method"}, "batch_256": {...}}``.
    """
    from datetime import datetime, timezone

    import numpy as np

    if rows.empty:
        raise ValueError("benchmark_predictor needs at least one row")
    cols = [c for c in getattr(predictor, "input_columns", rows.columns) if c in rows.columns]
    if not cols:  # inputs under another name (a text model reads its training column too): all but the target
        cols = [c for c in rows.columns if c != getattr(predictor, "target", None)]
    rows = rows[cols].reset_index(drop=True)
    out: dict[str, Any] = {}
    for b in batch_sizes:
        if b == 1:
            records = rows.to_dict(orient="records")
            call = _single_row_call(predictor)
            payloads: list[Any] = [records[i % len(records)] for i in range(min(len(records), 64))]
        else:
            reps = math.ceil(b / len(rows))
            batch = pd.concat([rows] * reps, ignore_index=True).iloc[:b]
            call = predictor.predict
            payloads = [batch]
        for i in range(warmup):
            call(payloads[i % len(payloads)])
        times: list[float] = []
        with measure(sample_memory=False) as meter:
            start = time.perf_counter()
            calls = 0
            while calls < max_calls and (time.perf_counter() - start < min_seconds or calls < 5):
                t0 = time.perf_counter()
                call(payloads[calls % len(payloads)])
                times.append(time.perf_counter() - t0)
                calls += 1
            if flops_per_row is not None:
                meter.flops = flops_per_row * calls * b
        n = calls * b
        p50, p95, p99 = (float(v) for v in np.percentile(np.asarray(times) * 1e3, [50, 95, 99]))
        entry = per_prediction_cost(meter.record, n, cost_model)
        entry.update(
            batch_size=b,
            calls=calls,
            p50_ms=p50,
            p95_ms=p95,
            p99_ms=p99,
            throughput_rps=n / meter.record.wall_s if meter.record.wall_s > 0 else None,
            window=meter.record.to_dict(),
            measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            machine=machine_info(),
            method=f"{type(predictor).__name__}.{'predict_one' if b == 1 and call is not predictor.predict else 'predict'} "
                   f"end to end (request parsing and encoding included), one window of {calls} calls after "
                   f"{warmup} warm-up calls",
        )
        out[f"batch_{b}"] = entry
    return out
