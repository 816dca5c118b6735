"""The weighted ensemble: greedy selection on out-of-fold predictions, and the adapter that runs it.

``caruana_weights`` is Caruana et al. (2004) forward selection with replacement, as AutoGluon's
WeightedEnsemble; ``EnsembleAdapter`` predicts the weighted sum of its members and stores them as files.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from fulcrum.config import TrainConfig
from fulcrum.errors import ConfigError, DataError, NotFittedError
from fulcrum.models import FAMILIES, EnsembleAdapter, LightGBMAdapter, LinearAdapter, MLPAdapter, TaskSpec, adapter_class
from fulcrum.models._ensemble import caruana_weights
from fulcrum.tasks._metrics import classification_metrics, regression_metrics


def _onehot_proba(y: np.ndarray, k: int, p_true: np.ndarray | float) -> np.ndarray:
    """(N, K) probabilities giving ``p_true`` to class y and the rest spread evenly."""
    n = len(y)
    p = np.broadcast_to(np.asarray(p_true, float), (n,))
    out = np.repeat(((1 - p) / (k - 1))[:, None], k, axis=1)
    out[np.arange(n), y] = p
    return out


# ------------------------------------------------------------------------------------- caruana_weights


def test_two_independent_noisy_regressors_share_the_weight():
    rng = np.random.default_rng(0)
    y = rng.normal(0, 1, 2000)
    a, b = y + rng.normal(0, 0.5, 2000), y + rng.normal(0, 0.5, 2000)
    bad = -y + rng.normal(0, 1, 2000)  # anti-correlated: mixing it in only hurts
    w = caruana_weights({"a": a, "bad": bad, "b": b}, y, "regression", "r2")
    assert set(w) == {"a", "b"}  # the useless model gets no weight and is dropped
    assert abs(sum(w.values()) - 1) < 1e-12
    assert 0.35 <= w["a"] <= 0.65 and 0.35 <= w["b"] <= 0.65
    blend = w["a"] * a + w["b"] * b
    assert regression_metrics(y, blend)["r2"] > max(regression_metrics(y, a)["r2"], regression_metrics(y, b)["r2"])
    assert caruana_weights({"a": a, "bad": bad, "b": b}, y, "regression", "r2") == w  # deterministic


def test_rmse_and_mae_are_minimized():
    rng = np.random.default_rng(1)
    y = rng.normal(0, 1, 500)
    good, worse = y + rng.normal(0, 0.1, 500), y + rng.normal(0, 2.0, 500)
    for metric in ("rmse", "mae"):
        assert caruana_weights({"worse": worse, "good": good}, y, "regression", metric) == {"good": 1.0}


def test_classification_log_loss_blends_complementary_models():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 600)
    # each model is confident and right on half the rows, unsure on the other half
    half = rng.random(600) < 0.5
    a = _onehot_proba(y, 3, np.where(half, 0.95, 0.4))
    b = _onehot_proba(y, 3, np.where(half, 0.4, 0.95))
    c = np.full((600, 3), 1 / 3)
    w = caruana_weights({"c": c, "a": a, "b": b}, y, "classification", "log_loss", n_classes=3)
    assert set(w) == {"a", "b"} and abs(sum(w.values()) - 1) < 1e-12
    blend = w["a"] * a + w["b"] * b
    assert classification_metrics(y, blend, 3)["log_loss"] < min(
        classification_metrics(y, m, 3)["log_loss"] for m in (a, b))


def test_accuracy_ties_go_to_lower_log_loss():
    """Both models get every row right (equal accuracy); the better calibrated one wins, and blending in
    the other would only raise the log loss, so it stays out."""
    y = np.array([0, 1, 2, 1, 0, 2, 2, 1] * 10)
    sure = _onehot_proba(y, 3, 0.9)
    unsure = _onehot_proba(y, 3, 0.5)
    assert caruana_weights({"unsure": unsure, "sure": sure}, y, "classification", "accuracy") == {"sure": 1.0}


def test_accuracy_gain_beats_log_loss():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 400)
    right = _onehot_proba(y, 2, np.where(rng.random(400) < 0.9, 0.6, 0.4))  # 90% right, timid
    wrong = _onehot_proba(y, 2, np.where(rng.random(400) < 0.7, 0.99, 0.01))  # 70% right, sure of itself
    w = caruana_weights({"wrong": wrong, "right": right}, y, "classification", "accuracy")
    assert max(w, key=w.get) == "right"


def test_single_member_and_binary_metrics():
    y = np.array([0, 1] * 20)
    p = _onehot_proba(y, 2, 0.7)
    for metric in ("accuracy", "balanced_accuracy", "log_loss", "roc_auc", "f1"):
        assert caruana_weights({"only": p}, y, "classification", metric) == {"only": 1.0}


def test_weights_are_selection_counts_over_the_best_prefix():
    rng = np.random.default_rng(4)
    y = rng.normal(0, 1, 300)
    preds = {f"m{i}": y + rng.normal(0, 0.5 + 0.2 * i, 300) for i in range(4)}
    w = caruana_weights(preds, y, "regression", "r2", rounds=25)
    assert len(w) >= 2
    # weight = times selected / rounds kept (AutoGluon's use_best: the prefix with the best score)
    assert any(all(abs(v * size - round(v * size)) < 1e-9 for v in w.values()) for size in range(1, 26))
    w3 = caruana_weights(preds, y, "regression", "r2", rounds=3)
    assert any(all(abs(v * size - round(v * size)) < 1e-9 for v in w3.values()) for size in range(1, 4))


def test_non_finite_member_is_never_selected():
    y = np.arange(50, dtype=float)
    broken = y.copy()
    broken[3] = np.nan
    assert caruana_weights({"broken": broken, "ok": y + 1}, y, "regression", "r2") == {"ok": 1.0}
    with pytest.raises(DataError, match="non-finite"):
        caruana_weights({"broken": broken}, y, "regression", "r2")


@pytest.mark.parametrize("oof, y, kind, metric, message", [
    ({}, np.zeros(3), "regression", "r2", "no out-of-fold"),
    ({"a": np.zeros(4)}, np.zeros(3), "regression", "r2", "rows"),
    ({"a": np.zeros((3, 2))}, np.zeros(3), "regression", "r2", "shape"),
    ({"a": np.zeros(3)}, np.zeros(3, int), "classification", "accuracy", "shape"),
    ({"a": np.full((3, 2), 0.5), "b": np.full((3, 3), 1 / 3)}, np.zeros(3, int), "classification", "accuracy", "shape"),
    ({"a": np.zeros(3)}, np.zeros(3), "regression", "accuracy", "metric"),
    ({"a": np.zeros(3)}, np.zeros(3), "regression", "nonsense", "metric"),
    ({"a": np.zeros(3)}, np.zeros(3), "ranking", "r2", "kind"),
])
def test_bad_input_is_refused(oof, y, kind, metric, message):
    with pytest.raises((ConfigError, DataError), match=message):
        caruana_weights(oof, y, kind, metric)


def test_rounds_must_be_positive():
    with pytest.raises(ConfigError, match="rounds"):
        caruana_weights({"a": np.zeros(3)}, np.zeros(3), "regression", "r2", rounds=0)


# ------------------------------------------------------------------------------------- EnsembleAdapter


@pytest.fixture(scope="module")
def cls_members():
    rng = np.random.default_rng(5)
    X = rng.normal(0, 1, (240, 5))
    y = (X[:, 0] + X[:, 1] ** 2 + rng.normal(0, 0.3, 240) > 1).astype(np.int64) + (X[:, 2] > 0.8)
    task = TaskSpec("classification", n_classes=3)
    cfg = TrainConfig(epochs=3, n_estimators=15, hidden_sizes=(16,), progress=False)
    lin = LinearAdapter(task, cfg).fit(X, y)
    gbm = LightGBMAdapter(task, cfg).fit(X.astype(np.float32), y)
    mlp = MLPAdapter(task, cfg).fit(X.astype(np.float32), y, None, None)
    return task, cfg, X, y, {"linear": lin, "lightgbm": gbm, "mlp": mlp}


def test_prediction_is_the_weighted_sum_with_each_members_input_type(cls_members):
    task, cfg, X, y, members = cls_members
    weights = {"linear": 0.5, "lightgbm": 0.3, "mlp": 0.2}
    ens = EnsembleAdapter.from_members(task, cfg, members, weights)
    expected = (0.5 * members["linear"].predict_output(X)  # float64: linear members compute in double
                + 0.3 * members["lightgbm"].predict_output(X.astype(np.float32))
                + 0.2 * members["mlp"].predict_output(X.astype(np.float32)).astype(np.float64))
    np.testing.assert_allclose(ens.predict_output(X), expected, rtol=0, atol=1e-12)
    assert ens.predict_output(X).shape == (len(X), 3)
    np.testing.assert_allclose(ens.predict_output(X).sum(axis=1), 1.0, atol=1e-9)
    assert ens.training_flops_ == sum(m.training_flops_ for m in members.values()) > 0
    d = ens.describe()
    assert [(m["name"], m["family"], m["weight"]) for m in d["members"]] == [
        ("linear", "linear", 0.5), ("lightgbm", "lightgbm", 0.3), ("mlp", "mlp", 0.2)]


def test_files_roundtrip_without_code(cls_members):
    task, cfg, X, y, members = cls_members
    ens = EnsembleAdapter.from_members(task, cfg, members, {"lightgbm": 2.0, "mlp": 1.0, "linear": 1.0})
    meta, files = ens.to_files()
    json.dumps(meta)  # plain JSON
    assert meta["family"] == "ensemble"
    assert [m["weight"] for m in meta["members"]] == [0.5, 0.25, 0.25]  # normalized, in the weights' order
    assert all(name.startswith("ens") for name in files)
    assert len(files) == 3 and len(set(files)) == 3
    for m in meta["members"]:
        assert all(n.startswith(m["prefix"]) for n in files if n.startswith(m["prefix"]))
    back = adapter_class("ensemble").from_files(task, meta, files.__getitem__)
    np.testing.assert_array_equal(back.predict_output(X), ens.predict_output(X))
    assert [m["name"] for m in back.describe()["members"]] == ["lightgbm", "mlp", "linear"]


def test_zero_weight_members_are_dropped_and_bad_weights_refused(cls_members):
    task, cfg, X, y, members = cls_members
    ens = EnsembleAdapter.from_members(task, cfg, members, {"linear": 1.0, "mlp": 0.0})
    assert [m["name"] for m in ens.describe()["members"]] == ["linear"]
    np.testing.assert_allclose(ens.predict_output(X), members["linear"].predict_output(X))
    with pytest.raises(ConfigError, match="svm"):
        EnsembleAdapter.from_members(task, cfg, members, {"svm": 1.0})
    with pytest.raises(ConfigError, match="negative|finite"):
        EnsembleAdapter.from_members(task, cfg, members, {"linear": -0.5, "mlp": 1.5})
    with pytest.raises(ConfigError, match="positive"):
        EnsembleAdapter.from_members(task, cfg, members, {"linear": 0.0})
    with pytest.raises(ConfigError, match="name"):
        EnsembleAdapter.from_members(task, cfg, {"../x": members["linear"]}, {"../x": 1.0})
    with pytest.raises(ConfigError, match="ensemble"):
        inner = EnsembleAdapter.from_members(task, cfg, members, {"linear": 1.0})
        EnsembleAdapter.from_members(task, cfg, {"inner": inner}, {"inner": 1.0})


def test_two_members_of_one_family_keep_their_own_files(cls_members):
    task, cfg, X, y, members = cls_members
    other = LightGBMAdapter(task, cfg.replace(num_leaves=4)).fit(X.astype(np.float32), y)
    ens = EnsembleAdapter.from_members(task, cfg, {"lightgbm": members["lightgbm"], "lightgbm_small": other},
                                       {"lightgbm": 0.5, "lightgbm_small": 0.5})
    meta, files = ens.to_files()
    assert len(files) == 2
    back = EnsembleAdapter.from_files(task, meta, files.__getitem__)
    np.testing.assert_array_equal(back.predict_output(X), ens.predict_output(X))


def test_an_ensemble_is_not_fitted_directly(cls_members):
    task, cfg, X, y, _ = cls_members
    with pytest.raises(ConfigError, match="--model auto"):
        EnsembleAdapter(task, cfg).fit(X, y, None, None)
    with pytest.raises(NotFittedError, match="from_members"):
        EnsembleAdapter(task, cfg).predict_output(X)


def test_ensemble_loads_by_family_but_is_not_a_trainable_model():
    assert adapter_class("ensemble") is EnsembleAdapter
    with pytest.raises(ConfigError, match="model"):
        TrainConfig(model="ensemble")
    with pytest.raises(ConfigError) as err:
        adapter_class("svm")
    assert "ensemble" not in str(err.value)  # the error lists what --model accepts
    assert "ensemble" in FAMILIES


def test_damaged_member_meta_is_one_clear_error(cls_members):
    task, cfg, X, y, members = cls_members
    meta, files = EnsembleAdapter.from_members(task, cfg, members, {"linear": 1.0}).to_files()
    bad = json.loads(json.dumps(meta))
    bad["members"][0]["family"] = "ensemble"
    with pytest.raises(Exception, match="ensemble"):
        EnsembleAdapter.from_files(task, bad, files.__getitem__)
    bad = json.loads(json.dumps(meta))
    del bad["members"]
    with pytest.raises(Exception, match="members"):
        EnsembleAdapter.from_files(task, bad, files.__getitem__)


def test_regression_members():
    rng = np.random.default_rng(6)
    X = rng.normal(0, 1, (200, 4))
    y = 3 * X[:, 0] - X[:, 1] ** 2 + rng.normal(0, 0.1, 200) + 50
    task, cfg = TaskSpec("regression"), TrainConfig(n_estimators=20, progress=False)
    lin, gbm = LinearAdapter(task, cfg).fit(X, y), LightGBMAdapter(task, cfg).fit(X.astype(np.float32), y)
    ens = EnsembleAdapter.from_members(task, cfg, {"linear": lin, "lightgbm": gbm}, {"linear": 0.25, "lightgbm": 0.75})
    out = ens.predict_output(X)
    assert out.shape == (200,)
    np.testing.assert_allclose(out, 0.25 * lin.predict_output(X) + 0.75 * gbm.predict_output(X.astype(np.float32)))
