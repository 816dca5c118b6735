"""Every kind of bad input: a clear message naming the problem and the fix, and nothing half-written."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import fulcrum
from fulcrum.cli import main
from fulcrum.errors import DataError, FulcrumError, IntegrityError, InvalidNameError, NotFoundError, SchemaError


def cli(capsys, *argv):
    rc = main([str(a) for a in argv])
    return rc, capsys.readouterr()


def registry_state(home):
    reg = home / "registry"
    if not reg.exists():
        return set()
    return {p.relative_to(reg) for p in reg.rglob("*") if "index.sqlite" not in p.name}


@pytest.fixture
def table(tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({
        "a": rng.normal(size=60),
        "color": rng.choice(["red", "green", "blue"], 60),
        "y": rng.choice(["yes", "no"], 60),
    })
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.write_text(""), "empty"),
        (lambda p: p.write_bytes(b"\x00\xff\xfe garbage \x00"), "t"),
        (lambda p: p.write_text("a,y\n"), "row"),
        (lambda p: p.write_text("a,y\n1,x\n2,x\n3,x\n4,x\n5,x\n6,x\n"), "two classes"),
        (lambda p: p.write_text("a,y\n1,x\n2,z\n3,x\n"), "at least 5 rows"),
        (lambda p: p.write_text("a,b,y\n,1,x\n,2,z\n,3,x\n,4,z\n,5,x\n,6,z\n"), None),  # all-missing column: dropped
        (lambda p: p.write_text("a,y\ninf,x\n2,z\n3,x\n4,z\n5,x\n6,z\n"), "inf"),
    ],
)
def test_bad_training_data(make, message, tmp_path, capsys, fulcrum_home):
    path = tmp_path / "bad" / "t.csv"
    path.parent.mkdir()
    make(path)
    before = registry_state(fulcrum_home)
    rc, out = cli(capsys, "train", path, "--target", "y", "--model", "linear", "--no-progress")
    if message is None:  # the all-missing column is dropped with a notice, training goes on
        assert rc == 0 and "'a' dropped" in out.err
        return
    assert rc == 1, out
    assert out.err.startswith("error:") and message in out.err
    assert registry_state(fulcrum_home) == before


def test_unknown_target_suggests(table, capsys):
    rc, out = cli(capsys, "train", table, "--target", "Y")
    assert rc == 1 and "'Y'" in out.err and "'y'" in out.err


def test_predict_time_errors(table, tmp_path, capsys):
    assert cli(capsys, "train", table, "--target", "y", "--model", "linear", "--no-progress")[0] == 0
    out_path = tmp_path / "o.csv"
    # missing column
    pd.DataFrame({"a": [1.0]}).to_csv(tmp_path / "m.csv", index=False)
    rc, out = cli(capsys, "predict", "t", tmp_path / "m.csv", "-o", out_path)
    assert rc == 1 and "color" in out.err and not out_path.exists()
    # non-numeric value in a numeric column
    pd.DataFrame({"a": ["abc"], "color": ["red"]}).to_csv(tmp_path / "n.csv", index=False)
    rc, out = cli(capsys, "predict", "t", tmp_path / "n.csv", "-o", out_path)
    assert rc == 1 and "'a'" in out.err and "abc" in out.err and not out_path.exists()
    # NaN is a missing value (imputed); inf is refused
    pd.DataFrame({"a": [np.nan], "color": ["red"]}).to_csv(tmp_path / "nan.csv", index=False)
    assert cli(capsys, "predict", "t", tmp_path / "nan.csv", "-o", out_path, "--no-progress")[0] == 0
    out_path.unlink()
    pd.DataFrame({"a": [np.inf], "color": ["red"]}).to_csv(tmp_path / "inf.csv", index=False)
    rc, out = cli(capsys, "predict", "t", tmp_path / "inf.csv", "-o", out_path)
    assert rc == 1 and "inf" in out.err and not out_path.exists()
    # unknown category: a notice by default, an error with --strict
    pd.DataFrame({"a": [0.1], "color": ["purple"]}).to_csv(tmp_path / "u.csv", index=False)
    rc, out = cli(capsys, "predict", "t", tmp_path / "u.csv", "-o", out_path, "--no-progress")
    assert rc == 0 and "purple" in out.err
    out_path.unlink()
    rc, out = cli(capsys, "predict", "t", tmp_path / "u.csv", "-o", out_path, "--strict")
    assert rc == 1 and "purple" in out.err and not out_path.exists()


def test_references_and_names(table, capsys):
    assert cli(capsys, "train", table, "--target", "y", "--model", "linear", "--no-progress")[0] == 0
    with pytest.raises(NotFoundError, match="ghost"):
        fulcrum.load("ghost")
    with pytest.raises(NotFoundError, match="versions"):
        fulcrum.load("t@9")
    with pytest.raises(NotFoundError, match="production"):
        fulcrum.load("t@production")
    with pytest.raises(InvalidNameError):
        fulcrum.train(str(table), target="y", name="../escape")
    rc, out = cli(capsys, "train", table, "--target", "y", "--name", "a/b")
    assert rc == 1 and "error:" in out.err


def test_tampered_package_is_refused(table, capsys, fulcrum_home):
    assert cli(capsys, "train", table, "--target", "y", "--model", "linear", "--no-progress")[0] == 0
    pkg_dir = fulcrum_home / "registry" / "t" / "1"
    (pkg_dir / "preprocess.json").write_text(json.dumps({"tampered": True}))
    with pytest.raises(IntegrityError, match="preprocess.json"):
        fulcrum.load("t")
    rc, out = cli(capsys, "predict", "t", table, "-o", table.parent / "x.csv")
    assert rc == 1 and "preprocess.json" in out.err
    rc, out = cli(capsys, "promote", "t@1", "--alias", "production")
    assert rc == 1 and "preprocess.json" in out.err and "Traceback" not in out.err
    assert fulcrum.Registry().aliases("t") == {}


def test_python_errors_are_typed(table):
    with pytest.raises(DataError):
        fulcrum.train(str(table), target="nope")
    p = fulcrum.train(str(table), target="y", model="linear", progress=False)
    with pytest.raises(SchemaError, match="color"):
        fulcrum.load(p.ref).predict({"a": 1.0})
    assert issubclass(SchemaError, FulcrumError)


def test_a_name_means_the_registry_even_when_a_directory_has_that_name(table, tmp_path, capsys, monkeypatch):
    """`fulcrum predict t` is the registry's model t, never ./t/; only a clear path (a '/' or a
    leading '.') loads a package directory."""
    import shutil

    registered = fulcrum.train(str(table), target="y", name="t", model="linear", progress=False, measure_inference=False)
    other = fulcrum.train(str(table), target="y", name="other", model="linear", progress=False, measure_inference=False)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    shutil.copytree(other.path, cwd / "t")      # ./t/ holds a different, valid package
    shutil.copytree(other.path, cwd / "ghost")  # and ./ghost/ one for a name the registry lacks

    assert fulcrum.load("t").package.ref == registered.ref == "t@1"
    assert fulcrum.load("t@1").package.ref == "t@1"
    assert fulcrum.load("./t").package.ref == "other@1"
    assert fulcrum.load(str(cwd / "t")).package.ref == "other@1"
    with pytest.raises(NotFoundError, match=r"No model named 'ghost'.*\./ghost"):
        fulcrum.load("ghost")
    with pytest.raises(NotFoundError, match="No model package at"):
        fulcrum.load("./nowhere")

    pd.DataFrame({"a": [0.1], "color": ["red"]}).to_csv(cwd / "rows.csv", index=False)
    rc, out = cli(capsys, "predict", "ghost", cwd / "rows.csv", "-o", cwd / "o.csv")
    assert rc == 1 and "No model named 'ghost'" in out.err and not (cwd / "o.csv").exists()
    rc, out = cli(capsys, "predict", "./ghost", cwd / "rows.csv", "-o", cwd / "o.csv", "--no-progress")
    assert rc == 0, out.err

    from fulcrum.optimize._variants import _resolve

    assert _resolve("t", None)[0].ref == "t@1"
    assert _resolve("./t", None)[0].ref == "other@1"


@pytest.mark.parametrize("selector", ["\u0661", "\uff10\uff11"])
def test_non_ascii_digits_never_select_a_version(table, capsys, selector):
    assert cli(capsys, "train", table, "--target", "y", "--model", "linear", "--no-progress")[0] == 0
    with pytest.raises(InvalidNameError):
        fulcrum.load(f"t@{selector}")
    rc, out = cli(capsys, "predict", f"t@{selector}", table, "-o", table.parent / "x.csv")
    assert rc == 1 and out.err.startswith("error:") and not (table.parent / "x.csv").exists()


def _replace_and_rehash(pkg_dir, rel, data):
    """Overwrite a package file and re-record the checksums, as someone with write access could: the
    package verifies, and the file itself is what is wrong."""
    import hashlib

    (pkg_dir / rel).write_bytes(data)
    manifest = json.loads((pkg_dir / "manifest.json").read_text())
    manifest["files"][rel] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    raw = (json.dumps(manifest, sort_keys=True, indent=2) + "\n").encode()
    (pkg_dir / "manifest.json").write_bytes(raw)
    (pkg_dir / "MANIFEST.sha256").write_text(f"{hashlib.sha256(raw).hexdigest()}  manifest.json\n")


def _unknown_op(model_bytes):
    import onnx

    model = onnx.load_model_from_string(model_bytes)
    model.graph.node[-1].op_type = "NoSuchOperator"
    return model.SerializeToString()


def _one_error_line(rc, out, *needles):
    assert rc == 1, out
    assert out.err.startswith("error:") and "Traceback" not in out.err, out.err
    assert len(out.err.strip().splitlines()) == 1, out.err
    for needle in needles:
        assert needle in out.err, out.err


@pytest.mark.parametrize("damage", ["not-protobuf", "unknown-operator"])
def test_a_corrupt_model_onnx_is_one_error_line(table, tmp_path, capsys, fulcrum_home, damage):
    assert cli(capsys, "train", table, "--target", "y", "--model", "linear", "--no-progress")[0] == 0
    pkg_dir = fulcrum_home / "registry" / "t" / "1"
    good = (pkg_dir / "model.onnx").read_bytes()
    _replace_and_rehash(pkg_dir, "model.onnx", b"\x08\x07 not an onnx graph \xff\xfe" if damage == "not-protobuf"
                        else _unknown_op(good))
    out_path = tmp_path / "o.csv"
    _one_error_line(*cli(capsys, "predict", "t", table, "-o", out_path), "model.onnx")
    assert not out_path.exists()
    _one_error_line(*cli(capsys, "evaluate", "t", table), "model.onnx")
    with pytest.raises(FulcrumError, match="model.onnx"):
        fulcrum.load("t")


def _other_safetensors():
    from safetensors.numpy import save

    return save({"something": np.zeros(3, dtype=np.float32)})


@pytest.mark.parametrize(
    ("model", "rel", "damage"),
    [
        ("linear", "weights.safetensors", "garbage"),
        ("linear", "weights.safetensors", "other-tensors"),
        ("mlp", "weights.safetensors", "garbage"),
        ("mlp", "weights.safetensors", "other-tensors"),
        ("lightgbm", "model.lgb.txt", "garbage"),
    ],
)
def test_corrupt_weights_in_optimize_are_one_error_line(table, capsys, fulcrum_home, model, rel, damage):
    assert cli(capsys, "train", table, "--target", "y", "--model", model, "--epochs", "2", "--no-progress")[0] == 0
    pkg_dir = fulcrum_home / "registry" / "t" / "1"
    data = b"\x10\x00\x00\x00\x00\x00\x00\x00{not safetensors}\xff" if damage == "garbage" else _other_safetensors()
    _replace_and_rehash(pkg_dir, rel, data)
    _one_error_line(*cli(capsys, "optimize", "t", "--variants", "onnx-fp32"), rel)
    with pytest.raises(FulcrumError, match=rel.replace(".", r"\.")):
        fulcrum.load("t", engine="native")
