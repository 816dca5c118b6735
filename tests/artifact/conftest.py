"""Helpers for the artifact tests: tiny valid ONNX graphs, re-hashing a package after editing it,
and one real trained package (a linear regression) shared by the tests that run it."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


def tiny_onnx(tag: str = "g") -> bytes:
    """A valid ONNX model (Y = Identity(X)); ``tag`` makes the bytes differ between graphs."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["X"], ["Y"])], f"graph-{tag}",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 1])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def rehash(pkg_dir: Path) -> None:
    """Re-record every listed file's sha256 and size, then the manifest's own digest: what an attacker
    who can write the package directory does so that the checksums pass again."""
    pkg_dir = Path(pkg_dir)
    manifest = json.loads((pkg_dir / "manifest.json").read_text())
    for rel in manifest["files"]:
        data = (pkg_dir / rel).read_bytes()
        manifest["files"][rel] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    raw = (json.dumps(manifest, sort_keys=True, indent=2) + "\n").encode()
    (pkg_dir / "manifest.json").write_bytes(raw)
    (pkg_dir / "MANIFEST.sha256").write_text(f"{hashlib.sha256(raw).hexdigest()}  manifest.json\n")


def add_listed_file(pkg_dir: Path, rel: str, data: bytes, manifest_updates: dict | None = None) -> None:
    """Drop a file into a package, list it in the manifest and re-hash (an attacker's edit)."""
    target = Path(pkg_dir) / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    manifest = json.loads((Path(pkg_dir) / "manifest.json").read_text())
    manifest["files"][rel] = {"sha256": "", "bytes": 0}
    manifest.update(manifest_updates or {})
    (Path(pkg_dir) / "manifest.json").write_text(json.dumps(manifest))
    rehash(pkg_dir)


LINEAR_FRAME = pd.DataFrame({"a": np.linspace(-1, 1, 40), "b": np.cos(np.arange(40.0))})
LINEAR_FRAME["y"] = 2.0 * LINEAR_FRAME["a"] + 1.0


@pytest.fixture(scope="session")
def linear_package_src(tmp_path_factory) -> Path:
    """A real package (linear regression on columns a, b) trained once; copy it before editing."""
    import fulcrum

    root = tmp_path_factory.mktemp("linear-src")
    pkg = fulcrum.train(LINEAR_FRAME, target="y", name="lin", model="linear", registry=root / "registry",
                        progress=False, measure_inference=False)
    return Path(pkg.path)


@pytest.fixture
def linear_package(linear_package_src, tmp_path) -> Path:
    """A private copy of the trained package directory (safe to tamper with)."""
    dest = tmp_path / "pkg-copy" / "lin"
    shutil.copytree(linear_package_src, dest)
    return dest
