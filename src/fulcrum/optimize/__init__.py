"""Optimize: export a model package to one ONNX graph (raw inputs -> outputs), then variants of it.

::

    from fulcrum.optimize import export_package_graph
    onnx_bytes = export_package_graph(preprocess_dict, adapter, task, n_features)
"""

from __future__ import annotations

from ._export import (
    DEFAULT_OPSET,
    INPUT_TYPES,
    MISSING_DATETIME,
    compose,
    export_model,
    export_package_graph,
    export_preprocess,
    graph_signature,
)

__all__ = [
    "DEFAULT_OPSET",
    "INPUT_TYPES",
    "MISSING_DATETIME",
    "export_preprocess",
    "export_model",
    "compose",
    "export_package_graph",
    "graph_signature",
]

# ---- variants: build, measure, select (optimize_package / select_variant / plot_pareto)
from ._bench import BenchSettings, benchmark_graphs  # noqa: E402
from ._plot import pareto_front, plot_pareto  # noqa: E402
from ._select import CONSTRAINT_KEYS, OBJECTIVES, Constraint, Selection, parse_constraints, select_variant  # noqa: E402
from ._variants import (  # noqa: E402
    VARIANT_KINDS,
    OptimizeOptions,
    OptimizeReport,
    optimize_package,
    promote_variant,
)

__all__ += [
    "VARIANT_KINDS",
    "OptimizeOptions",
    "OptimizeReport",
    "optimize_package",
    "promote_variant",
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
