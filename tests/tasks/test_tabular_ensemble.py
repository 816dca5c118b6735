"""A weighted ensemble as a tabular package: ONE ONNX graph (raw columns -> every member -> weighted sum),
equal to the native EnsembleAdapter, and everything downstream of a package (load, native engine, optimize,
costs) working on it.

Tolerances are those of the single-model parity checks (tests/tasks/test_tabular_export.py): probabilities
atol 1e-5; regression values rtol 1e-5 (+ atol 1e-5 near zero).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest

import fulcrum
from fulcrum import data as D
from fulcrum.artifact import ModelPackage, Registry
from fulcrum.config import TrainConfig
from fulcrum.models import EnsembleAdapter, TaskSpec, adapter_class, caruana_weights
from fulcrum.tasks._base import Trained
from fulcrum.tasks._metrics import PRIMARY
from fulcrum.tasks.tabular import TabularTask
from fulcrum.tasks.tabular._codec import InputEncoder
from fulcrum.tasks.tabular._export import export_model, export_package_graph, package_onnx
from fulcrum.tasks.tabular._fit import evaluate_outputs, library_versions

PROBA_ATOL = 1e-5
VALUE_RTOL = 1e-5
CFG = {"epochs": 15, "n_estimators": 60, "hidden_sizes": (32, 16), "progress": False}


def fit_members(df: pd.DataFrame, target: str, kind: str, families: tuple[str, ...], seed: int = 0) -> dict[str, Any]:
    """What model selection does, in small: split as fit_tabular does, fit the preparation on the training
    split, fit each family with early stopping on the validation split, and weigh them on the validation
    predictions (standing in for out-of-fold ones)."""
    cfg = TrainConfig(target=target, kind=kind, seed=seed, **CFG)
    schema = D.infer_schema(df, target)
    train, val, test = D.train_val_test_split(df, target, task=kind, test_size=cfg.test_size, val_size=cfg.val_size,
                                              seed=seed)
    if kind == "classification":
        codec = D.LabelCodec().fit(df[target])
        labels = list(codec.classes_)
        y_tr, y_va, y_te = (codec.encode(s[target]) for s in (train, val, test))
        task = TaskSpec("classification", n_classes=len(labels))
    else:
        labels = None
        y_tr, y_va, y_te = (s[target].to_numpy(np.float64) for s in (train, val, test))
        task = TaskSpec("regression")
    pre = D.Preprocessor(schema).fit(train)
    X_tr, X_va, X_te = (pre.transform(s, dtype=np.float64) for s in (train, val, test))
    members, val_out = {}, {}
    for fam in families:
        X_fit = X_tr if fam == "linear" else X_tr.astype(np.float32)
        X_v = X_va if fam == "linear" else X_va.astype(np.float32)
        members[fam] = adapter_class(fam)(task, cfg).fit(X_fit, y_tr, X_v, y_va)
        val_out[fam] = members[fam].predict_output(X_v)
    return {"cfg": cfg, "schema": schema, "pre": pre, "task": task, "labels": labels, "members": members,
            "val_out": val_out, "y_va": y_va, "train": train, "val": val, "test": test, "X_te": X_te, "y_te": y_te}


@pytest.fixture(scope="module")
def penguins():
    df = fulcrum.read_table("builtin:penguins")
    fitted = fit_members(df, "species", "classification", ("linear", "lightgbm", "mlp"))
    fitted["frame"] = df
    return fitted


@pytest.fixture(scope="module")
def diabetes():
    df = fulcrum.read_table("builtin:diabetes")
    fitted = fit_members(df, "target", "regression", ("linear", "lightgbm", "mlp"))
    fitted["frame"] = df
    return fitted


def _run(model_bytes: bytes, preprocess: dict, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    out = sess.run(None, InputEncoder(preprocess).encode_frame(frame))
    return dict(zip([o.name for o in sess.get_outputs()], out))


# ------------------------------------------------------------------------------------------- the graph


def test_penguins_ensemble_is_one_graph_equal_to_the_native_ensemble(penguins):
    f = penguins
    ens = EnsembleAdapter.from_members(f["task"], f["cfg"], f["members"], {"linear": 0.5, "lightgbm": 0.3, "mlp": 0.2})
    pre = f["pre"].to_dict()
    data = export_package_graph(pre, ens, f["task"], f["pre"].n_features_)
    model = onnx.load_from_string(data)
    assert [i.name for i in model.graph.input] == f["pre"].input_columns  # raw columns in, nothing else
    assert [o.name for o in model.graph.output] == ["probabilities", "label"]
    ops = {n.op_type for n in model.graph.node}
    assert {"TreeEnsembleClassifier", "MatMul", "Softmax", "Sum"} <= ops  # trees, linear, MLP, the weighted sum
    df = f["frame"]  # every row: missing values, string categoricals
    out = _run(data, pre, df)
    native = ens.predict_output(f["pre"].transform(df, dtype=np.float64))
    np.testing.assert_allclose(out["probabilities"], native, rtol=0, atol=PROBA_ATOL)
    np.testing.assert_array_equal(out["label"], out["probabilities"].argmax(axis=1))
    # the package's own parity record, measured on the test split as for any model
    _, section = package_onnx(pre, ens, f["task"], f["pre"].n_features_, f["test"], ens.predict_output(f["X_te"]))
    assert section["parity"]["max_abs_diff"] <= PROBA_ATOL
    print(f"penguins ensemble parity (test split): max_abs_diff={section['parity']['max_abs_diff']:.3g}")


def test_diabetes_ensemble_regression_graph(diabetes):
    f = diabetes
    ens = EnsembleAdapter.from_members(f["task"], f["cfg"], f["members"], {"linear": 0.4, "lightgbm": 0.4, "mlp": 0.2})
    pre = f["pre"].to_dict()
    data, section = package_onnx(pre, ens, f["task"], f["pre"].n_features_, f["test"], ens.predict_output(f["X_te"]))
    assert [o["name"] for o in section["outputs"]] == ["value"] and section["outputs"][0]["shape"] == ["N"]
    out = _run(data, pre, f["frame"])["value"]
    native = ens.predict_output(f["pre"].transform(f["frame"], dtype=np.float64))
    np.testing.assert_allclose(out, native, rtol=VALUE_RTOL, atol=1e-5)
    assert section["parity"]["max_rel_diff"] <= VALUE_RTOL
    print(f"diabetes ensemble parity (test split): max_abs_diff={section['parity']['max_abs_diff']:.3g} "
          f"max_rel_diff={section['parity']['max_rel_diff']:.3g}")


def test_two_members_of_one_family_in_one_graph(penguins):
    f = penguins
    other = adapter_class("lightgbm")(f["task"], f["cfg"].replace(num_leaves=4, n_estimators=20))
    X = f["pre"].transform(f["train"])
    other.fit(X, D.LabelCodec().fit(f["frame"]["species"]).encode(f["train"]["species"]))
    ens = EnsembleAdapter.from_members(f["task"], f["cfg"], {"lightgbm": f["members"]["lightgbm"], "small": other},
                                       {"lightgbm": 0.7, "small": 0.3})
    model = export_model(ens, f["task"], f["pre"].n_features_)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    Xt = f["X_te"].astype(np.float32)
    np.testing.assert_allclose(sess.run(["probabilities"], {"features": Xt})[0], ens.predict_output(Xt), atol=PROBA_ATOL)


# ------------------------------------------------------------------------------------------- a package


class _EnsembleTabular(TabularTask):
    """The tabular task with a fit that builds a weighted ensemble (what --model auto's selection will do)."""

    def fit(self, frame, config, *, source="dataframe", callbacks=(), checkpoint_dir=None, log=None) -> Trained:
        return ensemble_trained(frame, source)


def ensemble_trained(frame: pd.DataFrame, source: str) -> Trained:
    f = fit_members(frame, "species", "classification", ("linear", "lightgbm", "mlp"))
    task, pre, cfg = f["task"], f["pre"], f["cfg"]
    weights = caruana_weights(f["val_out"], f["y_va"], "classification", "log_loss", n_classes=task.n_classes)
    ens = EnsembleAdapter.from_members(task, cfg, f["members"], weights)
    out_te = ens.predict_output(f["X_te"])
    meta, files = ens.to_files()
    meta["describe"] = ens.describe()
    meta["n_features"] = int(pre.n_features_)
    files["preprocess.json"] = json.dumps(pre.to_dict(), sort_keys=True).encode()
    files["profile.json"] = json.dumps(D.profile_frame(f["train"], f["schema"]), sort_keys=True).encode()
    files["model.onnx"], onnx_section = package_onnx(pre.to_dict(), ens, task, pre.n_features_, f["test"], out_te)
    test_metrics = evaluate_outputs("classification", f["y_te"], out_te, task.n_classes)
    manifest = {
        "libraries": library_versions(),
        "task": {"workload": "tabular", "kind": "classification", "target": "species", "labels": f["labels"]},
        "schema": f["schema"].to_dict(),
        "inputs": [{"name": c.name, "kind": c.kind, "dtype": c.dtype} for c in f["schema"].columns],
        "outputs": [{"name": "species", "kind": "label"},
                    {"name": "probabilities", "kind": "probabilities", "labels": f["labels"]}],
        "model": meta,
        "onnx": onnx_section,
        "config": {**cfg.to_dict(), "model": "auto"},
        "data": {"source": source, "fingerprint": D.fingerprint(frame),
                 "rows": {"train": len(f["train"]), "validation": len(f["val"]), "test": len(f["test"])},
                 "dropped_target_rows": 0},
        "metrics": {"primary": {"name": PRIMARY["classification"], "value": test_metrics["accuracy"], "split": "test"},
                    "test": test_metrics, "validation": None, "cv": None, "candidates": {}},
        "lineage": {"parent": None, "data_source": source},
    }
    return Trained(manifest, files, test_frame=f["test"], training_flops=ens.training_flops_,
                   flops_methods={"ensemble": ens.flops_method})


@pytest.fixture(scope="module")
def ens_pkg(tmp_path_factory):
    from fulcrum._api import fit_to_package

    reg = Registry(tmp_path_factory.mktemp("ens") / "registry")
    df = D.check_target(fulcrum.read_table("builtin:penguins"), "species", "classification")[0]
    pkg = fit_to_package(df, TrainConfig(target="species", **CFG), name="penguins-ens", registry=reg,
                         source="builtin:penguins", task=_EnsembleTabular())
    return reg, pkg, df


def test_ensemble_package_loads_and_predicts_on_both_engines(ens_pkg):
    reg, pkg, df = ens_pkg
    m = pkg.manifest
    assert m["model"]["family"] == "ensemble" and len(m["model"]["members"]) >= 2
    assert sum(e["weight"] for e in m["model"]["members"]) == pytest.approx(1.0)
    assert m["onnx"]["parity"]["max_abs_diff"] <= PROBA_ATOL
    print(f"penguins ensemble package: weights {[(e['name'], e['weight']) for e in m['model']['members']]}, "
          f"parity max_abs_diff={m['onnx']['parity']['max_abs_diff']:.3g}")
    onnx_pred = fulcrum.load(pkg.ref, registry=reg)
    native_pred = fulcrum.load(pkg.ref, registry=reg, engine="native")
    a, b = onnx_pred.predict_output(df), native_pred.predict_output(df)
    np.testing.assert_allclose(a, b, atol=PROBA_ATOL)
    labels = onnx_pred.predict(df.head(5))
    assert len(labels) == 5
    # roundtrip: the package's files give back the adapter that wrote them, predicting the same
    back = adapter_class("ensemble").from_files(TaskSpec("classification", n_classes=3), m["model"], pkg.read_bytes)
    X = D.Preprocessor.from_dict(pkg.read_json("preprocess.json")).transform(df)
    np.testing.assert_array_equal(back.predict_output(X), b)
    # costs measured at training: inference on the package, FLOPs = every member's
    inf = m["costs"]["inference"]
    assert inf["flops_per_prediction"] > 0 and "members" in inf["flops_method"]


def test_ensemble_flops_are_the_members_sum(ens_pkg):
    from fulcrum.tasks.tabular._flops import tabular_flops

    _, pkg, _ = ens_pkg
    m = pkg.manifest
    total, method = tabular_flops(m)
    parts = []
    for e in m["model"]["members"]:
        single = {**m, "model": {**e["meta"], "n_features": m["model"]["n_features"]},
                  "config": {**m["config"], **({"num_leaves": e["num_leaves"]} if e.get("num_leaves") else {})}}
        parts.append(tabular_flops(single)[0])
    assert all(p for p in parts) and total == sum(parts)
    assert method.startswith("sum over")


def test_ensemble_package_optimizes_and_enters_the_cost_ledger(ens_pkg):
    from fulcrum.costs import CostModel
    from fulcrum.costs._ledger import package_ledger
    from fulcrum.optimize import BenchSettings, OptimizeOptions, optimize_package

    reg, pkg, df = ens_pkg
    opts = OptimizeOptions(distill_epochs=4, calibration_rows=32,
                           bench=BenchSettings(warmup=2, rounds=3, round_s=0.0, min_calls_b1=10, min_calls_big=2))
    report = optimize_package(pkg.ref, registry=reg, options=opts)
    families = {e["family"] for e in pkg.manifest["model"]["members"]}
    assert {"base", "onnx-fp32", "distilled"} <= set(report.variants)
    for kind in ("pruned", "trees", "shallow"):
        assert "ensemble" in report.skipped[kind]
    if "lightgbm" in families:
        assert "int8-dynamic" in report.skipped and "int8-static" in report.skipped
    stored = reg.load(pkg.ref).manifest["variants"]
    assert stored["onnx-fp32"]["metric"]["value"] == pytest.approx(stored["base"]["metric"]["value"])
    assert stored["distilled"]["params"]["teacher"] == "ensemble"
    # the fp32 graph gives the parent's outputs; the distilled student (one MLP) predicts every row
    base = fulcrum.load(pkg.ref, registry=reg).predict_output(df)
    fp32 = fulcrum.load(pkg.ref, registry=reg, variant="onnx-fp32").predict_output(df)
    np.testing.assert_allclose(fp32, base, atol=PROBA_ATOL)
    student = fulcrum.load(pkg.ref, registry=reg, variant="distilled").predict_output(df)
    assert student.shape == base.shape and np.isfinite(student).all()
    rep = package_ledger(reg.load(pkg.ref), CostModel(), rate_per_s=10, horizon_s=86400)
    assert {"base", "onnx-fp32", "distilled"} <= set(rep["variants"])
    assert rep["model"]["family"] == "ensemble"


# ------------------------------------------------------------------------------------------- variants


def test_int8_applies_to_an_ensemble_of_matrix_products_only(penguins):
    from fulcrum.optimize._quantize import quantize_graph
    from fulcrum.tasks.tabular._variants import variant_kinds

    f = penguins
    ens = EnsembleAdapter.from_members(f["task"], f["cfg"], f["members"], {"linear": 0.5, "mlp": 0.5})
    meta, _ = ens.to_files()
    kinds, why = variant_kinds({"model": meta})
    by_kind = {k.kind: k for k in kinds}
    assert {"onnx-fp32", "int8-dynamic", "int8-static", "distilled"} == set(by_kind)
    assert by_kind["int8-dynamic"].params["float32"] is True  # the linear member's double part goes float32 first
    assert "ensemble" in why["pruned"] and "ensemble" in why["trees"]
    with_trees, _ = EnsembleAdapter.from_members(f["task"], f["cfg"], f["members"], {"linear": 0.5, "lightgbm": 0.5}).to_files()
    kinds, why = variant_kinds({"model": with_trees})
    assert "int8-dynamic" not in {k.kind for k in kinds} and "LightGBM" in why["int8-dynamic"]
    # and the int8 graph of the linear + MLP ensemble runs and stays close to the float one
    pre = f["pre"].to_dict()
    data = export_package_graph(pre, ens, f["task"], f["pre"].n_features_)
    q, _ = quantize_graph(data, "dynamic", dict(by_kind["int8-dynamic"].params))
    a, b = _run(data, pre, f["frame"])["probabilities"], _run(q, pre, f["frame"])["probabilities"]
    assert np.abs(a - b).max() < 0.1 and (a.argmax(1) == b.argmax(1)).mean() > 0.95


def test_distilling_a_regression_ensemble_keeps_target_units(diabetes):
    from fulcrum.tasks.tabular._distill import OutputTeacher, distill_mlp

    f = diabetes
    ens = EnsembleAdapter.from_members(f["task"], f["cfg"], f["members"], {"linear": 0.5, "lightgbm": 0.5})
    X_tr = f["pre"].transform(f["train"])
    X_va = f["pre"].transform(f["val"])
    y_tr = f["train"]["target"].to_numpy(float)
    y_va = f["val"]["target"].to_numpy(float)
    teacher = OutputTeacher(ens.predict_output, "regression", X_tr.shape[1], 1, float(y_tr.mean()), float(y_tr.std()))
    head = distill_mlp(teacher, X_tr, y_tr, X_va, y_va, f["cfg"], hidden_sizes=[16], epochs=40)
    import torch

    with torch.inference_mode():
        student = head(torch.as_tensor(f["X_te"], dtype=torch.float32)).numpy()
    teacher_out = ens.predict_output(f["X_te"])
    assert abs(student.mean() - teacher_out.mean()) < 0.5 * y_tr.std()  # in target units, not standardized
    assert np.corrcoef(student, teacher_out)[0, 1] > 0.8
