"""Variants built from real packages (an MLP, a LightGBM and a linear model on iris), measured and stored."""

from __future__ import annotations

import json

import numpy as np
import pytest

import fulcrum
from fulcrum.artifact import Registry
from fulcrum.errors import ConfigError, DataError, FormatError, NotFoundError
from fulcrum.optimize import BenchSettings, OptimizeOptions, optimize_package, promote_variant

FAST = OptimizeOptions(sparsities=(0.5,), fine_tune_epochs=2, distill_epochs=4, tree_fractions=(0.5,),
                       calibration_rows=64,
                       bench=BenchSettings(warmup=2, rounds=3, round_s=0.0, min_calls_b1=10, min_calls_big=2))
COMMON = {"progress": False, "measure_inference": False}


@pytest.fixture(scope="module")
def reg(tmp_path_factory):
    return Registry(tmp_path_factory.mktemp("optimize") / "registry")


@pytest.fixture(scope="module")
def mlp(reg):
    pkg = fulcrum.train("builtin:iris", name="iris-mlp", model="mlp", epochs=30, hidden_sizes=(64, 32),
                        registry=reg, **COMMON)
    report = optimize_package(pkg.ref, registry=reg, options=FAST)
    return pkg.ref, report


@pytest.fixture(scope="module")
def gbm(reg):
    pkg = fulcrum.train("builtin:iris", name="iris-gbm", model="lightgbm", n_estimators=40, registry=reg, **COMMON)
    return pkg.ref, optimize_package(pkg.ref, registry=reg, options=FAST)


def _test_rows(reg, ref):
    from fulcrum.optimize._variants import load_context

    return load_context(reg.load(ref)).test


def test_mlp_variants_are_built_measured_and_stored(reg, mlp):
    ref, report = mlp
    expected = {"base", "onnx-fp32", "int8-dynamic", "int8-static", "pruned-50", "distilled"}
    assert set(report.variants) == expected
    assert report.built == sorted(expected - {"base"})
    assert set(report.skipped) == {"trees", "shallow"}
    pkg = reg.load(ref)  # verifies every checksum, variant files included
    stored = pkg.manifest["variants"]
    assert stored == report.variants
    assert stored["base"]["file"] == "model.onnx" and stored["base"]["kind"] == "base"
    for vid, e in stored.items():
        assert pkg.has_file(e["file"])
        assert e["size_bytes"] == len(pkg.read_bytes(e["file"]))
        assert set(e["latency_ms"]) == {"b1", "b256"} and set(e["latency_ms"]["b1"]) == {"p50", "p95", "p99"}
        assert e["throughput_rps"] > 0
        assert isinstance(e["faster_than_parent"], bool) and e["verdict"]
        assert e["metric"]["name"] == "accuracy" and e["metric"]["split"] == "test"
        assert "energy_per_1k_kwh" in e
    assert stored["pruned-50"]["params"]["hidden_sizes"] == [32, 16]
    assert stored["distilled"]["params"]["hidden_sizes"] == [16, 8]
    assert pkg.has_file("variants/pruned-50/weights.safetensors")
    assert pkg.manifest["optimize"]["machine"]["onnxruntime"]


def _own_metrics(reg, ref, vid):
    """Metrics of variants/<vid>/model.onnx itself (the parent's model.onnx for "base") on the test split."""
    from fulcrum.optimize._variants import load_context

    ctx = load_context(reg.load(ref))
    out = fulcrum.load(ref, registry=reg, variant=None if vid == "base" else vid).predict_output(ctx.test)
    return ctx.task.evaluate(ctx.package.manifest, ctx.truth, {"probabilities": out}), out


def test_each_variant_is_scored_on_its_own_graph(reg, mlp, gbm):
    """The recorded metrics of a variant are those of its own file, and transformed graphs really differ
    from the parent (a build that scored every variant on the parent graph fails here)."""
    for ref, report in (mlp, gbm):
        _, parent_out = _own_metrics(reg, ref, "base")
        for vid, e in report.variants.items():
            own, out = _own_metrics(reg, ref, vid)
            for name in ("accuracy", "log_loss"):  # log_loss: continuous, so two graphs almost never tie
                assert e["metrics"][name] == pytest.approx(own[name], abs=1e-6), (ref, vid, name)
            assert e["metric"]["value"] == pytest.approx(own["accuracy"], abs=1e-6)
            diff = float(np.abs(out.astype(np.float64) - parent_out.astype(np.float64)).max())
            assert e["max_abs_diff_vs_parent"] == pytest.approx(diff, abs=1e-5), (ref, vid)
            if e["kind"] in ("int8-dynamic", "int8-static", "pruned", "distilled", "trees", "shallow"):
                assert diff > 1e-4, f"{ref} {vid}: outputs identical to the parent's"
                assert e["metrics"]["log_loss"] != pytest.approx(report.variants["base"]["metrics"]["log_loss"],
                                                                 abs=1e-9), (ref, vid)


def test_metric_drop_is_parent_minus_variant(mlp):
    _, report = mlp
    base = report.variants["base"]["metric"]["value"]
    for vid, e in report.variants.items():
        assert e["metric_drop"] == pytest.approx(base - e["metric"]["value"], abs=1e-6), vid
        assert e["worse_than_parent"] == (e["metric_drop"] > 1e-9)


def test_fp32_variant_matches_parent_and_int8_is_smaller(reg, mlp):
    ref, report = mlp
    rows = _test_rows(reg, ref)
    parent = fulcrum.load(ref, registry=reg).predict_proba(rows)
    fp32 = fulcrum.load(ref, registry=reg, variant="onnx-fp32").predict_proba(rows)
    np.testing.assert_allclose(fp32, parent, atol=1e-5)
    int8 = fulcrum.load(ref, registry=reg, variant="int8-dynamic").predict_proba(rows)
    assert np.abs(int8 - parent).max() < 0.1  # int8 rounding, not a different model
    v = report.variants
    assert v["int8-dynamic"]["size_bytes"] < v["base"]["size_bytes"]
    assert v["int8-static"]["size_bytes"] < v["base"]["size_bytes"]
    assert v["onnx-fp32"]["max_abs_diff_vs_parent"] < 1e-5


def test_load_variant_predicts_and_unknown_variant_lists_existing(reg, mlp):
    ref, _ = mlp
    rows = _test_rows(reg, ref).drop(columns=["target"])
    pred = fulcrum.load(ref, registry=reg, variant="pruned-50").predict(rows)
    assert len(pred) == len(rows) and set(pred["prediction"]) <= {"setosa", "versicolor", "virginica"}
    one = fulcrum.load(ref, registry=reg, variant="distilled").predict_one(rows.iloc[0].to_dict())
    assert one["prediction"] in {"setosa", "versicolor", "virginica"}
    with pytest.raises(NotFoundError) as err:
        fulcrum.load(ref, registry=reg, variant="int4")
    assert "int8-dynamic" in str(err.value) and "pruned-50" in str(err.value)


def test_rerun_keeps_existing_variants(reg, mlp):
    ref, report = mlp
    again = optimize_package(ref, registry=reg, options=FAST)
    assert again.built == [] and again.measured is False
    assert again.variants == report.variants
    with pytest.raises(NotFoundError, match="Existing variants: .*int8-dynamic.*kinds that can be built"):
        optimize_package(ref, registry=reg, variants=["int4"], options=FAST)


def test_promote_variant_registers_a_version_the_alias_serves(reg, mlp):
    ref, _ = mlp
    sel = {"id": "pruned-50", "constraints": ["metric_drop<=0.05"]}
    new = promote_variant(reg, ref, "pruned-50", "fast", sel)
    assert new.ref != ref and new.manifest["lineage"]["parent"] == ref
    assert new.manifest["lineage"]["variant"] == "pruned-50"
    assert new.manifest["selected_variant"]["source"] == ref
    old = reg.load(ref)
    assert new.read_bytes("model.onnx") == old.read_bytes("variants/pruned-50/model.onnx")
    assert reg.resolve("iris-mlp@fast") == (new.name, new.version)
    rows = _test_rows(reg, ref)
    served = fulcrum.load("iris-mlp@fast", registry=reg).predict_proba(rows)
    variant = fulcrum.load(ref, registry=reg, variant="pruned-50").predict_proba(rows)
    np.testing.assert_allclose(served, variant, atol=1e-6)
    native = fulcrum.load("iris-mlp@fast", registry=reg, engine="native").predict_proba(rows)  # the pruned weights
    np.testing.assert_allclose(native, variant, atol=1e-4)
    assert promote_variant(reg, ref, "pruned-50", "fast", sel).ref == new.ref  # same choice: same version


def test_lightgbm_gets_tree_variants_and_no_int8(reg, gbm):
    ref, report = gbm
    assert set(report.variants) == {"base", "onnx-fp32", "trees-50", "shallow"}
    assert {"int8-dynamic", "int8-static", "pruned", "distilled"} <= set(report.skipped)
    assert "no int8 kernels" in report.skipped["int8-dynamic"]
    t = report.variants["trees-50"]
    assert t["params"]["rounds"] == max(1, round(t["params"]["parent_rounds"] * 0.5))
    assert report.variants["shallow"]["params"]["num_leaves"] == 7
    rows = _test_rows(reg, ref)
    p = fulcrum.load(ref, registry=reg, variant="onnx-fp32").predict_proba(rows)
    np.testing.assert_allclose(p, fulcrum.load(ref, registry=reg).predict_proba(rows), atol=1e-5)
    with pytest.raises(ConfigError, match="does not apply to a lightgbm model"):
        optimize_package(ref, registry=reg, variants=["int8-dynamic"], options=FAST)


def test_linear_gets_fp32_and_int8_only(reg):
    pkg = fulcrum.train("builtin:wine", name="wine-lin", model="linear", registry=reg, **COMMON)
    report = optimize_package(pkg.ref, registry=reg, options=FAST)
    assert set(report.variants) == {"base", "onnx-fp32", "int8-dynamic", "int8-static"}
    assert "nothing to prune or distil" in report.skipped["pruned"]
    assert report.variants["int8-dynamic"]["metric"]["value"] is not None


def test_package_without_onnx_is_refused_and_untouched(reg, mlp):
    ref, _ = mlp
    src = reg.load(ref)
    manifest = {k: v for k, v in src.manifest.items() if k not in ("files", "format_version", "variants", "onnx", "optimize")}
    files = {f: src.read_bytes(f) for f in src.files if f != "model.onnx" and not f.startswith("variants/")}
    old = reg.register("legacy", manifest, files)
    before = (old.path / "manifest.json").read_bytes()
    with pytest.raises(FormatError, match="has no model.onnx"):
        optimize_package(old.ref, registry=reg, options=FAST)
    assert (old.path / "manifest.json").read_bytes() == before


def test_changed_training_data_is_refused(reg, gbm, tmp_path):
    ref, _ = gbm
    df = fulcrum.read_table("builtin:iris")
    df.loc[0, "sepal length (cm)"] += 1.0
    with pytest.raises(DataError, match="differs from the data"):
        optimize_package(ref, registry=reg, data=df, variants=["shallow"], remeasure=True, options=FAST)
    assert "shallow" in json.loads((reg.path(ref) / "manifest.json").read_text())["variants"]
