"""ONNX export: the one graph (raw columns -> outputs) matches the native Preprocessor + adapter.

Tolerances (ONNX Runtime vs native, on the same rows):
- preprocessing ``features``: exact (atol 0): the graph does the same float64 arithmetic and one cast;
- probabilities: atol 1e-5 (float32 softmax / tree sums vs the adapters' float32/float64);
- regression values: rtol 1e-5 (plus atol 1e-5 for values near zero).
"""

from __future__ import annotations

import re

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest

import fulcrum
from fulcrum.config import TrainConfig
from fulcrum.data import Preprocessor
from fulcrum.data._schema import ColumnSpec, Schema
from fulcrum.models import TaskSpec, adapter_class
from fulcrum.tasks.tabular._export import (
    DEFAULT_OPSET,
    MISSING_DATETIME,
    compose,
    export_model,
    export_package_graph,
    export_preprocess,
)
from fulcrum.tasks.tabular import _export
from fulcrum.tasks.tabular._codec import InputEncoder

PROBA_ATOL = 1e-5
VALUE_RTOL = 1e-5
WORDS = ["alpha", "beta", "Gamma", "delta", "eps", "zeta", "theta", "x1", "42"]


def session(model) -> ort.InferenceSession:
    data = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def mixed_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    num = rng.normal(10, 3, n)
    num[rng.random(n) < 0.1] = np.nan
    when = pd.Series(pd.to_datetime(rng.integers(-2_000_000_000, 4_000_000_000, n), unit="s"))
    when[rng.random(n) < 0.05] = pd.NaT
    text = [" ".join(rng.choice(WORDS, 4)) + ("!" if i % 3 else "") for i in range(n)]
    df = pd.DataFrame({
        "num": num,
        "count": rng.integers(0, 50, n),
        "cat": pd.Series(rng.choice(["red", "green", "blue", "", "Red"], n), dtype=object),
        "flag": rng.choice([True, False], n),
        "when": when,
        "txt": text,
    })
    df.loc[rng.random(n) < 0.05, "cat"] = None
    signal = np.nan_to_num(num - 10) + (df["cat"] == "red") * 2 + df["flag"] * 1.5 + df["txt"].str.contains("alpha")
    df["y_cls"] = np.where(signal + rng.normal(0, 1, n) > 1, "yes", "no")
    df["y_reg"] = signal * 3.0 + rng.normal(0, 0.5, n) + 100
    return df


SCHEMA = Schema(
    [ColumnSpec("num", "numeric", "float64"), ColumnSpec("count", "numeric", "int64"),
     ColumnSpec("cat", "categorical", "object"), ColumnSpec("flag", "boolean", "bool"),
     ColumnSpec("when", "datetime", "datetime64[ns]"), ColumnSpec("txt", "text", "object")],
)


def unseen_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Test rows with unseen categories, missing values of every kind and odd spacing."""
    out = df.copy().reset_index(drop=True)
    out.loc[0, "cat"] = "purple"          # unseen
    out.loc[1, "cat"] = "   "             # blank = missing
    out.loc[2, "cat"] = " green "         # stripped
    out.loc[3, "txt"] = None              # missing text
    out.loc[4, "txt"] = "ALPHA, beta... Gamma-delta"  # case and punctuation
    out.loc[5, "num"] = 1e6               # far outside training
    out.loc[6, "when"] = pd.NaT
    out.loc[7, "num"] = np.nan
    return out


@pytest.fixture(scope="module")
def frames():
    train, test = mixed_frame(300, 0), unseen_rows(mixed_frame(80, 1))
    return train, test


@pytest.fixture(scope="module")
def fitted_pre(frames):
    train, _ = frames
    return Preprocessor(SCHEMA, clip_outliers=0.02).fit(train)


# ------------------------------------------------------------------------ preprocessing


def test_preprocess_graph_equals_transform_exactly(frames, fitted_pre):
    _, test = frames
    graph = export_preprocess(fitted_pre.to_dict())
    onnx.checker.check_model(graph)
    assert [i.name for i in graph.graph.input] == SCHEMA.feature_columns
    got = session(graph).run(["features"], InputEncoder(fitted_pre.to_dict()).encode_frame(test))[0]
    ref = fitted_pre.transform(test)
    assert got.dtype == np.float32 and got.shape == ref.shape == (len(test), fitted_pre.n_features_)
    np.testing.assert_array_equal(got, ref)


def test_input_types_per_column_kind(fitted_pre):
    graph = export_preprocess(fitted_pre.to_dict())
    elem = {i.name: i.type.tensor_type.elem_type for i in graph.graph.input}
    T = onnx.TensorProto
    assert elem == {"num": T.DOUBLE, "count": T.DOUBLE, "cat": T.STRING, "flag": T.DOUBLE, "when": T.INT64, "txt": T.STRING}
    for i in graph.graph.input:
        dims = [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
        assert dims == ["N", 1]


def test_datetime_parts_match_pandas_over_calendar_edges():
    days = pd.date_range("1899-12-25", "1900-03-05", freq="D").append(pd.date_range("1968-12-20", "1972-03-10", freq="D"))
    days = days.append(pd.date_range("1999-12-28", "2000-03-02", freq="D")).append(pd.date_range("2099-12-30", "2100-03-02", freq="D"))
    rng = np.random.default_rng(3)
    stamps = pd.Series(days).add(pd.to_timedelta(rng.integers(0, 86_400, len(days)), unit="s"))
    stamps = pd.concat([stamps, pd.Series([pd.Timestamp("1969-12-31 23:59:59"), pd.Timestamp("1970-01-01"), pd.NaT])],
                       ignore_index=True)
    df = pd.DataFrame({"d": stamps})
    pre = Preprocessor(Schema([ColumnSpec("d", "datetime", "datetime64[ns]")])).fit(df)
    feeds = InputEncoder(pre.to_dict()).encode_frame(df)
    assert feeds["d"][-1, 0] == MISSING_DATETIME and feeds["d"].dtype == np.int64
    np.testing.assert_array_equal(session(export_preprocess(pre.to_dict())).run(None, feeds)[0], pre.transform(df))


def test_categorical_graph_conventions():
    """Raw-ORT callers: "", blanks and "nan" are missing; whole numbers are written like "3"."""
    df = pd.DataFrame({"c": ["a", "b", None, "a", 3.0, 4.5]})
    pre = Preprocessor(Schema([ColumnSpec("c", "categorical", "object")])).fit(df)
    sess = session(export_preprocess(pre.to_dict()))
    raw = np.array([["a"], [""], ["  "], ["nan"], ["3"], ["4.5"], ["zzz"]], dtype=object)
    expected = pre.transform(pd.DataFrame({"c": ["a", None, None, None, 3, 4.5, "zzz"]}))
    np.testing.assert_array_equal(sess.run(None, {"c": raw})[0], expected)


def test_text_all_rows_without_tokens():
    df = pd.DataFrame({"t": ["red fish blue fish", "one fish two fish", "red one", "blue two"]})
    pre = Preprocessor(Schema([ColumnSpec("t", "text", "object")])).fit(df)
    out = session(export_preprocess(pre.to_dict())).run(None, {"t": np.array([[""], ["!!"], ["nan"]], dtype=object)})[0]
    assert out.shape == (3, pre.n_features_) and not out.any()


def test_export_preprocess_rejects_old_opset(fitted_pre):
    with pytest.raises(fulcrum.errors.ConfigError, match="opset"):
        export_preprocess(fitted_pre.to_dict(), opset=17)


# ------------------------------------------------------------------------ models: every family x task


def _fit(family: str, kind: str, pre: Preprocessor, train: pd.DataFrame):
    X = pre.transform(train)
    if kind == "classification":
        y = (train["y_cls"] == "yes").to_numpy(np.int64)
        task = TaskSpec("classification", n_classes=2)
    else:
        y = train["y_reg"].to_numpy(np.float64)
        task = TaskSpec("regression")
    cfg = TrainConfig(epochs=8, hidden_sizes=(16, 8), n_estimators=40, progress=False, seed=0)
    split = int(len(X) * 0.8)
    adapter = adapter_class(family)(task, cfg).fit(X[:split], y[:split], X[split:], y[split:])
    return adapter, task


@pytest.mark.parametrize("kind", ["classification", "regression"])
@pytest.mark.parametrize("family", ["mlp", "linear", "lightgbm"])
def test_package_graph_matches_native(family, kind, frames, fitted_pre):
    train, test = frames
    adapter, task = _fit(family, kind, fitted_pre, train)
    data = export_package_graph(fitted_pre.to_dict(), adapter, task, fitted_pre.n_features_)
    model = onnx.load_from_string(data)
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == SCHEMA.feature_columns
    assert {o.domain or "": o.version for o in model.opset_import}[""] == DEFAULT_OPSET
    sess = session(data)
    outputs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, InputEncoder(fitted_pre.to_dict()).encode_frame(test))))
    native = adapter.predict_output(fitted_pre.transform(test))
    if kind == "classification":
        assert set(outputs) == {"probabilities", "label"}
        p = outputs["probabilities"]
        assert p.dtype == np.float32 and p.shape == (len(test), 2)
        np.testing.assert_allclose(p, native, rtol=0, atol=PROBA_ATOL)
        assert outputs["label"].dtype == np.int64 and outputs["label"].shape == (len(test),)
        np.testing.assert_array_equal(outputs["label"], p.argmax(axis=1))
    else:
        assert set(outputs) == {"value"}
        v = outputs["value"]
        assert v.dtype == np.float32 and v.shape == (len(test),)
        np.testing.assert_allclose(v, native, rtol=VALUE_RTOL, atol=1e-5)


def test_model_graph_alone_has_the_contract(frames, fitted_pre):
    train, test = frames
    adapter, task = _fit("linear", "classification", fitted_pre, train)
    model = export_model(adapter, task, fitted_pre.n_features_)
    assert [i.name for i in model.graph.input] == ["features"]
    assert [o.name for o in model.graph.output] == ["probabilities", "label"]
    X = fitted_pre.transform(test)
    p = session(model).run(["probabilities"], {"features": X})[0]
    np.testing.assert_allclose(p, adapter.predict_output(X), atol=PROBA_ATOL)
    # compose: the final inputs are the raw columns, whatever the internal names
    merged = compose(export_preprocess(fitted_pre.to_dict()), model)
    assert [i.name for i in merged.graph.input] == SCHEMA.feature_columns
    assert [o.name for o in merged.graph.output] == ["probabilities", "label"]


def test_columns_named_like_graph_edges():
    """A raw column called 'features' or 'label' must neither break nor shadow anything."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"features": rng.normal(size=60), "label": rng.choice(["a", "b"], 60),
                       "y": rng.choice(["u", "v"], 60)})
    schema = Schema([ColumnSpec("features", "numeric", "float64"), ColumnSpec("label", "categorical", "object")], target="y")
    pre = Preprocessor(schema).fit(df)
    adapter = adapter_class("linear")(TaskSpec("classification", n_classes=2), TrainConfig()).fit(
        pre.transform(df), (df["y"] == "v").to_numpy(np.int64))
    data = export_package_graph(pre.to_dict(), adapter, "classification", pre.n_features_)
    sess = session(data)
    assert [i.name for i in sess.get_inputs()] == ["features", "label"]
    assert [o.name for o in sess.get_outputs()] == ["probabilities", "output:label"]
    p = sess.run(["probabilities"], InputEncoder(pre.to_dict()).encode_frame(df))[0]
    np.testing.assert_allclose(p, adapter.predict_output(pre.transform(df)), atol=PROBA_ATOL)


def test_unknown_family_is_refused(fitted_pre):
    class Strange:
        family = "svm"

    with pytest.raises(fulcrum.errors.ConfigError, match="svm"):
        export_model(Strange(), "classification", 3)


# ------------------------------------------------------------------------ packages from fulcrum.train


@pytest.fixture(scope="module")
def penguin_packages(tmp_path_factory):
    reg = fulcrum.Registry(tmp_path_factory.mktemp("registry"))
    return {
        fam: fulcrum.train("builtin:penguins", model=fam, name=f"penguins-{fam}", registry=reg, progress=False,
                           epochs=15, n_estimators=60)
        for fam in ("linear", "lightgbm", "mlp")
    }


@pytest.mark.parametrize("family", ["linear", "lightgbm", "mlp"])
def test_penguins_package_carries_one_graph(family, penguin_packages):
    pkg = penguin_packages[family]
    m = pkg.manifest
    assert "model.onnx" in m["files"] and len(m["files"]["model.onnx"]["sha256"]) == 64
    section = m["onnx"]
    assert section["file"] == "model.onnx" and section["opset"] == DEFAULT_OPSET
    schema_features = [c for c in Preprocessor.from_dict(pkg.read_json("preprocess.json")).input_columns]
    assert [i["name"] for i in section["inputs"]] == schema_features
    kinds = {i["name"]: (i["kind"], i["type"]) for i in section["inputs"]}
    assert kinds["island"] == ("categorical", "tensor(string)")
    assert kinds["bill_length_mm"] == ("numeric", "tensor(double)")
    assert [o["name"] for o in section["outputs"]] == ["probabilities", "label"]
    assert section["outputs"][0]["shape"] == ["N", 3]
    parity = section["parity"]
    assert parity["split"] == "test" and parity["rows"] == m["data"]["rows"]["test"]
    assert parity["max_abs_diff"] <= PROBA_ATOL
    # and on the whole table (missing values, string categoricals), through the Predictor
    df = fulcrum.read_table("builtin:penguins")
    onnx_out = fulcrum.load(str(pkg.path), engine="onnx").predict_output(df)
    native_out = fulcrum.load(str(pkg.path), engine="native").predict_output(df)
    np.testing.assert_allclose(onnx_out, native_out, atol=PROBA_ATOL)


def test_penguins_regression_package(tmp_path):
    df = fulcrum.read_table("builtin:penguins").dropna(subset=["body_mass_g"])
    pkg = fulcrum.train(df, target="body_mass_g", model="lightgbm", name="mass", registry=tmp_path / "reg",
                        progress=False, n_estimators=40)
    assert [o["name"] for o in pkg.manifest["onnx"]["outputs"]] == ["value"]
    assert pkg.manifest["onnx"]["parity"]["max_rel_diff"] <= VALUE_RTOL
    a = fulcrum.load(str(pkg.path)).predict_output(df)
    b = fulcrum.load(str(pkg.path), engine="native").predict_output(df)
    np.testing.assert_allclose(a, b, rtol=VALUE_RTOL)


def _readme_snippet() -> str:
    doc = _export.__doc__ or ""
    block = doc.split("package directory; the columns are a penguins model's inputs)::", 1)[1]
    lines = []
    for line in block.splitlines()[1:]:
        if line.strip() and not line.startswith("    "):
            break
        lines.append(line[4:])
    return "\n".join(lines).strip() + "\n"


def test_plain_onnxruntime_snippet_from_the_docstring(penguin_packages, monkeypatch, capsys):
    """The docstring's lines, run as they are, in a package directory: no Fulcrum involved."""
    code = _readme_snippet()
    assert "import onnxruntime as ort" in code and "fulcrum" not in code
    pkg = penguin_packages["mlp"]
    monkeypatch.chdir(pkg.path)
    scope: dict = {}
    exec(compile(code, "README-snippet", "exec"), scope)  # noqa: S102 - our own docstring
    outputs, columns = scope["outputs"], scope["columns"]
    expected = fulcrum.load(str(pkg.path), engine="native").predict_output(
        pd.DataFrame({k: [None if v == "" else v for v in vals] for k, vals in columns.items()}))
    np.testing.assert_allclose(outputs["probabilities"], expected, atol=PROBA_ATOL)
    np.testing.assert_array_equal(outputs["label"], expected.argmax(axis=1))
    assert re.search(r"\[\[", capsys.readouterr().out)
