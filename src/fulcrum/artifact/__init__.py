"""Model packages (save, load, verify) and the registry (versions, aliases, integrity).

    >>> from fulcrum.artifact import Registry
    >>> reg = Registry()                                  # $FULCRUM_HOME/registry
    >>> pkg = reg.register("iris", manifest, {"model.onnx": data})
    >>> reg.set_alias("iris@1", "production")
    >>> reg.load("iris@production").read_bytes("model.onnx")
"""

from __future__ import annotations

from ._names import is_path_ref, parse_ref, sanitize_name, validate_alias, validate_name
from ._onnx_safety import check_onnx_graph
from ._package import FORMAT_VERSION, ModelPackage, add_files, write_package
from ._promotion import DEFAULT_MAX_DROP, compare_versions, promote
from ._registry import Registry, default_home, default_registry_root
from ._resolve import load_reference

__all__ = [
    "DEFAULT_MAX_DROP",
    "FORMAT_VERSION",
    "ModelPackage",
    "Registry",
    "add_files",
    "check_onnx_graph",
    "compare_versions",
    "default_home",
    "default_registry_root",
    "is_path_ref",
    "load_reference",
    "parse_ref",
    "promote",
    "sanitize_name",
    "validate_alias",
    "validate_name",
    "write_package",
]
