"""Graph facts every task records the same way (the manifest's ``onnx`` section)."""

from __future__ import annotations

from typing import Any

__all__ = ["graph_signature"]

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


