"""ONNX Runtime graph work for variants: offline graph optimization and int8 quantization.

Only the *model* part of a package graph (``features`` float32 [N, D] -> outputs) is
quantized; the string/date preprocessing is exported again on its own and composed in
front of the quantized model, so categorical matching and text tokenizing stay exact.
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
           "has_quantizable_ops", "QUANTIZABLE_OPS"]

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


def ort_optimize_offline(model: bytes, level: str = "extended") -> bytes:
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


def has_quantizable_ops(model: Any) -> bool:
    return any(n.op_type in QUANTIZABLE_OPS for n in model.graph.node)


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
