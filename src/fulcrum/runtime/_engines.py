"""Inference engines: ONNX Runtime (the default) and the native adapters (the reference).

An engine is created once per Predictor; everything costly (session options, graph
optimization, thread pools, a warm-up run) happens in its constructor.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np

__all__ = ["OnnxEngine", "NativeEngine", "physical_cores"]


def physical_cores() -> int:
    """Physical cores this process may use (hyper-threads add little to ORT's math kernels)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        usable = os.cpu_count() or 1
    try:
        import psutil

        physical = psutil.cpu_count(logical=False) or usable
    except ImportError:  # pragma: no cover - psutil is a dependency
        physical = usable
    return max(1, min(usable, physical))


class OnnxEngine:
    """An ``onnxruntime.InferenceSession`` over a package graph (raw columns in, outputs out).

    Session: ORT_ENABLE_ALL graph optimizations, ``intra_op_num_threads`` = physical
    cores, one inter-op thread, sequential execution, and a warm-up run at load.
    """

    name = "onnx"

    def __init__(self, model: bytes | str | os.PathLike[str], *, kind: str, warmup: Mapping[str, np.ndarray] | None = None,
                 threads: int | None = None, providers: list[str] | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads or physical_cores()
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3  # errors only: shape-annotation warnings are not the user's concern
        source = model if isinstance(model, bytes) else os.fspath(model)
        self.session = ort.InferenceSession(source, opts, providers=providers or ["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        wanted = "probabilities" if kind == "classification" else "value"
        primary = wanted if wanted in self.output_names else f"output:{wanted}"
        if primary not in self.output_names:
            from ..errors import FormatError

            raise FormatError(f"The ONNX graph has outputs {self.output_names}; a {kind} graph must output {wanted!r}.")
        self.primary = primary
        self._primary = [primary]
        self._run = self.session.run
        if warmup is not None:
            self._run(None, dict(warmup))

    def output(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        """The task output: probabilities (N, K) float32 or values (N,) float32."""
        return self._run(self._primary, feeds)[0]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every graph output by name."""
        return dict(zip(self.output_names, self._run(None, feeds)))


class NativeEngine:
    """The package's own adapter (torch / scikit-learn coefficients / LightGBM) after the Python Preprocessor."""

    name = "native"

    def __init__(self, package: Any, kind: str, labels: list[Any] | None) -> None:
        from ..models import TaskSpec, adapter_class  # imports torch: only the native engine pays for it

        m = package.manifest
        self.task = TaskSpec(kind, n_classes=len(labels or []))
        self.adapter = adapter_class(m["model"]["family"]).from_files(self.task, m["model"], package.read_bytes)

    def output(self, X: np.ndarray) -> np.ndarray:
        return self.adapter.predict_output(X)
