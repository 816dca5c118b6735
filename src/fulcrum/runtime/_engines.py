"""Inference engines: ONNX Runtime (the default) and the native adapters (the reference).

An engine is created once per Predictor; everything costly (session options, graph
optimization, thread pools, a warm-up run) happens in its constructor.
"""

from __future__ import annotations

import os
from pathlib import Path
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


def _first_line(exc: BaseException, limit: int = 300) -> str:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text if len(text) <= limit else text[:limit] + "..."


class OnnxEngine:
    """An ``onnxruntime.InferenceSession`` over a package graph (raw columns in, outputs out).

    Session: ORT_ENABLE_ALL graph optimizations, ``intra_op_num_threads`` = physical
    cores, one inter-op thread, sequential execution, and a warm-up run at load.
    """

    name = "onnx"

    def __init__(self, model: bytes | str | os.PathLike[str], *, kind: str, warmup: Mapping[str, np.ndarray] | None = None,
                 threads: int | None = None, providers: list[str] | None = None, label: str | None = None) -> None:
        import onnxruntime as ort

        from ..artifact import check_onnx_graph
        from ..errors import FormatError, FulcrumError

        # Every session starts from checked bytes: a graph with external data (a tensor whose bytes
        # live in another file, resolved against the working directory) is refused before ONNX Runtime
        # sees it, and ORT's own failures become one FormatError naming the graph.
        if isinstance(model, bytes):
            data, name = model, label or "the ONNX graph"
        else:
            from ..artifact._limits import read_regular

            name = label or os.fspath(model)
            data = read_regular(Path(os.fspath(model)), "ONNX graph", name)
        check_onnx_graph(data, name)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads or physical_cores()
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3  # errors only: shape-annotation warnings are not the user's concern
        try:
            self.session = ort.InferenceSession(data, opts, providers=providers or ["CPUExecutionProvider"])
        except FulcrumError:
            raise
        except Exception as exc:
            raise FormatError(
                f"{name} cannot be loaded by ONNX Runtime ({_first_line(exc)}); re-train the model or restore "
                "the package from a backup."
            ) from None
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        wanted = "probabilities" if kind == "classification" else "value"
        primary = wanted if wanted in self.output_names else f"output:{wanted}"
        if primary not in self.output_names:
            raise FormatError(f"{name} has outputs {self.output_names}; a {kind} graph must output {wanted!r}.")
        self.primary = primary
        self._primary = [primary]
        self._run = self.session.run
        if warmup is not None:
            try:
                self._run(None, dict(warmup))
            except Exception as exc:
                raise FormatError(
                    f"{name} fails on a sample row in ONNX Runtime ({_first_line(exc)}); re-train the model or "
                    "restore the package from a backup."
                ) from None

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
