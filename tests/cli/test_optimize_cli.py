"""`fulcrum optimize` driven as a user drives it: table, JSON, plot, alias, and clear failures that write nothing."""

from __future__ import annotations

import json

import pytest

import fulcrum
from fulcrum.artifact import Registry
from fulcrum.cli import main


@pytest.fixture(scope="module")
def reg_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("optimize-cli") / "registry"
    fulcrum.train("builtin:iris", name="iris", model="mlp", epochs=20, hidden_sizes=(64, 32), registry=Registry(root),
                  progress=False, measure_inference=False)
    return root


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    return rc, capsys.readouterr()


def manifest(reg_dir, ref="iris@1"):
    return json.loads((Registry(reg_dir).path(ref) / "manifest.json").read_text())


def test_bad_inputs_fail_clearly_and_write_nothing(reg_dir, capsys):
    before = (Registry(reg_dir).path("iris@1") / "manifest.json").read_bytes()
    cases = [
        (["--constraints", "p95<=1"], ["Unknown constraint key 'p95'", "Known keys", "KEY OP VALUE"]),
        (["--constraints", "fast please"], ["Cannot parse constraint", "Known keys"]),
        (["--variants", "int4"], ["Unknown variant 'int4'", "Existing variants", "int8-dynamic"]),
        (["--alias", "prod"], ["--alias needs --constraints"]),
        (["--plot", "out.svg"], ["ending in .png"]),
    ]
    for extra, pieces in cases:
        rc, out = run(capsys, "optimize", "iris@1", "--registry", reg_dir, *extra)
        assert rc == 1, extra
        for piece in pieces:
            assert piece in out.err, (extra, out.err)
        assert out.out == ""
    assert (Registry(reg_dir).path("iris@1") / "manifest.json").read_bytes() == before
    assert Registry(reg_dir).list()[-1]["version"] == 1


def test_package_without_onnx(reg_dir, capsys):
    reg = Registry(reg_dir)
    src = reg.load("iris@1")
    m = {k: v for k, v in src.manifest.items() if k not in ("files", "format_version", "onnx")}
    old = reg.register("legacy", m, {f: src.read_bytes(f) for f in src.files if f != "model.onnx"})
    rc, out = run(capsys, "optimize", old.ref, "--registry", reg_dir)
    assert rc == 1 and "has no model.onnx" in out.err and "re-train" in out.err


def test_optimize_select_alias_plot(reg_dir, tmp_path, capsys):
    plot = tmp_path / "pareto.png"
    rc, out = run(capsys, "optimize", "iris@1", "--registry", reg_dir, "--variants", "onnx-fp32,int8-dynamic",
                  "--constraints", "metric_drop<=0.1", "--objective", "size_mb", "--alias", "small", "--plot", plot)
    assert rc == 0, out.err
    lines = out.out.splitlines()
    assert lines[1].split()[:4] == ["variant", "accuracy", "Δ", "vs"]
    assert any(line.startswith("base") for line in lines) and any("int8-dynamic" in line for line in lines)
    assert "selected: int8-dynamic" in out.out  # the smallest that keeps the metric
    assert "iris@small -> iris@2" in out.out
    assert plot.read_bytes()[:4] == b"\x89PNG"
    m = manifest(reg_dir)
    assert set(m["variants"]) == {"base", "onnx-fp32", "int8-dynamic"}
    assert m["selected_variant"]["id"] == "int8-dynamic" and m["selected_variant"]["objective"] == "size_mb"
    new = manifest(reg_dir, "iris@small")
    assert new["lineage"]["parent"] == "iris@1" and new["lineage"]["variant"] == "int8-dynamic"
    assert fulcrum.load("iris@small", registry=str(reg_dir)).predict_one(
        {"sepal length (cm)": 5.1, "sepal width (cm)": 3.5, "petal length (cm)": 1.4, "petal width (cm)": 0.2}
    )["prediction"] == "setosa"


def test_no_variant_meets_constraints_exits_non_zero(reg_dir, capsys):
    before = manifest(reg_dir).get("selected_variant")
    rc, out = run(capsys, "optimize", "iris@1", "--registry", reg_dir, "--variants", "onnx-fp32",
                  "--constraints", "p95_ms<=0.000001, size_mb<=0.00001", "--json")
    assert rc == 1
    assert "No variant meets p95_ms<=1e-06, size_mb<=1e-05" in out.err and "over by" in out.err
    payload = json.loads(out.out)
    assert "selected_variant" not in payload and payload["failures"]
    assert manifest(reg_dir).get("selected_variant") == before


def test_constraints_without_a_quality_bound_get_the_default_one(reg_dir, capsys):
    rc, out = run(capsys, "optimize", "iris@1", "--registry", reg_dir, "--variants", "onnx-fp32",
                  "--constraints", "p95_ms<=1000", "--json")
    assert rc == 0, out.err
    payload = json.loads(out.out)
    assert payload["selected_variant"]["constraints"] == ["p95_ms<=1000", "metric_drop<=0.01"]
    assert payload["quality_constraint"] == "metric_drop<=0.01 (default)"
    rc, out = run(capsys, "optimize", "iris@1", "--registry", reg_dir, "--variants", "onnx-fp32",
                  "--constraints", "p95_ms<=1000")
    assert rc == 0 and "quality constraint: metric_drop<=0.01 (the default" in out.out
    # the choice says why: the best by point value, or a simpler one within noise of it
    line = next(x for x in out.out.splitlines() if x.startswith("selected: "))
    assert "beyond noise" in line or "within noise" in line
    assert "faster/slower only when intervals separate" in out.out and "measured: optimize run" in out.out
