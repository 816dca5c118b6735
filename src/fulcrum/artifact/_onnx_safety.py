"""ONNX graphs in a package must be self-contained: no tensor may keep its bytes in another file.

ONNX lets a tensor store its data outside the model ("external data": ``data_location =
EXTERNAL`` plus ``location``/``offset``/``length`` entries). ONNX Runtime resolves that location
against the model's directory, or against the working directory when the graph is handed over as
bytes, and reads whatever is there; a package could make the server hand back ``.env`` or
``/etc/passwd`` as predictions. Fulcrum never writes external data, so a graph that has any is
refused, wherever the tensor sits: initializers, sparse initializers, node attributes (``t``,
``tensors``, ``sparse_tensor(s)``), subgraphs (``If``/``Loop``/``Scan`` bodies, at any depth),
functions (their nodes and default attributes) and training-info graphs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..errors import FormatError, IntegrityError

__all__ = ["check_onnx_graph", "is_graph_file"]

_FIX = (
    "a package graph must keep every tensor inside itself; re-export it with its weights embedded "
    "(onnx.save_model(model, path, save_as_external_data=False)) or re-train the model"
)


def is_graph_file(relpath: str, manifest: Any = None) -> bool:
    """Whether a package file is an ONNX graph: ``*.onnx``, or named as a graph by the manifest."""
    if relpath.lower().endswith(".onnx"):
        return True
    if not isinstance(manifest, dict):
        return False
    named = set()
    onnx_section = manifest.get("onnx")
    if isinstance(onnx_section, dict) and isinstance(onnx_section.get("file"), str):
        named.add(onnx_section["file"])
    variants = manifest.get("variants")
    if isinstance(variants, dict):
        for entry in variants.values():
            if isinstance(entry, dict) and isinstance(entry.get("file"), str):
                named.add(entry["file"])
    return relpath in named


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _is_external(tensor: Any) -> bool:
    from onnx import TensorProto

    return tensor.data_location == TensorProto.EXTERNAL or len(tensor.external_data) > 0


def _tensors(model: Any) -> Iterator[tuple[Any, str]]:
    """Every TensorProto in the model with where it sits, depth-first, without recursion."""
    stack: list[tuple[str, Any, str]] = [("graph", model.graph, "main graph")]
    for i, fn in enumerate(model.functions):
        stack.append(("function", fn, f"function {fn.domain}:{fn.name or i}"))
    for i, info in enumerate(model.training_info):
        stack.append(("graph", info.initialization, f"training_info[{i}] initialization"))
        stack.append(("graph", info.algorithm, f"training_info[{i}] algorithm"))
    while stack:
        kind, item, where = stack.pop()
        if kind == "graph":
            for t in item.initializer:
                yield t, f"{where} > initializer"
            for s in item.sparse_initializer:
                yield s.values, f"{where} > sparse initializer"
                yield s.indices, f"{where} > sparse initializer indices"
            for j, node in enumerate(item.node):
                stack.append(("node", node, f"{where} > node {node.name or node.op_type + '#' + str(j)}"))
        elif kind == "function":
            for j, node in enumerate(item.node):
                stack.append(("node", node, f"{where} > node {node.name or node.op_type + '#' + str(j)}"))
            for attr in item.attribute_proto:
                stack.append(("attr", attr, f"{where} > default attribute {attr.name}"))
        elif kind == "node":
            for attr in item.attribute:
                stack.append(("attr", attr, f"{where} > attribute {attr.name}"))
        else:  # an attribute: look at every field, whatever its declared type says
            if item.HasField("t"):
                yield item.t, where
            for t in item.tensors:
                yield t, where
            sparse = ([item.sparse_tensor] if item.HasField("sparse_tensor") else []) + list(item.sparse_tensors)
            for s in sparse:
                yield s.values, where
                yield s.indices, f"{where} (indices)"
            if item.HasField("g"):
                stack.append(("graph", item.g, f"{where} > subgraph {item.g.name or ''}".rstrip()))
            for g in item.graphs:
                stack.append(("graph", g, f"{where} > subgraph {g.name or ''}".rstrip()))


def check_onnx_graph(data: bytes, relpath: str, *, package: Any = None) -> None:
    """Refuse ``data`` unless it is an ONNX model whose every tensor lives inside it.

    Raises FormatError when the bytes are not an ONNX model, IntegrityError when any tensor
    (anywhere, subgraphs and functions included) refers to external data. ``relpath`` names the
    file in messages; ``package`` (a path or reference) prefixes them.
    """
    import onnx
    from google.protobuf.message import DecodeError

    prefix = f"Model package {package}: file" if package is not None else "ONNX file"
    try:
        model = onnx.ModelProto.FromString(bytes(data))
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise FormatError(
            f"{prefix} {relpath!r} is not a valid ONNX model ({_short(str(exc) or type(exc).__name__)}); "
            f"re-train the model or restore the package from a backup."
        ) from None
    if not model.HasField("graph"):
        raise FormatError(
            f"{prefix} {relpath!r} is not a valid ONNX model: it has no graph; re-train the model or restore the "
            f"package from a backup."
        )
    for tensor, where in _tensors(model):
        if _is_external(tensor):
            location = next((e.value for e in tensor.external_data if e.key == "location"), "")
            raise IntegrityError(
                f"{prefix} {relpath!r} refers to external data: tensor {_short(tensor.name)!r} ({where}) keeps its "
                f"bytes in {_short(location)!r}, a file outside the graph that would be read from the disk; "
                f"refused: {_FIX}."
            )
