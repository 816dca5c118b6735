"""Predictor: ONNX Runtime by default, native as the reference; same answers, same errors."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest

import fulcrum
from fulcrum.artifact import ModelPackage, add_files, write_package
from fulcrum.errors import ConfigError, DataError, FormatError, NotFoundError, SchemaError
from fulcrum.runtime import OnnxEngine, Predictor, predict_file
from fulcrum.runtime._engines import physical_cores

ATOL = 1e-5


def mixed(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    a[::11] = np.nan
    df = pd.DataFrame({
        "a": a,
        "color": rng.choice(["red", "green", "blue"], n),
        "ok": rng.choice([True, False], n),
        "day": pd.to_datetime("2020-01-01") + pd.to_timedelta(rng.integers(0, 1500, n), unit="D"),
        "note": [" ".join(rng.choice(["good", "bad", "fine", "meh", "great"], 3)) for _ in range(n)],
    })
    df["y"] = np.where(np.nan_to_num(a) + (df["color"] == "red") + df["note"].str.contains("good") > 0.8, "yes", "no")
    return df


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    return fulcrum.Registry(tmp_path_factory.mktemp("registry"))


@pytest.fixture(scope="module")
def pkg(registry):
    return fulcrum.train(mixed(200, 0), target="y", model="mlp", name="mixed", registry=registry, progress=False, epochs=10)


@pytest.fixture(scope="module")
def onnx_pred(pkg):
    return Predictor(pkg)


@pytest.fixture(scope="module")
def native_pred(pkg):
    return Predictor(pkg, engine="native")


def test_default_engine_is_onnx(onnx_pred, native_pred, pkg):
    assert onnx_pred.engine == "onnx" and native_pred.engine == "native"
    assert "engine='onnx'" in repr(onnx_pred)
    assert fulcrum.load("mixed", registry=pkg.path.parent.parent).engine == "onnx"


def test_session_is_configured_once(onnx_pred):
    engine = onnx_pred._onnx
    assert isinstance(engine, OnnxEngine)
    opts = engine.session.get_session_options()
    import onnxruntime as ort

    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert opts.intra_op_num_threads == physical_cores()
    assert opts.inter_op_num_threads == 1
    assert opts.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL


def test_frames_dicts_and_lists_agree_with_native(onnx_pred, native_pred):
    df = mixed(60, 1).drop(columns="y")
    df.loc[0, "color"] = None
    df.loc[1, "note"] = None
    df.loc[2, "day"] = pd.NaT
    ref = native_pred.predict_output(df)
    np.testing.assert_allclose(onnx_pred.predict_output(df), ref, atol=ATOL)
    records = df.to_dict("records")
    np.testing.assert_allclose(onnx_pred.predict_output(records), ref, atol=ATOL)
    for i in (0, 1, 2, 5):
        np.testing.assert_allclose(onnx_pred.predict_output(records[i]), ref[i : i + 1], atol=ATOL)
    out = onnx_pred.predict(df)
    assert list(out.columns) == ["prediction", "proba_no", "proba_yes"]
    assert (out["prediction"] == native_pred.predict(df)["prediction"]).all()


def test_rows_as_lists_follow_the_input_order(onnx_pred, native_pred):
    df = mixed(12, 5).drop(columns="y")
    ref = native_pred.predict_output(df)
    as_lists = df.astype(object).values.tolist()
    for pred in (onnx_pred, native_pred):
        np.testing.assert_allclose(pred.predict_output(as_lists), ref, atol=ATOL)
        np.testing.assert_allclose(pred.predict_output(df.to_numpy(dtype=object)), ref, atol=ATOL)
    with pytest.raises(DataError, match=r"3 value\(s\).*5 columns.*'a', 'color', 'ok', 'day', 'note'"):
        onnx_pred.predict([[1.0, "red", True]])
    with pytest.raises(DataError, match="one row per item"):
        onnx_pred.predict([1.0, 2.0])


def test_predict_one_returns_plain_values(onnx_pred, native_pred):
    row = mixed(3, 2).drop(columns="y").iloc[1].to_dict()
    one = onnx_pred.predict_one(row)
    assert set(one) == {"prediction", "proba_no", "proba_yes"} and one["prediction"] in ("yes", "no")
    assert all(type(v) is float for k, v in one.items() if k != "prediction")
    ref = native_pred.predict_one(row)
    assert one["prediction"] == ref["prediction"] and one["proba_yes"] == pytest.approx(ref["proba_yes"], abs=ATOL)
    # values as strings, as a form or a JSON body would send them
    as_text = {k: str(v) for k, v in row.items()}
    assert onnx_pred.predict_one(as_text)["proba_yes"] == pytest.approx(native_pred.predict_one(as_text)["proba_yes"], abs=ATOL)
    with pytest.raises(DataError, match="dict"):
        onnx_pred.predict_one([row])


def test_predict_columns(onnx_pred, native_pred):
    df = mixed(40, 3).drop(columns="y")
    cols = {c: df[c].to_numpy() for c in df.columns}
    out = onnx_pred.predict_columns(cols)
    assert set(out) == {"y", "probabilities"} and out["probabilities"].shape == (40, 2)
    np.testing.assert_allclose(out["probabilities"], native_pred.predict_output(df), atol=ATOL)
    assert list(out["y"]) == list(native_pred.predict(df)["prediction"])
    assert set(native_pred.predict_columns(cols)) == {"y", "probabilities"}
    with pytest.raises(SchemaError, match="lengths"):
        onnx_pred.predict_columns({**cols, "a": cols["a"][:5]})


@pytest.mark.parametrize("engine", ["onnx", "native"])
def test_same_errors_on_both_engines(pkg, engine):
    p = Predictor(pkg, engine=engine)
    good = mixed(1, 4).drop(columns="y").iloc[0].to_dict()
    with pytest.raises(SchemaError, match=r"missing required column\(s\) \['color', 'note'\]"):
        p.predict({"a": 1.0, "ok": True, "day": "2021-01-01"})
    with pytest.raises(SchemaError, match=r"'a'.*'abc'.*row 1"):
        p.predict(pd.DataFrame([good, {**good, "a": "abc"}]))
    with pytest.raises(SchemaError, match=r"'a'.*'abc'.*row 0"):
        p.predict({**good, "a": "abc"})
    with pytest.raises(DataError, match="infinite"):
        p.predict({**good, "a": float("inf")})
    with pytest.raises(SchemaError, match="'ok'"):
        p.predict({**good, "ok": "maybe"})
    with pytest.raises(SchemaError, match="'day'"):
        p.predict({**good, "day": "not a date"})
    # unknown category: a notice by default, an error on request
    p.predict({**good, "color": "purple", "extra": 1})
    assert any("purple" in n for n in p.notices) and any("extra" in n for n in p.notices)
    p.predict(good)
    assert p.notices == []
    with pytest.raises(SchemaError, match="purple"):
        p.predict({**good, "color": "purple"}, on_unknown="error")
    with pytest.raises(SchemaError, match="purple"):
        p.predict(pd.DataFrame([{**good, "color": "purple"}]), on_unknown="error")
    with pytest.raises(ConfigError, match="on_unknown"):
        p.predict(pd.DataFrame([good]), on_unknown="maybe")


def test_predict_one_notices(onnx_pred):
    good = mixed(1, 4).drop(columns="y").iloc[0].to_dict()
    onnx_pred.predict_one({**good, "color": "purple"})
    assert any("purple" in n for n in onnx_pred.notices)
    onnx_pred.predict_one(good)
    assert onnx_pred.notices == []
    with pytest.raises(SchemaError, match="purple"):
        onnx_pred.predict_one({**good, "color": "purple"}, on_unknown="error")


def test_transform_is_the_python_preprocessor(onnx_pred):
    X = onnx_pred.transform(mixed(5, 5))
    assert X.shape == (5, onnx_pred.preprocessor.n_features_) and X.dtype == np.float32


def test_bad_engine_name(pkg):
    with pytest.raises(ConfigError, match="engine"):
        Predictor(pkg, engine="tensorrt")


# ------------------------------------------------------------------------ old packages and variants


def _copy_without_onnx(pkg, dest):
    files = {f: pkg.read_bytes(f) for f in pkg.files if f != "model.onnx"}
    manifest = {k: v for k, v in pkg.manifest.items() if k not in ("onnx", "files", "format_version")}
    return ModelPackage.load(write_package(dest, manifest, files))


def test_package_without_onnx(pkg, tmp_path):
    old = _copy_without_onnx(pkg, tmp_path / "old")
    assert Predictor(old).engine == "native"  # auto falls back
    with pytest.raises(FormatError, match=r"predates ONNX export.*engine='native'"):
        Predictor(old, engine="onnx")
    with pytest.raises(FormatError, match="format 1"):
        fulcrum.load(str(old.path), engine="onnx")


def test_variants(pkg, tmp_path):
    copy = tmp_path / "pkg"
    shutil.copytree(pkg.path, copy)
    graph = (copy / "model.onnx").read_bytes()
    add_files(copy, {"variants/fp32/model.onnx": graph},
              {"variants": {"fp32": {"file": "variants/fp32/model.onnx", "kind": "onnx-fp32"}}})
    v = fulcrum.load(str(copy), variant="fp32")
    assert v.variant == "fp32" and v.engine == "onnx" and "variant='fp32'" in repr(v)
    df = mixed(10, 6).drop(columns="y")
    np.testing.assert_allclose(v.predict_output(df), Predictor(pkg).predict_output(df), atol=ATOL)
    with pytest.raises(NotFoundError, match=r"no variant 'int8'.*fp32"):
        fulcrum.load(str(copy), variant="int8")
    with pytest.raises(NotFoundError, match="none"):
        Predictor(pkg, variant="int8")
    with pytest.raises(ConfigError, match="native"):
        Predictor(ModelPackage.load(copy), engine="native", variant="fp32")


def test_adapter_is_loaded_lazily(pkg):
    p = Predictor(pkg)
    assert p._native is None
    assert p.adapter.family == "mlp" and p._native is not None


# ------------------------------------------------------------------------ regression and batch files


def test_regression_outputs(registry):
    df = mixed(150, 7)
    df["target"] = np.nan_to_num(df["a"]) * 3 + (df["color"] == "red") * 10 + 50
    pkg = fulcrum.train(df.drop(columns="y"), target="target", model="linear", task="regression", name="reg",
                        registry=registry, progress=False)
    p, n = Predictor(pkg), Predictor(pkg, engine="native")
    new = mixed(20, 8).drop(columns="y")
    np.testing.assert_allclose(p.predict_output(new), n.predict_output(new), rtol=1e-5)
    one = p.predict_one(new.iloc[0].to_dict())
    assert set(one) == {"prediction"} and one["prediction"] == pytest.approx(float(n.predict_output(new.iloc[:1])[0]), rel=1e-5)
    assert p.predict_columns({c: new[c].to_numpy() for c in new})["target"].shape == (20,)


def test_predict_file_streams_through_onnx(onnx_pred, native_pred, tmp_path):
    df = mixed(230, 9).drop(columns="y")
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    df.to_csv(src, index=False)
    notes = []
    rows = predict_file(onnx_pred, src, out, chunk_rows=50, progress=False, notice=notes.append)
    assert rows == 230
    got = pd.read_csv(out)
    ref = native_pred.predict(pd.read_csv(src))
    assert list(got.columns) == list(ref.columns)
    np.testing.assert_allclose(got["proba_yes"], ref["proba_yes"], atol=ATOL)
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".")]  # no temp file left


def test_manifest_records_export(pkg):
    section = pkg.manifest["onnx"]
    assert section["parity"]["max_abs_diff"] <= ATOL
    assert {i["name"]: i["type"] for i in section["inputs"]} == {
        "a": "tensor(double)", "color": "tensor(string)", "ok": "tensor(double)", "day": "tensor(int64)",
        "note": "tensor(string)",
    }
    json.dumps(section)  # plain JSON


def test_unknown_workload_is_a_clear_format_error(tmp_path):
    import fulcrum
    from fulcrum.artifact import ModelPackage, write_package
    from fulcrum.errors import FormatError
    from fulcrum.runtime import Predictor

    reg = fulcrum.Registry(tmp_path / "reg")
    pkg = fulcrum.train("builtin:iris", model="linear", registry=reg, progress=False, measure_inference=False)
    manifest = {k: v for k, v in pkg.manifest.items() if k not in ("files", "format_version")}
    manifest["task"] = {**manifest["task"], "workload": "hologram"}
    files = {f: pkg.read_bytes(f) for f in pkg.files}
    path = write_package(tmp_path / "hologram", manifest, files)
    with pytest.raises(FormatError, match="'hologram' model"):
        Predictor(ModelPackage.load(path))
