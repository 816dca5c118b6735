"""Optimize: turn a package's graph into faster or smaller variants, measure each here, choose one.

::

    from fulcrum.optimize import optimize_package, select_variant
    report = optimize_package("iris@1")        # the variants the package's task says apply, measured
    select_variant(report.variants, parse_constraints("p95_ms<=1, metric_drop<=0.01"))

Nothing here knows which task made the package: graph transforms (ONNX Runtime offline optimization,
int8 dynamic / static) work on the graph alone, variants that need the model itself come from the
task (``Task.build_variant``), and measuring, selection and storage are the same for every task.
Export belongs to the tasks (e.g. ``fulcrum.tasks.tabular._export``).
"""

from __future__ import annotations

from ._bench import BenchSettings, benchmark_graphs
from ._plot import pareto_front, plot_pareto
from ._quantize import ort_optimize_offline, quantize_graph
from ._select import CONSTRAINT_KEYS, OBJECTIVES, Constraint, Selection, parse_constraints, select_variant
from ._variants import GRAPH_KINDS, OptimizeOptions, OptimizeReport, optimize_package, promote_variant

__all__ = [
    "GRAPH_KINDS",
    "OptimizeOptions",
    "OptimizeReport",
    "optimize_package",
    "promote_variant",
    "ort_optimize_offline",
    "quantize_graph",
    "BenchSettings",
    "benchmark_graphs",
    "CONSTRAINT_KEYS",
    "OBJECTIVES",
    "Constraint",
    "Selection",
    "parse_constraints",
    "select_variant",
    "pareto_front",
    "plot_pareto",
]
