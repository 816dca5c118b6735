"""Graph facts every task records the same way (the manifest's ``onnx`` section)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

__all__ = ["graph_signature", "finish_model", "cpu_session", "class_head_initializers", "masked_mean"]

_TYPE_NAMES = {1: "float", 6: "int32", 7: "int64", 8: "string", 9: "bool", 11: "double"}


def _type_str(vi: Any) -> str:
    elem = vi.type.tensor_type.elem_type
    return f"tensor({_TYPE_NAMES.get(elem, str(elem))})"


def _shape(vi: Any) -> list[Any]:
    return [d.dim_param or (d.dim_value if d.HasField("dim_value") else None) for d in vi.type.tensor_type.shape.dim]


def graph_signature(model_bytes: bytes) -> dict[str, Any]:
    """Manifest entry for a graph: its opsets and every input / output with type and shape."""
    import onnx

    model = onnx.load_from_string(model_bytes)
    g = model.graph
    opsets = {o.domain or "": int(o.version) for o in model.opset_import}
    return {
        "opset": opsets.get("", 0),
        "opsets": dict(sorted(opsets.items())),
        "inputs": [{"name": i.name, "type": _type_str(i), "shape": _shape(i)} for i in g.input],
        "outputs": [{"name": o.name, "type": _type_str(o), "shape": _shape(o)} for o in g.output],
    }


def masked_mean(values: str, mask: str, axes: str, one: str, prefix: str) -> tuple[list[Any], str, str]:
    """ONNX nodes for the mean of ``values`` over ``axes`` (an INT64 initializer's name) where the boolean ``mask``
    holds, 0 where it never does; ``one`` names a FLOAT scalar 1. Returns (nodes, the mean's name, the count's
    name); every name it adds starts with ``prefix``."""
    from onnx import TensorProto, helper

    N = helper.make_node
    f, on, total, n, safe, mean = (prefix + x for x in ("mask_f", "on", "sum", "n", "n_safe", "mean"))
    return [N("Cast", [mask], [f], to=TensorProto.FLOAT), N("Mul", [values, f], [on]),
            N("ReduceSum", [on, axes], [total], keepdims=0), N("ReduceSum", [f, axes], [n], keepdims=0),
            N("Max", [n, one], [safe]), N("Div", [total, safe], [mean])], mean, n


def finish_model(graph: Any, opsets: Mapping[str, int]) -> Any:
    """A checked ModelProto of ``graph`` with ``opsets`` ({domain: version}), IR 8 (what the pinned runtime reads)."""
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()])
    model.ir_version = 8
    model.producer_name = "fulcrum"
    onnx.checker.check_model(model)
    return model


def cpu_session(model: Any, threads: int = 0) -> Any:
    """An ONNX Runtime CPU session of ``model`` (ModelProto or bytes); ``threads`` intra-op threads (0: its default)."""
    import onnxruntime as ort

    data = model if isinstance(model, bytes) else model.SerializeToString()
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = threads
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


def class_head_initializers(labels: Sequence[Any], centroids: Any) -> list[Any]:
    """The constants of a classifier's tail with a centroid OOD score: class names, the centroids (transposed),
    and the small constants the tail's nodes use (``axis1``, ``eps``, ``one_f``)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    return [helper.make_tensor("class_names", TensorProto.STRING, [len(labels)], [str(c).encode() for c in labels]),
            helper.make_tensor("axis1", TensorProto.INT64, [1], [1]),
            helper.make_tensor("eps", TensorProto.FLOAT, [], [1e-12]),
            helper.make_tensor("one_f", TensorProto.FLOAT, [], [1.0]),
            numpy_helper.from_array(np.ascontiguousarray(np.asarray(centroids).T.astype(np.float32)), "centroids_t")]
