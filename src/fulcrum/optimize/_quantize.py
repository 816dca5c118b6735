"""Graph-to-graph transforms for variants: ONNX Runtime's offline graph optimization and int8 quantization.

Every transform takes a package graph and returns one; none knows which task made it. What to
quantize comes from the task's variant params (:func:`quantize_graph`):

``scope``       quantize only the part of the graph after this edge (e.g. ``features``: a table's model
                part), keeping what is in front of it (string/date preprocessing) exact; default: the
                whole graph
``float32``     compute the quantized part in float32 first (double-precision MatMuls cannot be quantized)
``op_types`` / ``op_types_to_quantize``   ops to quantize (default MatMul, Gemm)
``weight_type`` QInt8 | QUInt8; ``per_channel``, ``reduce_range``; ``exclude_prefix``: nodes named so stay float
``extra_options`` passed to the quantizer (e.g. ``MatMulConstBOnly``)

Static int8 is calibrated on feeds the task gives (``Task.calibration_feeds``: training rows); with a
``scope`` the part in front is run first, so the quantizer calibrates on the scope's own input.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

__all__ = ["ort_optimize_offline", "to_float32", "quantize_dynamic_model", "quantize_static_model",
           "has_quantizable_ops", "QUANTIZABLE_OPS", "split_graph", "join_graphs", "quantize_graph"]

#: Ops whose int8 kernels ONNX Runtime provides on CPU (what the MLP and linear graphs are made of).
QUANTIZABLE_OPS = ("MatMul", "Gemm")


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """onnxruntime.quantization logs advice ("consider pre-processing") through the root logger."""
    root = logging.getLogger()
    old = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(old)


def _load(data: bytes) -> Any:
    import onnx

    return onnx.load_from_string(data)


def ort_optimize_offline(model: bytes, level: str = "extended", custom_ops: list[str] | tuple[str, ...] = ()) -> bytes:
    """The graph after ONNX Runtime's graph optimizations, saved (``optimized_model_filepath``).

    ``level="extended"`` (constant folding, redundant-node elimination, op fusions such as
    MatMul+Add -> Gemm-like kernels) rather than "all": "all" adds layout transforms tied to
    the machine it ran on; "extended" is what ONNX Runtime recommends for offline use.
    """
    import onnxruntime as ort

    levels = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
    with tempfile.TemporaryDirectory(prefix="fulcrum-ortopt-") as tmp:
        out = Path(tmp) / "optimized.onnx"
        opts = ort.SessionOptions()
        opts.graph_optimization_level = levels[level]
        opts.optimized_model_filepath = str(out)
        opts.log_severity_level = 3
        for lib in custom_ops:  # allowlisted libraries (fulcrum.runtime._engines.custom_op_libraries)
            opts.register_custom_ops_library(lib)
        from ..artifact import check_onnx_graph

        check_onnx_graph(model, "the graph to optimize")  # never a session over external data
        ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        return out.read_bytes()


def to_float32(model: Any) -> Any:
    """A copy of ``model`` computing in float32 where it computed in float64 (the linear graph).

    Double initializers become float, ``Cast(to=DOUBLE)`` becomes ``Cast(to=FLOAT)``; the
    graph's inputs and outputs are float32 already. Quantizers only handle float32 MatMuls.
    """
    import onnx
    from onnx import numpy_helper

    m = onnx.ModelProto.FromString(model.SerializeToString())
    g = m.graph
    for i, init in enumerate(g.initializer):
        if init.data_type == onnx.TensorProto.DOUBLE:
            arr = numpy_helper.to_array(init).astype(np.float32)
            g.initializer[i].CopyFrom(numpy_helper.from_array(arr, init.name))
    for node in g.node:
        if node.op_type == "Cast":
            for a in node.attribute:
                if a.name == "to" and a.i == onnx.TensorProto.DOUBLE:
                    a.i = onnx.TensorProto.FLOAT
    for vi in g.value_info:
        if vi.type.tensor_type.elem_type == onnx.TensorProto.DOUBLE:
            vi.type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    onnx.checker.check_model(m)
    return m


def has_quantizable_ops(model: Any, ops: tuple[str, ...] | list[str] = QUANTIZABLE_OPS) -> bool:
    return any(n.op_type in ops for n in model.graph.node)


def quantize_dynamic_model(model: Any) -> Any:
    """``onnxruntime.quantization.quantize_dynamic``: int8 weights (per tensor, signed), activations
    quantized to uint8 at run time; MatMul/Gemm only."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="fulcrum-q8d-") as tmp:
        src, dst = os.path.join(tmp, "model.onnx"), os.path.join(tmp, "model.int8.onnx")
        onnx.save(model, src)
        with _quiet_quantizer():
            quantize_dynamic(src, dst, weight_type=QuantType.QInt8, op_types_to_quantize=list(QUANTIZABLE_OPS),
                             extra_options={"MatMulConstBOnly": True})
        return onnx.load(dst)


class _Calibration:
    """CalibrationDataReader over prepared feature rows (float32 [n, D]) in small batches."""

    def __init__(self, X: np.ndarray, input_name: str, batch: int = 32) -> None:
        self.batches = [X[i:i + batch] for i in range(0, len(X), batch)]
        self.name = input_name
        self.i = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.i >= len(self.batches):
            return None
        self.i += 1
        return {self.name: np.ascontiguousarray(self.batches[self.i - 1], dtype=np.float32)}

    def rewind(self) -> None:
        self.i = 0


def quantize_static_model(model: Any, calibration: np.ndarray, *, method: str = "minmax") -> Any:
    """``onnxruntime.quantization.quantize_static`` in QDQ format, calibrated on ``calibration``
    (prepared training features): uint8 activations, int8 weights (ORT's recommended U8S8 on x86)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    reader = _Calibration(np.asarray(calibration, dtype=np.float32), model.graph.input[0].name)
    with tempfile.TemporaryDirectory(prefix="fulcrum-q8s-") as tmp:
        src, dst = os.path.join(tmp, "model.onnx"), os.path.join(tmp, "model.int8s.onnx")
        onnx.save(model, src)
        with _quiet_quantizer():
            quantize_static(src, dst, reader, quant_format=QuantFormat.QDQ, op_types_to_quantize=list(QUANTIZABLE_OPS),
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=False,
                            calibrate_method=methods[method], extra_options={"MatMulConstBOnly": True})
        return onnx.load(dst)


# ----------------------------------------------------------------------------- scoped quantization


def _node_inputs(node: Any) -> list[str]:
    """Every edge ``node`` reads, including those its subgraphs (If/Loop/Scan bodies) read from outside."""
    names = [n for n in node.input if n]
    for attr in node.attribute:
        for g in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
            inner = {o for n in g.node for o in n.output} | {i.name for i in g.input} | {t.name for t in g.initializer}
            names += [n for sub in g.node for n in _node_inputs(sub) if n not in inner]
    return names


def split_graph(model: Any, edge: str) -> tuple[Any, Any]:
    """(head, tail): ``head`` computes ``edge`` from the graph's inputs; ``tail`` computes the graph's outputs
    from ``edge`` alone. Outputs computed from the inputs without ``edge`` (e.g. an image's size, for the monitor)
    are ``head``'s too, after ``edge``. A :class:`~fulcrum.errors.ConfigError` when ``edge`` does not cut the graph
    in two."""
    import onnx
    from onnx import helper

    from ..errors import ConfigError

    g = model.graph
    inits = {t.name: t for t in g.initializer}
    downstream = {edge}
    head_nodes, tail_nodes = [], []
    for node in g.node:
        if any(n in downstream for n in _node_inputs(node)):
            tail_nodes.append(node)
            downstream.update(o for o in node.output if o)
        else:
            head_nodes.append(node)
    produced_by_head = {o for n in head_nodes for o in n.output} | {i.name for i in g.input}
    leaks = sorted({n for node in tail_nodes for n in _node_inputs(node)
                    if n != edge and n not in inits and n in produced_by_head})
    outputs = [o.name for o in g.output]
    early = [o for o in g.output if o.name not in downstream and o.name in produced_by_head and o.name != edge]
    if not tail_nodes or leaks or not any(o in downstream for o in outputs) or edge not in produced_by_head:
        raise ConfigError(f"The graph's edge {edge!r} does not split it into a front part and a model part "
                          f"({'also read after it: ' + ', '.join(leaks[:5]) if leaks else 'not a cut'}); quantize the "
                          "whole graph instead (no scope).")
    inferred = onnx.shape_inference.infer_shapes(model)
    info = {vi.name: vi for vi in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]}
    edge_vi = info.get(edge) or helper.make_tensor_value_info(edge, onnx.TensorProto.FLOAT, None)

    def part(nodes: list[Any], inputs: list[Any], outs: list[Any], name: str) -> Any:
        used = {n for node in nodes for n in _node_inputs(node)}
        graph = helper.make_graph(nodes, name, inputs, outs, initializer=[t for n, t in inits.items() if n in used])
        m = helper.make_model(graph, opset_imports=list(model.opset_import))
        m.ir_version = model.ir_version
        return m

    head = part(head_nodes, list(g.input), [edge_vi, *early], f"{g.name}_head")
    tail = part(tail_nodes, [edge_vi], [o for o in g.output if o.name in downstream], f"{g.name}_tail")
    return head, tail


def join_graphs(head: Any, tail: Any, name: str = "fulcrum") -> Any:
    """The inverse of :func:`split_graph`: ``head``'s nodes, then ``tail``'s (which reads head's output)."""
    import onnx
    from onnx import helper

    from ..errors import FormatError

    names = {t.name for t in head.graph.initializer}
    clash = [t.name for t in tail.graph.initializer if t.name in names]
    if clash:
        raise FormatError(f"Cannot join the quantized part: initializer names {clash[:3]} are used on both sides.")
    opsets: dict[str, int] = {}
    for m in (head, tail):
        for o in m.opset_import:
            opsets[o.domain] = max(opsets.get(o.domain, 0), int(o.version))
    fed = {i.name for i in tail.graph.input}
    graph = helper.make_graph(list(head.graph.node) + list(tail.graph.node), name, list(head.graph.input),
                              list(tail.graph.output) + [o for o in head.graph.output if o.name not in fed],
                              initializer=list(head.graph.initializer) + list(tail.graph.initializer))
    out = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(opsets.items())])
    out.ir_version = max(int(head.ir_version), int(tail.ir_version))
    out.producer_name = "fulcrum"
    onnx.checker.check_model(out)
    return out


class _FeedsReader:
    """CalibrationDataReader over feed dicts ({input: array of n rows}) in batches of ``batch`` rows."""

    def __init__(self, feeds: dict[str, np.ndarray], batch: int = 32) -> None:
        n = len(next(iter(feeds.values()))) if feeds else 0
        self.batches = [{k: np.ascontiguousarray(v[i:i + batch]) for k, v in feeds.items()} for i in range(0, n, batch)]
        self.i = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.i >= len(self.batches):
            return None
        self.i += 1
        return self.batches[self.i - 1]

    def rewind(self) -> None:
        self.i = 0


def quantize_graph(model_bytes: bytes, mode: str, params: dict[str, Any] | None = None, *,
                   calibration: dict[str, np.ndarray] | None = None,
                   custom_ops: list[str] | tuple[str, ...] = ()) -> tuple[bytes, dict[str, Any]]:
    """(int8 graph, what was done) for ``mode`` ``"dynamic"`` or ``"static"`` (QDQ, calibrated on
    ``calibration``: feeds of the whole graph); ``params`` as in the module docstring."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static

    from ..errors import ConfigError

    p = dict(params or {})
    ops = list(p.get("op_types_to_quantize") or p.get("op_types") or QUANTIZABLE_OPS)
    model = onnx.load_from_string(model_bytes)
    scope = p.get("scope")
    head = None
    part = model
    if scope:
        head, part = split_graph(model, str(scope))
    if p.get("float32"):
        part = to_float32(part)
    if not has_quantizable_ops(part, tuple(ops)):
        raise ConfigError(f"The graph{' after ' + repr(scope) if scope else ''} has no {'/'.join(ops)} to quantize.")
    prefix = p.get("exclude_prefix")
    exclude = [n.name for n in part.graph.node if prefix and n.name.startswith(prefix)]
    weight = getattr(QuantType, str(p.get("weight_type", "QInt8")))
    extra = {"DefaultTensorType": onnx.TensorProto.FLOAT, **dict(p.get("extra_options") or {})}
    described: dict[str, Any] = {
        "weights": f"{'u' if str(p.get('weight_type', 'QInt8')) == 'QUInt8' else ''}int8 "
                   f"{'per-channel' if p.get('per_channel') else 'per-tensor'}"
                   f"{', reduced range' if p.get('reduce_range') else ''}",
        "ops": ops,
        "scope": f"the graph after {scope!r} only; what comes before it stays float/string" if scope else "whole graph",
    }
    if exclude:
        described["kept_float"] = f"{len(exclude)} node(s) named {prefix}*"
    with tempfile.TemporaryDirectory(prefix="fulcrum-q8-") as tmp:
        src, dst = os.path.join(tmp, "model.onnx"), os.path.join(tmp, "model.int8.onnx")
        onnx.save(part, src)
        with _quiet_quantizer():
            if mode == "dynamic":
                quantize_dynamic(src, dst, weight_type=weight, per_channel=bool(p.get("per_channel", False)),
                                 reduce_range=bool(p.get("reduce_range", False)), op_types_to_quantize=ops,
                                 nodes_to_exclude=exclude, extra_options=extra)
                described["activations"] = "uint8, dynamic range per call"
            elif mode == "static":
                if not calibration:
                    raise ConfigError("Static int8 needs calibration rows; the task gave none.")
                feeds = calibration
                if head is not None:  # calibrate on the scope's own input: run the front part first
                    import onnxruntime as ort

                    so = ort.SessionOptions()
                    so.log_severity_level = 3
                    for lib in custom_ops:
                        so.register_custom_ops_library(lib)
                    sess = ort.InferenceSession(head.SerializeToString(), so, providers=["CPUExecutionProvider"])
                    feeds = {str(scope): sess.run([str(scope)], dict(calibration))[0]}
                method = str(p.get("calibration_method", "minmax"))
                methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                           "percentile": CalibrationMethod.Percentile}
                quantize_static(src, dst, _FeedsReader(feeds), quant_format=QuantFormat.QDQ, op_types_to_quantize=ops,
                                activation_type=QuantType.QUInt8, weight_type=weight,
                                per_channel=bool(p.get("per_channel", False)), reduce_range=bool(p.get("reduce_range", False)),
                                nodes_to_exclude=exclude, calibrate_method=methods[method], extra_options=extra)
                described.update(format="QDQ", activations=f"uint8, calibrated ({'MinMax' if method == 'minmax' else method})")
            else:
                raise ConfigError(f"Quantization mode is 'dynamic' or 'static', not {mode!r}.")
        quantized = onnx.load(dst)
    out = join_graphs(head, quantized, model.graph.name or "fulcrum") if head is not None else quantized
    return out.SerializeToString(), described
