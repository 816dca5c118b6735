"""The forecast selection rule on constructed per-fold validation MASE, and the combination it picks when the
validation folds cannot separate the statistical models: through `fulcrum train` on a short real annual
series (52 years, 2 validation folds), its graph computes the members' forecasts' mean weighted
by 1 / validation MASE^2."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest

from fulcrum.artifact import Registry
from fulcrum.cli import main
from fulcrum.tasks.forecast._fit import combination_weights, select, separating_t
from fulcrum.tasks.forecast._models import Combination, Spec, make_model

ORDER = ["seasonal_naive", "drift", "ets", "arima", "ar", "linear", "lightgbm", "mlp"]


def test_the_separating_multiple_is_students_t_for_the_number_of_folds():
    # the standard error of a mean gap comes from k fold differences: t at 97.5% with k - 1 degrees of freedom
    assert separating_t(2) == pytest.approx(12.706, abs=1e-3)
    assert separating_t(4) == pytest.approx(3.182, abs=1e-3)
    assert separating_t(6) == pytest.approx(2.571, abs=1e-3)
    assert separating_t(200) == 2.0  # never under the fixed 2 of the tabular race


def test_two_validation_folds_that_separate_nothing_leave_the_choice_to_arima():
    # a short annual series: two validation folds; arima has the lowest mean, but with one degree of freedom no
    # gap separates (t = 12.7): the folds cannot tell the candidates apart, and arima, whose form was chosen by
    # AICc over the whole history, is kept (the old rule, 2 SE: ar and linear "separated", then a mean of drift,
    # ets and arima; before that the simplest, seasonal_naive, three times arima's validation error)
    per_fold = {"seasonal_naive": [0.05, 1.20], "drift": [0.90, 0.50], "ets": [0.20, 1.90], "arima": [0.10, 0.31],
                "ar": [3.0, 4.5], "linear": [0.9, 1.6]}
    fam, why, members = select(ORDER[:6], per_fold)
    assert (fam, members) == ("arima", ["arima"]), why
    assert "12.7 SE" in why and "2 validation folds" in why and "AICc" in why
    assert "ar, linear within noise" in why
    # arima within noise but not the lowest: still arima, and the reason says so
    fam, why, _ = select(ORDER[:6], {**per_fold, "drift": [0.08, 0.30]})
    assert fam == "arima" and "within noise of the lowest validation MASE (drift 0.1900" in why


def test_with_several_series_arima_is_a_combination_member_not_the_choice():
    # arima is fitted on the longest series only: its AICc choice says nothing about the others, so a tie with
    # several series gives the combination of the tied statistical models, arima among them
    per_fold = {"seasonal_naive": [1.9, 2.2, 2.0, 2.1], "drift": [1.0, 1.3, 0.9, 1.2], "ets": [1.1, 1.2, 1.0, 1.1],
                "arima": [0.9, 1.25, 1.0, 1.1], "ar": [2.5, 2.6, 2.4, 2.7]}
    assert select(ORDER[:5], per_fold)[0] == "arima"
    fam, why, members = select(ORDER[:5], per_fold, one_series=False)
    assert (fam, members) == ("combination", ["drift", "ets", "arima"]), why


def test_drift_and_ets_tied_with_arima_worse_beyond_noise_give_their_combination():
    # six folds: drift and ets cannot be told apart, arima is worse than both in every fold by a steady margin
    rng = np.random.default_rng(3)
    base = 1.0 + 0.1 * rng.standard_normal(6)
    per_fold = {"seasonal_naive": list(base + 0.9), "drift": list(base + 0.02 * rng.standard_normal(6)),
                "ets": list(base + 0.02 * rng.standard_normal(6)), "arima": list(base + 0.4 + 0.01 * rng.standard_normal(6)),
                "ar": list(base + 0.6)}
    fam, why, members = select(ORDER[:5], per_fold)
    assert (fam, members) == ("combination", ["drift", "ets"]), why
    assert "cannot tell them apart" in why and "6 validation folds" in why and "2.57 SE" in why


def test_a_statistical_model_that_separates_stays_alone():
    # six folds: arima beats every other statistical model by a consistent margin -> arima, not a mean with
    # candidates the folds show to be worse
    rng = np.random.default_rng(0)
    base = 1.0 + 0.1 * rng.standard_normal(6)
    per_fold = {"seasonal_naive": list(base + 0.8), "drift": list(base + 0.5), "ets": list(base + 0.3),
                "arima": list(base), "ar": list(base + 0.6), "linear": list(base + 0.7)}
    fam, why, members = select(ORDER[:6], per_fold)
    assert (fam, members) == ("arima", ["arima"]), why
    assert "lowest validation MASE" in why


def test_one_tied_statistical_candidate_is_kept_as_the_simplest():
    # ar is best; ets alone among the statistical models is within noise of it: ets (simpler than ar), alone
    per_fold = {"seasonal_naive": [2.0, 2.1, 2.2, 2.0, 2.1, 2.2], "drift": [1.9, 2.0, 2.0, 1.8, 1.9, 2.1],
                "ets": [1.0, 1.3, 0.8, 1.1, 1.2, 0.9], "arima": [1.6, 1.7, 1.6, 1.5, 1.6, 1.7],
                "ar": [1.1, 1.0, 1.0, 1.0, 1.1, 1.0]}
    fam, why, members = select(ORDER[:5], per_fold)
    assert (fam, members) == ("ets", ["ets"]), why
    assert "within noise" in why


def test_the_combination_is_the_mean_of_its_members_as_one_affine_map():
    rng = np.random.default_rng(1)
    spec = Spec(lags=12, horizon=4, season=4, fourier=2)
    y = np.cumsum(rng.normal(size=200)) + 5 * np.sin(np.arange(200) * np.pi / 2)
    o = np.arange(12, 196)
    W, Y, k = y[o[:, None] + np.arange(-12, 0)], y[o[:, None] + np.arange(4)], o
    members = [make_model(f, spec, None).fit(W, k, Y) for f in ("seasonal_naive", "drift", "ets", "arima")]
    c = Combination(spec, members)
    want = np.mean([m.predict(W, k) for m in members], axis=0)
    assert np.abs(c.predict(W, k) - want).max() < 1e-9 * np.abs(want).max()
    w = np.array([0.1, 0.2, 0.3, 0.4])  # weighted: the weighted mean of the members' forecasts
    want = np.tensordot(w, [m.predict(W, k) for m in members], axes=1)
    assert np.abs(Combination(spec, members, 2 * w).predict(W, k) - want).max() < 1e-9 * np.abs(want).max()
    with pytest.raises(ValueError, match="one non-negative number per member"):
        Combination(spec, members, [1.0, -1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="not an affine map"):
        Combination(spec, [members[0], make_model("linear", spec, type("C", (), {"ridge": 1.0})()).fit(W, k, Y)])


@pytest.fixture(scope="module")
def fertility_cli(tmp_path_factory):
    # New Zealand's fertility rate 1960-2011 (statsmodels' fertility data, one of the design series): 52 annual
    # values, 6 folds of 5 years, the last 4 held out: 2 validation folds, where arima is worse beyond noise
    # (even at t = 12.7) and drift and ets cannot be told apart
    from statsmodels.datasets import fertility

    d = fertility.load_pandas().data
    years = [str(y) for y in range(1960, 2012)]
    v = d.loc[d["Country Code"] == "NZL", years].iloc[0].to_numpy(np.float64)
    root = tmp_path_factory.mktemp("fert")
    pd.DataFrame({"date": [f"{y}-01-01" for y in years], "fertility": v}).to_csv(root / "f.csv", index=False)
    assert main(["train", str(root / "f.csv"), "--target", "fertility", "--name", "f", "--registry",
                 str(root / "reg"), "--no-progress", "--set", "folds=6", "--set", "test_folds=4"]) == 0
    return v, Registry(root / "reg").load("f")


def test_short_series_gets_the_combination_and_its_graph_is_the_members_mean(fertility_cli):
    v, art = fertility_cli
    m = art.manifest
    c = m["metrics"]["candidates"]
    order = [f for f in ORDER if f in c]
    assert all(len(c[f]["validation_folds"]) == 2 for f in order)
    fam, why, members = select(order, {f: c[f]["validation_folds"] for f in order})  # the rule on the recorded folds
    assert (m["model"]["family"], m["model"]["members"]) == (fam, members)
    assert m["model"]["selection"].startswith(why + "; weighted by inverse error variance")
    assert fam == "combination" and len(members) >= 2
    # the weights: 1 / mean validation MASE^2, normalised, written out here
    inv = np.array([1 / np.mean(c[f]["validation_folds"]) ** 2 for f in members])
    w = inv / inv.sum()
    assert np.allclose(m["model"]["weights"], w)
    assert np.allclose(combination_weights({f: c[f]["validation_folds"] for f in members}, members), w)
    assert abs(w[0] - w[-1]) > 0.01  # the members differ on validation: not equal weights
    # never worse than its members' weighted average validation error (the weighted mean of forecasts, origin by
    # origin), and so never worse than their plain average (the weights fall as the error grows)
    assert c["combination"]["validation"]["mase"] <= np.dot(w, [c[f]["validation"]["mase"] for f in members]) + 1e-9
    assert c["combination"]["validation"]["mase"] <= np.mean([c[f]["validation"]["mase"] for f in members]) + 1e-9
    # the graph: the weighted mean of the members, each refitted here on every window of the series
    t = m["task"]
    L, H = t["lags"], t["horizon"]
    spec = Spec(L, H, t["season"], m["model"]["spec"]["fourier"])
    o = np.arange(L, len(v) - H + 1)
    W, Y = v[o[:, None] + np.arange(-L, 0)], v[o[:, None] + np.arange(H)]
    want = np.tensordot(w, [make_model(f, spec, None).fit(W, o, Y).predict(W, o) for f in members], axes=1)
    sess = ort.InferenceSession(art.read_bytes("model.onnx"), providers=["CPUExecutionProvider"])
    start = np.zeros((len(W), 1), np.int64) + m["model"]["t0"]
    got = sess.run(["forecast"], {"window": W.astype(np.float32), "start": start,
                                  "step": np.ones((len(W), 1), np.int64)})[0]
    assert np.abs(got - want).max() < 1e-4 * np.abs(want).max()
    assert m["onnx"]["windows_off"] == 0
    assert set(m["model"]["describe"]["members"]) == set(members)
