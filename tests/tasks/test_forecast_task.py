"""The forecast task on real series: better than seasonal naive on the built-ins, the graph equal to the model,
intervals calibrated and measured, requests checked, bad tables refused through the CLI with nothing written."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest

from fulcrum.artifact import Registry
from fulcrum.cli import main
from fulcrum.data import load_builtin
from fulcrum.errors import DataError
from fulcrum.tasks import detect_task, get_task


@pytest.fixture(scope="module")
def task():
    return get_task("forecast")


@pytest.fixture(scope="module")
def elnino(task):
    # monthly sea temperatures, 61 years: season 12, horizon 12; the ridge model (fast) against the baseline
    return task.fit(load_builtin("elnino"), {"target": "temperature", "model": "linear"})


@pytest.fixture(scope="module")
def co2(task):
    # weekly CO2, the last 20 years (1,040 weeks with missing weeks): season 52, horizon 13
    frame = load_builtin("co2").tail(1040).reset_index(drop=True)
    return task.fit(frame, {"target": "co2", "model": "linear"})


@pytest.mark.parametrize("name", ["elnino", "co2"])
def test_beats_seasonal_naive_by_backtest_mase(name, request):
    m = request.getfixturevalue(name).manifest
    c = m["metrics"]["candidates"]
    assert m["model"]["family"] == "linear"
    for split in ("validation", "test"):
        assert c["linear"][split]["mase"] < c["seasonal_naive"][split]["mase"], (split, c)
    assert m["metrics"]["primary"] == {"name": "mase", "value": c["linear"]["test"]["mase"],
                                       "split": "test (held-out backtest folds)"}


def test_co2_missing_weeks_are_filled_and_reported(task):
    frame = load_builtin("co2")
    assert frame["co2"].isna().sum() == 59
    notes = []
    from fulcrum.tasks.forecast._data import prepare_series

    series, info = prepare_series(frame, "co2", None, None, None, notes.append)
    assert info["freq"] == "W-SAT" and info["filled"]["missing_values"] == 59
    assert np.isfinite(series[0].values).all() and any("59 missing value(s) filled" in n for n in notes)


def test_graph_equals_the_model_on_backtest_windows(elnino):
    tr = elnino
    model, (W, _, k) = tr.extra["model"], tr.extra["windows"]
    t0, step_s = tr.manifest["model"]["t0"], tr.manifest["model"]["step_s"]
    sess = ort.InferenceSession(tr.files["model.onnx"])
    start = (t0 + np.round(k * step_s).astype(np.int64)).reshape(-1, 1)
    step = np.full((len(W), 1), 3, np.int64)
    value, lo, hi, forecast, lower, upper = sess.run(["value", "lower", "upper", "forecast", "forecast_lower", "forecast_upper"],
                                             {"window": W.astype(np.float32), "start": start, "step": step})
    ref = model.predict(W, k)
    assert np.abs(forecast - ref).max() < 1e-4 * np.abs(ref).max()
    assert np.allclose(value, forecast[:, 2]) and (lower <= forecast).all() and (forecast <= upper).all()
    assert np.allclose(lo, lower[:, 2]) and np.allclose(hi, upper[:, 2])
    assert tr.manifest["onnx"]["windows_off"] == 0


COVERAGE_BAND = 0.09  # stated: 90% intervals cover 81%..99% of the held-out backtest points


@pytest.mark.parametrize("name", ["elnino", "co2"])
def test_interval_coverage_on_held_out_origins_is_within_the_band(name, request):
    # calibrated on the validation folds' origins (every origin, residuals scaled per step and pooled), measured
    # on every origin of the 2 held-out folds: the first held-out fold's model from each of its H origins, the last
    # from its one (12 + 1 origins x 12 steps for El Nino; 13 + 1 x 13 for co2)
    m = request.getfixturevalue(name).manifest
    cov, H = m["metrics"]["coverage"], m["task"]["horizon"]
    assert cov["nominal"] == 0.9 and cov["points"] == (H + 1) * H and len(cov["per_step"]) == H
    assert abs(cov["measured"] - 0.9) <= COVERAGE_BAND, cov
    q = m["model"]["interval_quantiles"]
    assert all(b >= a for a, b in zip(q, q[1:])) and q[-1] > q[0]  # wider further ahead


def test_intervals_are_never_narrower_than_the_models_own_training_errors(task):
    # fertility 1960-2011 (design series), 6 folds of 5 years, 4 held out: on Albania the split-conformal width
    # from 10 validation origins covered 35% of the held-out points; each step is now at least the same quantile
    # of the model's own errors on its training windows
    from statsmodels.datasets import fertility

    from fulcrum.tasks.forecast._fit import interval_coverage, interval_quantiles

    d = fertility.load_pandas().data
    years = [str(y) for y in range(1960, 2012)]

    def fit(code):
        v = d.loc[d["Country Code"] == code, years].iloc[0].to_numpy(np.float64)
        return task.fit(pd.DataFrame({"date": [f"{y}-01-01" for y in years], "fertility": v}),
                        {"target": "fertility", "folds": 6, "test_folds": 4, "progress": False})

    # Senegal: the in-sample width is the wider at every step, and it is what the package ships
    sen = fit("SEN")
    parts, q = sen.manifest["model"]["interval_parts"], np.array(sen.manifest["model"]["interval_quantiles"])
    assert np.all(np.array(parts["in_sample"]) > np.array(parts["conformal"]))
    assert np.allclose(q, parts["in_sample"])
    # ... in the graph too: forecast +- q x the window's mean absolute step
    sess = ort.InferenceSession(sen.files["model.onnx"], providers=["CPUExecutionProvider"])
    Wl = sen.extra["windows"][0][-5:].astype(np.float32)
    f, up = sess.run(["forecast", "forecast_upper"], {"window": Wl, "step": np.ones((5, 1), np.int64),
                                                      "start": np.full((5, 1), sen.manifest["model"]["t0"], np.int64)})
    s_win = np.mean(np.abs(np.diff(Wl, axis=1)), axis=1, keepdims=True)
    assert np.allclose(up - f, q[None, :] * s_win, rtol=1e-4, atol=1e-6)
    tr = fit("ALB")
    m = tr.manifest
    parts = m["model"]["interval_parts"]
    assert np.allclose(m["model"]["interval_quantiles"], np.maximum(parts["conformal"], parts["in_sample"]))
    # the in-sample part: the final model's errors on every training window over the window's mean absolute step
    model, (W, Y, k) = tr.extra["model"], tr.extra["windows"]
    r = np.sort(np.abs(Y - model.predict(W, k)) / np.mean(np.abs(np.diff(W, axis=1)), axis=1, keepdims=True), axis=0)
    want = np.maximum.accumulate(r[int(np.ceil((len(r) + 1) * 0.9)) - 1])
    assert np.allclose(parts["in_sample"], want)
    # the measured coverage uses it: more held-out points inside than the conformal width alone
    fl, H = tr.extra["backtest"]["folds"][m["model"]["family"]], m["task"]["horizon"]
    alone, _ = interval_coverage([f["cal"] for f in fl[2:]], interval_quantiles([f["cal"] for f in fl[:2]], 0.9, before=4 * H))
    assert alone.mean() < 0.4 and m["metrics"]["coverage"]["measured"] > alone.mean() + 0.1, (alone, m["metrics"]["coverage"])


def test_requests_future_and_stored_times_and_refusals(task, elnino):
    from fulcrum.tasks.forecast._codec import ForecastCodec
    import json

    m = elnino.manifest
    codec = ForecastCodec(m, json.loads(elnino.files["history.json"]))
    sess = ort.InferenceSession(elnino.files["model.onnx"])
    feeds = codec.encode_frame(pd.DataFrame({"date": ["2011-01-01", "2011-12-01"]}))
    assert feeds["step"].ravel().tolist() == [1, 12]
    out = sess.run(["value", "forecast"], feeds)
    assert np.allclose(out[0], [out[1][0, 0], out[1][1, 11]])
    # a stored time is forecast from its backtest fold's origin: the last 12 months from 12 months before
    feeds = codec.encode_frame(pd.DataFrame({"date": ["2010-01-01", "2010-12-01"]}))
    assert feeds["step"].ravel().tolist() == [1, 12]
    with pytest.raises(DataError, match="not one of the 12 steps"):
        codec.encode_frame(pd.DataFrame({"date": ["2012-01-01"]}))  # beyond the horizon
    with pytest.raises(DataError, match="must be a date"):
        codec.encode_frame(pd.DataFrame({"date": ["soon"]}))


def test_detection(task):
    frame = load_builtin("nile")
    assert detect_task(frame, "volume") is task
    assert detect_task(load_builtin("diabetes"), "target").name == "tabular"


@pytest.mark.parametrize("table, message", [
    (pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": [1.0, 2.0, 3.0, 4.0]}), "No timestamp column"),
    (pd.DataFrame({"date": ["2020-01-01"], "y": [1.0]}), "a history of at least 3 time steps"),
    (pd.DataFrame({"date": ["2020-01-01", "2020-01-02", "2020-01-02", "2020-01-03"], "y": [1.0, 2.0, 3.0, 4.0]}),
     "Duplicate timestamps"),
    (pd.DataFrame({"date": ["2020-01-01", "2020-01-02", "2020-01-09", "2020-02-13", "2020-05-02", "2020-05-03"],
                   "y": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]}), "irregular"),
    # history shorter than the window + backtest folds it needs
    (pd.DataFrame({"date": pd.date_range("2020-01-01", periods=20, freq="D").strftime("%Y-%m-%d"),
                   "y": np.arange(20.0)}), "The shortest series has 20 steps"),
])
def test_bad_tables_through_the_cli(table, message, tmp_path, capsys):
    path = tmp_path / "series.csv"
    table.to_csv(path, index=False)
    root = tmp_path / "registry"
    rc = main(["train", str(path), "--target", "y", "--task", "forecast", "--name", "bad", "--no-progress",
               "--registry", str(root)])
    err = capsys.readouterr().err
    assert rc != 0 and message in err, err
    assert not root.exists() or Registry(root).list() == []
    assert not (root / "bad").exists()


@pytest.fixture(scope="module")
def elnino_auto(task):
    # every candidate (El Nino's first backtest fold trains on 625 windows: lightgbm and mlp are in); fewer trees
    return task.fit(load_builtin("elnino"), {"target": "temperature", "lgbm_trees": 50})


def test_auto_chooses_among_every_candidate_by_validation_only(elnino_auto):
    m = elnino_auto.manifest
    c = m["metrics"]["candidates"]
    order = ["seasonal_naive", "drift", "ets", "arima", "ar", "linear", "lightgbm", "mlp"]
    assert set(c) - {"combination"} == set(order)
    family, members = _rule(c, order)  # from validation folds only, never the test folds
    assert (m["model"]["family"], m["model"]["members"]) == (family, members)
    assert c[family]["test"]["mase"] < c["seasonal_naive"]["test"]["mase"]
    assert m["onnx"]["windows_off"] == 0


COMBINED = ["drift", "ets"]  # arima, when tied, is kept alone


def _rule(c: dict, order: list) -> tuple[str, list]:
    """The rule, written out from the recorded per-fold validation MASE: the candidates whose paired fold
    differences to the lowest-mean candidate have a mean gap within max(t * standard error, 0.005) are tied, t
    Student's at 97.5% with folds - 1 degrees of freedom (at least 2); arima when tied; else two or more tied
    statistical models (drift, ets) give their combination; else the simplest tied candidate is kept."""
    from scipy import stats

    folds = {f: np.asarray(c[f]["validation_folds"]) for f in order}
    best = min(order, key=lambda f: (folds[f].mean(), order.index(f)))
    t = max(2.0, stats.t.ppf(0.975, len(folds[best]) - 1))
    tied = []
    for f in order:
        d = folds[f] - folds[best]
        if f == best or d.mean() <= max(t * d.std(ddof=1) / np.sqrt(len(d)), 0.005):
            tied.append(f)
    if "arima" in tied:
        return "arima", ["arima"]
    stat = [f for f in tied if f in COMBINED]
    return ("combination", stat) if len(stat) >= 2 else (tied[0], [tied[0]])


@pytest.fixture(scope="module")
def nile_cli(tmp_path_factory):
    # the Nile's 100 years through `fulcrum train`, 10 folds (the last 4 held out): every candidate, short series
    root = tmp_path_factory.mktemp("nile")
    load_builtin("nile").to_csv(root / "nile.csv", index=False)
    assert main(["train", str(root / "nile.csv"), "--target", "volume", "--name", "n", "--registry", str(root / "reg"),
                 "--no-progress", "--set", "folds=10", "--set", "test_folds=4"]) == 0
    return Registry(root / "reg").load("n").manifest


def test_auto_keeps_arima_when_the_validation_folds_cannot_separate_the_lowest_from_it(nile_cli):
    m = nile_cli
    c = m["metrics"]["candidates"]
    order = ["seasonal_naive", "drift", "ets", "arima", "ar", "linear", "lightgbm", "mlp"]
    assert sorted(set(c) - {"combination"}) == sorted(order)  # lightgbm and mlp are candidates on 100 years too
    assert all(len(c[f]["validation_folds"]) == 6 for f in order)  # 10 folds - 4 held out
    lowest = min(order, key=lambda f: np.mean(c[f]["validation_folds"]))
    assert (m["model"]["family"], m["model"]["members"]) == _rule(c, order)
    # here the lowest mean (ar) does not separate from arima over 6 folds (t = 2.57): arima's own choice stands
    assert lowest != "arima" and m["model"]["family"] == "arima", m["model"]["selection"]
    assert f"within noise of the lowest validation MASE ({lowest}" in m["model"]["selection"]
    assert "2.57 SE" in m["model"]["selection"]


def test_a_candidate_that_beats_the_simpler_ones_beyond_noise_is_chosen(tmp_path):
    # a noisy AR(2) oscillation (period ~11 steps, like sunspots): the last value and smoothing miss every swing,
    # a regression on the window does not; its gap over seasonal_naive and ets separates over the validation folds
    rng = np.random.default_rng(0)
    y = np.zeros(160)
    for t in range(2, len(y)):
        y[t] = 1.6 * y[t - 1] - 0.9 * y[t - 2] + rng.normal()
    frame = pd.DataFrame({"date": pd.date_range("1850-01-01", periods=len(y), freq="YS").strftime("%Y-%m-%d"),
                          "value": 50 + y})
    frame.to_csv(tmp_path / "ar2.csv", index=False)
    assert main(["train", str(tmp_path / "ar2.csv"), "--target", "value", "--name", "a", "--no-progress",
                 "--registry", str(tmp_path / "reg")]) == 0
    m = Registry(tmp_path / "reg").load("a").manifest
    c = m["metrics"]["candidates"]
    assert m["model"]["family"] not in ("seasonal_naive", "ets", "combination"), m["model"]
    assert (m["model"]["family"], m["model"]["members"]) == _rule(
        c, ["seasonal_naive", "drift", "ets", "arima", "ar", "linear", "lightgbm", "mlp"])


def test_min_windows_ml_is_an_optional_floor(task):
    notes = []
    m = task.fit(load_builtin("nile"), {"target": "volume", "min_windows_ml": 500}, log=notes.append).manifest
    assert set(m["metrics"]["candidates"]) == {"seasonal_naive", "drift", "ets", "arima", "ar", "linear"}
    assert any("lightgbm and mlp are not candidates" in n and "min_windows_ml=500" in n for n in notes)


def test_mlp_is_trained_by_the_shared_trainer_and_its_graph_equals_it(elnino, monkeypatch):
    from fulcrum.tasks.forecast._graph import build_graph
    from fulcrum.tasks.forecast._models import MLPAR
    from fulcrum.training import Trainer

    results = []
    fit = Trainer.fit

    def spy(self, *a, **kw):
        results.append(fit(self, *a, **kw))
        return results[-1]

    monkeypatch.setattr(Trainer, "fit", spy)
    spec, (W, Y, k) = elnino.extra["spec"], elnino.extra["windows"]
    model = MLPAR(spec).fit(W, k, Y)
    (res,) = results
    assert res.history[-1]["train_loss"] < 0.5 * res.history[0]["train_loss"]  # gradient descent made progress
    t0, step_s = elnino.manifest["model"]["t0"], elnino.manifest["model"]["step_s"]
    sess = ort.InferenceSession(build_graph(model, spec, t0, step_s, np.ones(spec.horizon)))
    start = (t0 + np.round(k * step_s).astype(np.int64)).reshape(-1, 1)
    got = sess.run(["forecast"], {"window": W.astype(np.float32), "start": start,
                                  "step": np.ones((len(W), 1), np.int64)})[0]
    ref = model.predict(W, k)
    assert np.abs(got - ref).max() < 1e-4 * np.abs(ref).max()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("fc")
    src = root / "elnino.csv"
    frame = load_builtin("elnino")
    frame.to_csv(src, index=False)
    rc = main(["train", str(src), "--target", "temperature", "--task", "forecast", "--name", "fc", "--no-progress",
               "--registry", str(root / "reg"), "--set", "model=ar"])
    assert rc == 0
    return Registry(root / "reg"), frame


def test_server_history_shorthand_returns_the_forecast_with_intervals(served):
    from test_every_task import Server

    registry, frame = served
    values = frame["temperature"].tolist()
    with Server("fc", registry) as c:
        # the stored history's own last values: the same forecast as asking for the 12 months after it by time
        r = c.post("/v1/models/fc/predict", json={"history": values[-30:]})
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["predictions"]) == len(body["lower"]) == len(body["upper"]) == 12
        assert all(lo < p < hi for lo, p, hi in zip(body["lower"], body["predictions"], body["upper"]))
        times = [f"2011-{m:02d}-01" for m in range(1, 13)]
        by_time = c.post("/v1/models/fc/predict", json={"records": [{"date": t} for t in times]}).json()
        assert np.allclose(body["predictions"], by_time["predictions"], rtol=1e-6)
        assert np.allclose(body["upper"], by_time["upper"], rtol=1e-6)
        # another history (shifted up by 1 degree): the forecast moves with it; a shorter horizon; times given
        r = c.post("/v1/models/fc/predict", json={"history": [v + 1 for v in values[-24:]], "horizon": 3,
                                                  "times": [str(t.date()) for t in pd.date_range("1990-01-01", periods=24, freq="MS")]})
        assert r.status_code == 200, r.text
        assert len(r.json()["predictions"]) == 3
        assert not np.allclose(r.json()["predictions"], body["predictions"][:3])
        # v2 is as it was: one value per time asked
        r = c.post("/v2/models/fc/infer", json={"inputs": [{"name": "date", "datatype": "BYTES", "shape": [2],
                                                            "data": times[:2]}]})
        assert r.status_code == 200 and r.json()["outputs"][0]["data"] == pytest.approx(by_time["predictions"][:2])
        for req, needle in [
            ({"history": values[-30:], "horizon": 0}, "from 1 to 12"),
            ({"history": values[-30:], "horizon": 13}, "from 1 to 12"),
            ({"history": values[-5:]}, "at least 24 values"),
            ({"history": values[-24:], "times": ["2000-01-01"] * 24}, "duplicate timestamps"),
            ({"history": values[-24:], "times": [str(t.date()) for t in pd.date_range("1990-01-01", periods=24, freq="MS")][::-1]},
             "not in time order"),
            ({"history": values[-24:], "times": [str(t.date()) for t in pd.date_range("1990-01-01", periods=24, freq="D")]},
             "not consecutive"),
            ({"history": ["warm"] * 24}, "must hold numbers"),
            ({"history": values[-24:], "soon": 1}, "Unknown key"),
        ]:
            r = c.post("/v1/models/fc/predict", json=req)
            assert r.status_code == 422 and needle in r.text, (req.keys(), r.text)


def test_cli_reports_measured_coverage_and_predicts_intervals(tmp_path, capsys):
    load_builtin("nile").to_csv(tmp_path / "nile.csv", index=False)
    pd.DataFrame({"date": ["1971-01-01", "1975-01-01"]}).to_csv(tmp_path / "when.csv", index=False)
    reg = str(tmp_path / "reg")
    assert main(["train", str(tmp_path / "nile.csv"), "--target", "volume", "--name", "n", "--registry", reg,
                 "--no-progress"]) == 0
    out = capsys.readouterr()
    assert "intervals: 90% nominal," in out.out + out.err and "measured on 30 held-out points" in out.out + out.err
    assert main(["predict", "n", str(tmp_path / "when.csv"), "--registry", reg, "--output", str(tmp_path / "p.csv")]) == 0
    p = pd.read_csv(tmp_path / "p.csv")
    assert list(p.columns) == ["prediction", "lower", "upper"] and (p["lower"] < p["prediction"]).all()
    assert (p["upper"] - p["prediction"]).iloc[1] > (p["upper"] - p["prediction"]).iloc[0]  # 5 years ahead: wider
    m = Registry(tmp_path / "reg").load("n").manifest
    assert m["outputs"][2]["description"].endswith(f"{m['metrics']['coverage']['measured']:.1%})")


@pytest.fixture(scope="module")
def with_flag(tmp_path_factory):
    # El Nino temperatures plus a made-up known-future 0/1 flag (a "holiday" on a random 20% of months) that adds 3
    # degrees where it is set: only a model that reads the flag at the forecast step can know
    root = tmp_path_factory.mktemp("cov")
    frame = load_builtin("elnino")
    flag = (np.random.default_rng(0).random(len(frame)) < 0.2).astype(int)
    frame = frame.assign(temperature=frame["temperature"] + 3.0 * flag, holiday=flag)
    frame.to_csv(root / "flagged.csv", index=False)
    reg = root / "reg"
    for name, extra in (("flag", []), ("noflag", ["--set", "covariates=[]"])):
        assert main(["train", str(root / "flagged.csv"), "--target", "temperature", "--name", name, "--no-progress",
                     "--registry", str(reg), "--set", "model=ar", *extra]) == 0
    return Registry(reg), root


def test_known_future_covariate_is_used_and_required(with_flag, tmp_path, capsys):
    from test_every_task import Server

    registry, root = with_flag
    m, m0 = registry.load("flag").manifest, registry.load("noflag").manifest
    assert m["task"]["covariates"] == ["holiday"] and m0["task"]["covariates"] == []
    assert [i["name"] for i in m["inputs"]] == ["date", "holiday"]
    assert m["onnx"]["windows_off"] == 0
    mase, mase0 = m["metrics"]["test"]["mase"], m0["metrics"]["test"]["mase"]
    assert mase < 0.8 * mase0, (mase, mase0)  # the flag explains 3 degrees the series' past cannot
    with Server("flag", registry) as c:
        on = c.post("/v1/models/flag/predict", json={"records": [{"date": "2011-03-01", "holiday": 1}]})
        off = c.post("/v1/models/flag/predict", json={"records": [{"date": "2011-03-01", "holiday": 0}]})
        assert on.status_code == off.status_code == 200, on.text
        assert 2.0 < on.json()["predictions"][0] - off.json()["predictions"][0] < 4.0
        r = c.post("/v1/models/flag/predict", json={"records": [{"date": "2011-03-01"}]})
        assert r.status_code == 422 and "holiday" in r.text
        r = c.post("/v1/models/flag/predict", json={"records": [{"date": "2011-03-01", "holiday": None}]})
        assert r.status_code == 422 and "holiday" in r.text
        hist = (load_builtin("elnino")["temperature"].to_numpy()[-24:]).tolist()
        r = c.post("/v1/models/flag/predict", json={"history": hist, "horizon": 2, "holiday": [0, 1]})
        assert r.status_code == 200, r.text
        assert len(r.json()["predictions"]) == 2
        r = c.post("/v1/models/flag/predict", json={"history": hist, "horizon": 2})
        assert r.status_code == 422 and "'holiday' is a known-future covariate" in r.text
    pd.DataFrame({"date": ["2011-01-01"]}).to_csv(tmp_path / "when.csv", index=False)
    rc = main(["predict", "flag", str(tmp_path / "when.csv"), "--registry", str(root / "reg")])
    err = capsys.readouterr().err
    assert rc != 0 and "Missing known-future covariate(s) ['holiday']" in err, err


def test_horizon_out_of_range_through_the_cli(tmp_path, capsys):
    load_builtin("nile").to_csv(tmp_path / "nile.csv", index=False)
    reg = tmp_path / "reg"
    rc = main(["train", str(tmp_path / "nile.csv"), "--target", "volume", "--name", "h0", "--no-progress",
               "--registry", str(reg), "--set", "horizon=0"])
    err = capsys.readouterr().err
    assert rc != 0 and "horizon must be >= 1" in err and not (reg / "h0").exists()
    assert main(["train", str(tmp_path / "nile.csv"), "--target", "volume", "--name", "n", "--no-progress",
                 "--registry", str(reg), "--set", "model=ar"]) == 0
    capsys.readouterr()
    pd.DataFrame({"date": ["1971-01-01", "1976-01-01"]}).to_csv(tmp_path / "when.csv", index=False)
    out = tmp_path / "p.csv"
    rc = main(["predict", "n", str(tmp_path / "when.csv"), "--registry", str(reg), "--output", str(out)])
    err = capsys.readouterr().err
    assert rc != 0 and "not one of the 5 steps" in err and "at most 5 steps ahead" in err, err
    assert not out.exists()
