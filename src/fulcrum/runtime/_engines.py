"""Inference engines: ONNX Runtime (the default) and the native adapters (the reference).

An engine is created once per Predictor; everything costly (session options, graph
optimization, thread pools, a warm-up run) happens in its constructor.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

__all__ = ["OnnxEngine", "NativeEngine", "physical_cores", "custom_op_libraries", "graph_output", "primary_output"]

# Custom-operator libraries a package graph may name (manifest["onnx"]["custom_ops"]): an allowlist of
# installed packages, never a path from the package (loading one runs its native code).
_CUSTOM_OPS = {"onnxruntime_extensions": ("onnxruntime_extensions", "get_library_path")}
#: Graph output names by output kind when the manifest's name is not the graph's (tabular packages name
#: their label and value outputs after the target).
_KIND_OUTPUT = {"probabilities": "probabilities", "value": "value", "label": "label", "ood_score": "ood_score",
                "items": "items", "scores": "scores", "text": "text"}


def custom_op_libraries(manifest: Mapping[str, Any]) -> list[str]:
    """Paths of the custom-operator libraries ``manifest["onnx"]["custom_ops"]`` names (known ones only)."""
    from ..errors import FormatError

    names = ((manifest.get("onnx") or {}).get("custom_ops") or []) if isinstance(manifest, Mapping) else []
    paths = []
    for name in names:
        if name not in _CUSTOM_OPS:
            raise FormatError(f"The model's graph needs custom operators from {name!r}, which this Fulcrum does not "
                              f"load (known: {', '.join(_CUSTOM_OPS)}); upgrade fulcrum.")
        module, fn = _CUSTOM_OPS[name]
        try:
            import importlib

            paths.append(str(getattr(importlib.import_module(module), fn)()))
        except ImportError:
            raise FormatError(f"The model's graph needs the package {name.replace('_', '-')!r} for its operators; "
                              f"install it (pip install {name.replace('_', '-')}).") from None
    return paths


def graph_output(manifest: Mapping[str, Any], kind: str, names: list[str] | tuple[str, ...]) -> str | None:
    """The graph output (among ``names``) holding the manifest's output of ``kind``, or None."""
    entries = [o for o in (manifest.get("outputs") or []) if isinstance(o, Mapping) and o.get("kind") == kind]
    candidates = [str(c) for o in entries for c in (o.get("graph"), o.get("name")) if c] + [_KIND_OUTPUT.get(kind, kind)]
    for c in candidates:
        for name in (c, f"output:{c}"):
            if name in names:
                return name
    return None


def primary_output(manifest: Mapping[str, Any]) -> str:
    """The output the runtime scores and formats: class probabilities for a classifier, else the values."""
    kinds = {o.get("kind") for o in (manifest.get("outputs") or []) if isinstance(o, Mapping)}
    if "items" in kinds:  # a recommender: top-k item ids (N, k), with their ``scores`` beside them
        return "items"
    if "text" in kinds:  # a transcriber: one string per row (N,)
        return "text"
    if "probabilities" in kinds or (not kinds and (manifest.get("task") or {}).get("kind") == "classification"):
        return "probabilities"
    return "value"


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


def default_providers() -> list[str]:
    """ONNX Runtime's execution providers: CUDA first when this build has it (onnxruntime-gpu on a CUDA
    machine; nodes it cannot run fall back to CPU), then CPU."""
    import onnxruntime as ort

    cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    return (["CUDAExecutionProvider"] if cuda else []) + ["CPUExecutionProvider"]


class OnnxEngine:
    """An ``onnxruntime.InferenceSession`` over a package graph (raw columns in, outputs out).

    Session: ORT_ENABLE_ALL graph optimizations, ``intra_op_num_threads`` = physical
    cores, one inter-op thread, sequential execution, and a warm-up run at load.
    """

    name = "onnx"

    def __init__(self, model: bytes | str | os.PathLike[str], *, kind: str | None = None, output: str | None = None,
                 warmup: Mapping[str, np.ndarray] | None = None, threads: int | None = None,
                 providers: list[str] | None = None, label: str | None = None,
                 custom_ops: list[str] | tuple[str, ...] = ()) -> None:
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
        for lib in custom_ops:  # an allowlisted, installed library (custom_op_libraries), never a package file
            opts.register_custom_ops_library(lib)
        try:
            self.session = ort.InferenceSession(data, opts, providers=providers or default_providers())
        except FulcrumError:
            raise
        except Exception as exc:
            raise FormatError(
                f"{name} cannot be loaded by ONNX Runtime ({_first_line(exc)}); re-train the model or restore "
                "the package from a backup."
            ) from None
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        wanted = output or ("probabilities" if kind == "classification" else "value")
        primary = wanted if wanted in self.output_names else f"output:{wanted}"
        if primary not in self.output_names:
            what = f"a {kind} graph" if output is None else "this model's graph"
            raise FormatError(f"{name} has outputs {self.output_names}; {what} must output {wanted!r}.")
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

    def outputs(self, feeds: Mapping[str, np.ndarray], names: list[str]) -> list[np.ndarray]:
        """The named graph outputs, in one run."""
        return self._run(names, feeds)


class NativeEngine:
    """A package's reference engine: its task's :meth:`~fulcrum.tasks.Task.native_predictor` (for tables,
    the model adapter itself after the Python Preprocessor). ``output(frame)`` -> the primary output."""

    name = "native"

    def __init__(self, package: Any, kind: str | None = None, labels: list[Any] | None = None) -> None:
        from ..tasks import get_task

        self.impl = get_task(package.manifest).native_predictor(package)

    def __getattr__(self, name: str) -> Any:  # adapter, preprocessor, transform, last_extra_, ...
        if name == "impl":
            raise AttributeError(name)
        return getattr(self.impl, name)

    def output(self, frame: Any, on_unknown: str = "ignore") -> np.ndarray:
        return self.impl.output(frame, on_unknown)
