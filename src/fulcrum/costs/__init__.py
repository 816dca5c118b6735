"""Costs: meters (time, CPU/GPU, memory, FLOPs, energy), a cost model (money, CO2)
and projections (per 1M predictions, break-even, lifetime, savings).

::

    from fulcrum.costs import measure, per_prediction_cost, project, CostModel

    with measure() as train:
        fit(...)
    with measure() as bench:
        for x in batches: predict(x)
    report = project(train.record, {"fp32": per_prediction_cost(bench.record, n, CostModel())},
                     rate_per_s=parse_rate("50/s"), horizon_s=parse_horizon("12mo"))

    measurement(pkg, "int8-dynamic", batch=1)   # a package's measurement record: the one source of
                                                # latency, $/1M, size and metric for every command
"""

from __future__ import annotations

from ._energy import rapl_available
from ._flops import count_flops, estimate_flops_classical
from ._inference import benchmark_predictor, flops_per_prediction
from ._meter import CostRecord, Meter, measure
from ._model import SOURCES, CostModel, money
from ._plot import plot_cumulative_cost
from ._record import Measurement, measurement, measurements
from ._project import (
    Ledger,
    break_even_predictions,
    cost_per_million,
    lifetime_cost,
    parse_horizon,
    parse_rate,
    per_prediction_cost,
    project,
    savings,
)

__all__ = [
    "CostModel",
    "SOURCES",
    "money",
    "CostRecord",
    "Meter",
    "measure",
    "rapl_available",
    "count_flops",
    "estimate_flops_classical",
    "parse_rate",
    "parse_horizon",
    "cost_per_million",
    "break_even_predictions",
    "lifetime_cost",
    "savings",
    "per_prediction_cost",
    "project",
    "Ledger",
    "plot_cumulative_cost",
    "benchmark_predictor",
    "flops_per_prediction",
    "Measurement",
    "measurement",
    "measurements",
]
