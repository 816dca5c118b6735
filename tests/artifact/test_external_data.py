"""A package can never read files outside itself.

ONNX lets a tensor keep its bytes in another file ("external data"); ONNX Runtime resolves that
file's location against the process's working directory when the graph comes as bytes, so a
package whose graph names ``secret.bin`` (or ``.env``, ``etc/passwd``) would return that file's
bytes as predictions. Fulcrum refuses such a graph at load and at registration, wherever the
tensor hides: initializers, sparse initializers, node attributes, subgraphs, functions.
"""

from __future__ import annotations

import json
import os
import shutil
import struct

import numpy as np
import pandas as pd
import pytest

import fulcrum
from fulcrum.artifact import ModelPackage, Registry, add_files, write_package
from fulcrum.cli import main
from fulcrum.errors import ArtifactError, ConfigError, FormatError, IntegrityError
from fulcrum.runtime import Predictor

from .conftest import add_listed_file, rehash, tiny_onnx

SECRET = 4242.0


def _external(name: str, data_type: int, dims: list[int], location: str = "secret.bin", *,
              flag: bool = True, entries: bool = True):
    from onnx import TensorProto

    t = TensorProto(name=name, data_type=data_type, dims=dims)
    if flag:
        t.data_location = TensorProto.EXTERNAL
    if entries:
        for key, value in (("location", location), ("offset", "0"), ("length", str(8 * int(np.prod(dims) or 1)))):
            e = t.external_data.add()
            e.key, e.value = key, value
    return t


def exploit(model_bytes: bytes, location: str = "secret.bin") -> bytes:
    """The attack on a real linear-regression graph: zero the coefficients, move the intercept's bytes
    to ``location`` (external data), and make it an overridable graph input so that no optimizer
    folds it away: the prediction is then the first 8 bytes of that file, read as a double."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load_model_from_string(model_bytes)
    found = set()
    for init in model.graph.initializer:
        if "coef" in init.name:
            init.CopyFrom(numpy_helper.from_array(np.zeros(tuple(init.dims)), init.name))
            found.add("coef")
        elif "intercept" in init.name:
            init.CopyFrom(_external(init.name, init.data_type, list(init.dims), location))
            model.graph.input.append(helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
            found.add("intercept")
    assert found == {"coef", "intercept"}, "the linear graph changed shape; update the exploit"
    return model.SerializeToString()


@pytest.fixture
def secret_cwd(tmp_path, monkeypatch):
    """A working directory holding the file the attacker wants to read."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "secret.bin").write_bytes(struct.pack("<d", SECRET))
    monkeypatch.chdir(cwd)
    return cwd


@pytest.fixture
def attacked(linear_package):
    """The trained package with the exploit in model.onnx, re-hashed so every checksum passes."""
    path = linear_package / "model.onnx"
    path.write_bytes(exploit(path.read_bytes()))
    rehash(linear_package)
    return linear_package


def _raw_ort_value(model_bytes: bytes) -> float:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
    return float(sess.run(["value"], {"a": np.array([[0.5]]), "b": np.array([[0.1]])})[0][0])


def test_the_exploit_is_real(attacked, secret_cwd):
    """Without Fulcrum in the way, ONNX Runtime does hand the file's bytes back as the prediction:
    the refusals below guard a real hole, not a hypothetical one."""
    assert _raw_ort_value((attacked / "model.onnx").read_bytes()) == SECRET


def test_external_data_is_refused_at_load(attacked, secret_cwd):
    with pytest.raises(IntegrityError, match=r"'model\.onnx'.*external data.*'secret\.bin'"):
        ModelPackage.load(attacked)
    unverified = ModelPackage.load(attacked, verify=False)  # the checksums are not what stops it
    with pytest.raises(IntegrityError, match=r"'model\.onnx'.*external data"):
        Predictor(unverified)
    with pytest.raises(IntegrityError, match="external data"):
        fulcrum.load(str(attacked))


def test_external_data_is_refused_by_the_cli(attacked, secret_cwd, capsys):
    pd.DataFrame({"a": [0.5], "b": [0.1]}).to_csv(secret_cwd / "rows.csv", index=False)
    out = secret_cwd / "out.csv"
    rc = main(["predict", str(attacked), str(secret_cwd / "rows.csv"), "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith("error:") and "external data" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_external_data_in_a_variant_is_refused(linear_package, secret_cwd):
    graph = exploit((linear_package / "model.onnx").read_bytes())
    manifest = json.loads((linear_package / "manifest.json").read_text())
    add_listed_file(linear_package, "variants/evil/model.onnx", graph,
                    {"variants": {**manifest.get("variants", {}), "evil": {"file": "variants/evil/model.onnx"}}})
    with pytest.raises(IntegrityError, match=r"'variants/evil/model\.onnx'.*external data"):
        ModelPackage.load(linear_package)
    pkg = ModelPackage.load(linear_package, verify=False)
    Predictor(pkg)  # the clean main graph still loads
    with pytest.raises(IntegrityError, match="external data"):
        Predictor(pkg, variant="evil")


def test_external_data_in_any_onnx_file_is_refused(linear_package):
    add_listed_file(linear_package, "extra/graph.onnx", exploit((linear_package / "model.onnx").read_bytes()))
    with pytest.raises(IntegrityError, match=r"'extra/graph\.onnx'.*external data"):
        ModelPackage.load(linear_package)


def test_registration_refuses_external_data(linear_package, tmp_path):
    src = ModelPackage.load(linear_package)
    files = {rel: src.read_bytes(rel) for rel in src.files}
    manifest = {k: v for k, v in src.manifest.items() if k not in ("files", "format_version")}
    evil = {**files, "model.onnx": exploit(files["model.onnx"])}
    reg = Registry(tmp_path / "reg")
    with pytest.raises(IntegrityError, match=r"'model\.onnx'.*external data"):
        reg.register("evil", manifest, evil)
    assert not (reg.root / "evil").exists() or not any((reg.root / "evil").iterdir())
    assert reg.list() == []
    with pytest.raises(IntegrityError, match="external data"):
        write_package(tmp_path / "direct", manifest, evil)
    assert not (tmp_path / "direct").exists()

    good = reg.register("good", manifest, files)
    before = (good.path / "manifest.json").read_bytes()
    with pytest.raises(IntegrityError, match=r"'variants/x/model\.onnx'.*external data"):
        reg.add_files("good@1", {"variants/x/model.onnx": evil["model.onnx"]}, {"variants": {"x": {}}})
    with pytest.raises(IntegrityError, match="external data"):
        add_files(good.path, {"variants/x/model.onnx": evil["model.onnx"]}, {})
    assert (good.path / "manifest.json").read_bytes() == before
    assert not (good.path / "variants").exists()


def test_a_file_that_is_not_onnx_is_refused_at_registration(tmp_path):
    with pytest.raises(FormatError, match=r"'model\.onnx' is not a valid ONNX model"):
        write_package(tmp_path / "p", {}, {"model.onnx": b"\x08\x01 not protobuf \xff\xff"})
    with pytest.raises(FormatError, match=r"'model\.onnx' is not a valid ONNX model.*no graph"):
        write_package(tmp_path / "p", {}, {"model.onnx": b""})
    assert not (tmp_path / "p").exists()


# --------------------------------------------------------------------------- every hiding place


def _model_with(where: str, *, external: bool = True):
    """A small model with one tensor (``hidden``) placed at ``where``, external or inline."""
    from onnx import TensorProto, helper, numpy_helper

    def tensor(name: str = "hidden"):
        if external:
            return _external(name, TensorProto.DOUBLE, [1])
        return numpy_helper.from_array(np.array([1.0]), name)

    X = helper.make_tensor_value_info("X", TensorProto.DOUBLE, [1])
    Y = helper.make_tensor_value_info("Y", TensorProto.DOUBLE, [1])
    cond = helper.make_tensor_value_info("cond", TensorProto.BOOL, [])
    nodes, inits, sparse, functions, training = [], [], [], [], []

    def branch(inner_nodes, inner_inits=()):
        return helper.make_graph(inner_nodes, "branch", [], [helper.make_tensor_value_info("Y", TensorProto.DOUBLE, [1])],
                                 initializer=list(inner_inits))

    if where == "initializer":
        inits.append(tensor())
        nodes.append(helper.make_node("Add", ["X", "hidden"], ["Y"]))
    elif where == "sparse_initializer":
        values = tensor("hidden")
        indices = numpy_helper.from_array(np.array([0], dtype=np.int64), "hidden_idx")
        sparse.append(helper.make_sparse_tensor(values, indices, [1]))
        nodes.append(helper.make_node("Add", ["X", "hidden"], ["Y"]))
    elif where == "sparse_indices":
        values = numpy_helper.from_array(np.array([1.0]), "hidden")
        idx = _external("hidden_idx", TensorProto.INT64, [1]) if external else numpy_helper.from_array(
            np.array([0], dtype=np.int64), "hidden_idx")
        sparse.append(helper.make_sparse_tensor(values, idx, [1]))
        nodes.append(helper.make_node("Add", ["X", "hidden"], ["Y"]))
    elif where == "constant_attribute":
        nodes += [helper.make_node("Constant", [], ["c"], value=tensor()), helper.make_node("Add", ["X", "c"], ["Y"])]
    elif where == "tensors_attribute":
        node = helper.make_node("Identity", ["X"], ["Y"])
        attr = helper.make_attribute("extra", [tensor()])  # a TENSORS attribute
        node.attribute.append(attr)
        nodes.append(node)
    elif where == "sparse_attribute":
        values = tensor("hidden")
        indices = numpy_helper.from_array(np.array([0], dtype=np.int64), "i")
        nodes += [helper.make_node("Constant", [], ["c"], sparse_value=helper.make_sparse_tensor(values, indices, [1])),
                  helper.make_node("Add", ["X", "c"], ["Y"])]
    elif where == "if_branch_initializer":
        then = branch([helper.make_node("Identity", ["hidden"], ["Y"])], [tensor()])
        other = branch([helper.make_node("Identity", ["X"], ["Y"])])
        nodes.append(helper.make_node("If", ["cond"], ["Y"], then_branch=then, else_branch=other))
    elif where == "nested_subgraph_constant":
        deep = branch([helper.make_node("Constant", [], ["Y"], value=tensor())])
        plain = branch([helper.make_node("Identity", ["X"], ["Y"])])
        middle = branch([helper.make_node("If", ["cond"], ["Y"], then_branch=deep, else_branch=plain)])
        nodes.append(helper.make_node("If", ["cond"], ["Y"], then_branch=middle, else_branch=plain))
    elif where == "loop_body":
        body = helper.make_graph(
            [helper.make_node("Constant", [], ["v"], value=tensor()), helper.make_node("Identity", ["c_in"], ["c_out"]),
             helper.make_node("Identity", ["v"], ["y_out"])],
            "body",
            [helper.make_tensor_value_info("i", TensorProto.INT64, []), helper.make_tensor_value_info("c_in", TensorProto.BOOL, []),
             helper.make_tensor_value_info("y_in", TensorProto.DOUBLE, [1])],
            [helper.make_tensor_value_info("c_out", TensorProto.BOOL, []),
             helper.make_tensor_value_info("y_out", TensorProto.DOUBLE, [1])],
        )
        nodes.append(helper.make_node("Loop", ["", "cond", "X"], ["Y"], body=body))
    elif where == "graphs_attribute":
        node = helper.make_node("Identity", ["X"], ["Y"])
        node.attribute.append(helper.make_attribute("branches", [branch([helper.make_node("Constant", [], ["Y"], value=tensor())])]))
        nodes.append(node)
    elif where in ("function_node", "function_default"):
        if where == "function_node":
            fnodes = [helper.make_node("Constant", [], ["c"], value=tensor()), helper.make_node("Add", ["x", "c"], ["y"])]
            fn = helper.make_function("custom", "AddHidden", ["x"], ["y"], fnodes, [helper.make_opsetid("", 17)])
        else:
            fn = helper.make_function("custom", "AddHidden", ["x"], ["y"], [helper.make_node("Identity", ["x"], ["y"])],
                                      [helper.make_opsetid("", 17)])
            fn.attribute_proto.append(helper.make_attribute("w", tensor()))
        functions.append(fn)
        nodes.append(helper.make_node("AddHidden", ["X"], ["Y"], domain="custom"))
    elif where == "training_info":
        nodes.append(helper.make_node("Identity", ["X"], ["Y"]))
        init_graph = branch([helper.make_node("Constant", [], ["Y"], value=tensor())])
        training.append(init_graph)
    else:  # pragma: no cover
        raise AssertionError(where)
    graph = helper.make_graph(nodes, "main", [X, cond], [Y], initializer=inits, sparse_initializer=sparse)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("custom", 1)],
                              functions=functions)
    for g in training:
        info = model.training_info.add()
        info.initialization.CopyFrom(g)
    return model.SerializeToString()


PLACES = ["initializer", "sparse_initializer", "sparse_indices", "constant_attribute", "tensors_attribute",
          "sparse_attribute", "if_branch_initializer", "nested_subgraph_constant", "loop_body", "graphs_attribute",
          "function_node", "function_default", "training_info"]


@pytest.mark.parametrize("where", PLACES)
def test_external_tensor_is_found_wherever_it_hides(where, tmp_path):
    from fulcrum.artifact import check_onnx_graph

    check_onnx_graph(_model_with(where, external=False), "model.onnx")  # the same model inline is fine
    write_package(tmp_path / "inline", {}, {"model.onnx": _model_with(where, external=False)})
    with pytest.raises(IntegrityError, match=r"'model\.onnx'.*external data.*'secret\.bin'"):
        check_onnx_graph(_model_with(where), "model.onnx")
    with pytest.raises(IntegrityError, match="external data"):
        write_package(tmp_path / "p", {}, {"model.onnx": _model_with(where)})
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize(("flag", "entries"), [(True, False), (False, True)])
def test_either_half_of_an_external_reference_is_refused(flag, entries):
    """``data_location=EXTERNAL`` without a location, or location entries without the flag: refused both."""
    import onnx
    from onnx import TensorProto

    model = onnx.load_model_from_string(_model_with("initializer", external=False))
    model.graph.initializer[0].CopyFrom(_external("hidden", TensorProto.DOUBLE, [1], flag=flag, entries=entries))
    from fulcrum.artifact import check_onnx_graph

    with pytest.raises(IntegrityError, match="external data"):
        check_onnx_graph(model.SerializeToString(), "model.onnx")


# --------------------------------------------------------------------------- bounded reads


def test_a_symlinked_manifest_is_refused(linear_package, tmp_path):
    for name in ("manifest.json", "MANIFEST.sha256"):
        pkg = tmp_path / f"linked-{name}"
        shutil.copytree(linear_package, pkg)
        elsewhere = tmp_path / f"elsewhere-{name}"
        shutil.copy(pkg / name, elsewhere)  # a byte-identical copy: only the link itself is wrong
        (pkg / name).unlink()
        (pkg / name).symlink_to(elsewhere)
        with pytest.raises(IntegrityError, match=f"{name}.*not a regular file"):
            ModelPackage.load(pkg)
        if name == "manifest.json":
            with pytest.raises(IntegrityError, match="not a regular file"):
                ModelPackage.load(pkg, verify=False)


@pytest.mark.timeout(60)
def test_a_manifest_that_is_a_fifo_is_refused_without_blocking(linear_package):
    (linear_package / "manifest.json").unlink()
    os.mkfifo(linear_package / "manifest.json")
    with pytest.raises(IntegrityError, match="manifest.json.*not a regular file"):
        ModelPackage.load(linear_package)


@pytest.mark.parametrize("name", ["manifest.json", "MANIFEST.sha256"])
def test_a_manifest_linked_to_dev_zero_is_refused(linear_package, name):
    """Run in a child with a 1 GiB address-space limit: reading /dev/zero without end fails there
    with MemoryError instead of taking the machine's memory."""
    import subprocess
    import sys
    import textwrap

    (linear_package / name).unlink()
    (linear_package / name).symlink_to("/dev/zero")
    script = textwrap.dedent(
        """
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        from fulcrum.artifact import ModelPackage
        from fulcrum.errors import IntegrityError
        try:
            ModelPackage.load(sys.argv[1])
        except IntegrityError as exc:
            print("refused:", exc)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script, str(linear_package)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("refused:") and "not a regular file" in proc.stdout


def test_every_file_is_size_capped_before_reading(monkeypatch, tmp_path):
    pkg_dir = write_package(tmp_path / "p", {"note": "small manifest"}, {"big.bin": b"\x01" * 5000, "small.json": b"{}"})
    monkeypatch.setenv("FULCRUM_MAX_FILE_MB", "0.002")  # 2,000 bytes
    with pytest.raises(IntegrityError, match=r"'big\.bin' is 5000 bytes, over the 2000-byte limit.*FULCRUM_MAX_FILE_MB"):
        ModelPackage.load(pkg_dir)
    unverified = ModelPackage.load(pkg_dir, verify=False)
    assert unverified.read_bytes("small.json") == b"{}"
    with pytest.raises(IntegrityError, match=r"'big\.bin'.*FULCRUM_MAX_FILE_MB"):
        unverified.read_bytes("big.bin")
    with pytest.raises(ArtifactError, match=r"'w\.bin'.*over the 2000-byte limit.*FULCRUM_MAX_FILE_MB"):
        write_package(tmp_path / "too-big", {}, {"w.bin": b"\x00" * 2001})
    assert not (tmp_path / "too-big").exists()

    monkeypatch.setenv("FULCRUM_MAX_FILE_MB", "0.0002")  # 200 bytes: smaller than the manifest itself
    with pytest.raises(IntegrityError, match=r"'manifest\.json' is \d+ bytes, over the 200-byte limit"):
        ModelPackage.load(pkg_dir, verify=False)
    monkeypatch.setenv("FULCRUM_MAX_FILE_MB", "lots")
    with pytest.raises(ConfigError, match="FULCRUM_MAX_FILE_MB"):
        ModelPackage.load(pkg_dir)
    monkeypatch.delenv("FULCRUM_MAX_FILE_MB")
    assert ModelPackage.load(pkg_dir).read_bytes("big.bin") == b"\x01" * 5000
