"""The ARIMA and drift candidates: the affine map window -> forecast equals statsmodels' own forecasts from the same
windows; auto picks ARIMA where it clearly wins on validation, and the package's graph computes that map."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest

from fulcrum.artifact import Registry
from fulcrum.cli import main
from fulcrum.data import load_builtin
from fulcrum.tasks.forecast._models import Spec, arima_map, make_model


def reference_forecast(m, window: np.ndarray) -> np.ndarray:
    """statsmodels' own forecast from one window: the fitted ARMA (same parameters) run on the window's
    differences (``SARIMAX.filter``, stationary start) and its forecasts summed back to levels, one step at a
    time (a check on :func:`arima_map`, written without it; test-only: the package runs the map)."""
    import warnings

    from statsmodels.tsa.statespace.sarimax import SARIMAX

    p, d, q = m.order
    P, H = m.spec.season, m.spec.horizon
    chain = [np.asarray(window, np.float64)]
    if m.seasonal_diff:
        chain.append(chain[-1][P:] - chain[-1][:-P])
    for _ in range(d):
        chain.append(np.diff(chain[-1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = SARIMAX(chain[-1] / m.scale, order=(p, 0, q), trend="c" if m.constant else "n",
                      concentrate_scale=True).filter(m.params)
        f = list(np.asarray(res.forecast(H)) * m.scale)
    for j in range(len(chain) - 1, 0, -1):
        lag = P if (m.seasonal_diff and j == 1) else 1
        x = list(chain[j - 1])
        for h in range(H):
            x.append(x[-lag] + f[h])
        f = x[len(chain[j - 1]):]
    return np.asarray(f)


def _arima_111_drift(n: int = 260, seed: int = 0) -> np.ndarray:
    # differences: x_t = 1 + 0.7 (x_{t-1} - 1) + e_t + 0.3 e_{t-1}: momentum around a drift of 1 a step
    rng = np.random.default_rng(seed)
    e = rng.normal(size=n + 1)
    x = np.zeros(n)
    prev = 1.0
    for t in range(n):
        x[t] = 1.0 + 0.7 * (prev - 1.0) + e[t + 1] + 0.3 * e[t]
        prev = x[t]
    return 100 + np.cumsum(x)


def _windows(y: np.ndarray, L: int, H: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    o = np.arange(L, len(y) - H + 1)
    return y[o[:, None] + np.arange(-L, 0)], o, y[o[:, None] + np.arange(H)]


@pytest.mark.parametrize("case", ["drift", "seasonal"])
def test_arima_map_equals_statsmodels_forecasts_from_the_same_windows(case):
    if case == "drift":
        y, spec = _arima_111_drift(), Spec(lags=24, horizon=5, season=1, fourier=0)
    else:  # El Nino, monthly: one seasonal difference (strength > 0.64)
        y, spec = load_builtin("elnino")["temperature"].to_numpy(np.float64), Spec(lags=24, horizon=12, season=12, fourier=3)
    W, k, Y = _windows(y, spec.lags, spec.horizon)
    m = make_model("arima", spec, None).fit(W, k, Y)
    p, d, q = m.order
    if case == "drift":
        assert d == 1 and m.constant and abs(m.mean - 1.0) < 0.5, m.describe()  # the drift is in the map
    else:
        assert m.seasonal_diff == 1, m.describe()
    picks = np.linspace(0, len(W) - 1, 15).astype(int)
    ours = m.predict(W[picks], k[picks])
    ref = np.stack([reference_forecast(m, W[i]) for i in picks])
    assert np.abs(ours - ref).max() < 1e-8 * max(1.0, np.abs(ref).max())
    # the forecast is not just the last value carried on
    assert np.abs(ours - W[picks, -1:]).max() > 0.1


def test_drift_is_the_line_through_the_window_ends():
    spec = Spec(lags=6, horizon=3, season=1, fourier=0)
    m = make_model("drift", spec, None)
    W = np.array([[1.0, 5.0, 2.0, 4.0, 3.0, 11.0]])  # (11 - 1) / 5 = 2 a step
    assert np.allclose(m.predict(W, np.zeros(1)), [[13.0, 15.0, 17.0]])


@pytest.fixture(scope="module")
def arima_cli(tmp_path_factory):
    # six annual series of 150 steps from one ARIMA(1,1,1) with drift (one series alone is too noisy per fold)
    root = tmp_path_factory.mktemp("arima")
    series = {f"s{i}": _arima_111_drift(150, seed=i) for i in range(6)}
    dates = pd.date_range("1800-01-01", periods=150, freq="YS").strftime("%Y-%m-%d")
    frame = pd.concat([pd.DataFrame({"date": dates, "id": sid, "value": y}) for sid, y in series.items()])
    frame.to_csv(root / "a.csv", index=False)
    assert main(["train", str(root / "a.csv"), "--target", "value", "--name", "a", "--registry", str(root / "reg"),
                 "--no-progress", "--set", "series=id", "--set", "folds=10", "--set", "test_folds=4",
                 "--set", "min_windows_ml=100000"]) == 0
    return series["s0"], Registry(root / "reg").load("a")


def test_auto_chooses_arima_where_it_wins_and_the_graph_is_its_map(arima_cli):
    y, art = arima_cli
    m = art.manifest
    c = m["metrics"]["candidates"]
    assert m["model"]["family"] == "arima", (m["model"], {f: c[f]["validation"]["mase"] for f in c})
    for simpler in ("seasonal_naive", "drift", "ets"):  # beaten beyond noise on validation, and on the held-out folds
        assert c[simpler]["test"]["mase"] > c["arima"]["test"]["mase"]
    d = m["model"]["describe"]
    assert d["order"][1] == 1 and d["constant"] and d["seasonal_difference"] == 0
    t = m["task"]
    L, H, P = t["lags"], t["horizon"], t["season"]
    M, b = arima_map(L, H, d["order"][1], np.array(d["ar"]), np.array(d["ma"]), d["mean_of_differences"], P, 0)
    W, k, _ = _windows(y, L, H)
    W = W[-50:]
    sess = ort.InferenceSession(art.read_bytes("model.onnx"), providers=["CPUExecutionProvider"])
    start = np.zeros((len(W), 1), np.int64) + m["model"]["t0"]
    got = sess.run(["forecast"], {"window": W.astype(np.float32), "start": start, "step": np.ones((len(W), 1), np.int64)})[0]
    want = W @ M + b
    assert np.abs(got - want).max() < 1e-4 * np.abs(want).max()
    assert m["onnx"]["windows_off"] == 0


def _fertility(code: str) -> np.ndarray:
    from statsmodels.datasets import fertility

    d = fertility.load_pandas().data
    return d.loc[d["Country Code"] == code, [str(y) for y in range(1960, 2012)]].iloc[0].to_numpy(np.float64)


# d for the first n years, recorded from statsforecast 2.1.1's ndiffs (auto.arima's rule: repeated KPSS tests at
# 5% with floor(3 sqrt(n) / 13) lags) on the same values: smooth, falling fertility rates need two differences
# (SSD's first 32 years none); with statsmodels' automatic KPSS lag the test has almost no power on such smooth
# series and found d = 0 on 9 of these 16 (8 where statsforecast takes 2), whose forecasts then stay flat at the mean (LBR: MASE 18 and 24)
NDIFFS_STATSFORECAST = {("LBR", 32): 2, ("LBR", 37): 2, ("LBR", 42): 2, ("LBR", 47): 2,
                        ("SEN", 32): 2, ("SEN", 37): 2, ("SEN", 42): 2, ("SEN", 47): 2,
                        ("CMR", 32): 2, ("CMR", 37): 2, ("CMR", 42): 2, ("CMR", 47): 2,
                        ("SSD", 32): 0, ("SSD", 37): 2, ("SSD", 42): 2, ("SSD", 47): 2}


def _fit_before(y: np.ndarray, o: int, spec: Spec):
    """(the arima candidate fitted on the windows of y[:o], as the backtest does; its forecast of the H years from o;
    their MASE against the naive in-sample error of y[:o])."""
    W, k, Y = _windows(y[:o], spec.lags, spec.horizon)
    m = make_model("arima", spec, None).fit(W, k, Y)
    f = m.predict(y[None, o - spec.lags:o], np.array([o]))[0]
    assert np.abs(f - reference_forecast(m, y[o - spec.lags:o])).max() < 1e-8  # the map is statsmodels' forecast
    return m, f, np.mean(np.abs(y[o:o + spec.horizon] - f)) / np.mean(np.abs(np.diff(y[:o])))


def test_arima_differences_a_short_annual_series_as_auto_arima_does_and_its_forecast_follows_the_trend():
    spec = Spec(lags=11, horizon=5, season=1, fourier=0)
    ours = {key: make_model("arima", spec, None).ndiffs(_fertility(key[0])[:key[1]], 2) for key in NDIFFS_STATSFORECAST}
    assert ours == NDIFFS_STATSFORECAST
    y = _fertility("LBR")
    for o in (37, 42):  # fitted on the years before the origin, as the backtest does
        m, f, mase = _fit_before(y, o, spec)
        assert m.order[1] == 2 and not m.constant, m.describe()
        assert mase < 1.0, (o, mase, f, y[o:o + spec.horizon], m.describe())  # flat at the mean: 18 and 24


def test_arima_searches_auto_arimas_orders_and_finds_the_turn_in_a_stationary_stretch():
    # South Sudan's first 32 years: KPSS finds no difference (statsforecast's ndiffs too) and the rate turns down
    # at the end; within auto.arima's bounds (p, q <= 5, p + q <= 5) AICc takes a long AR that follows the turn,
    # where p <= 3 gave AR(1) around the mean, flat (MASE 12.4 on the next 5 years)
    spec = Spec(lags=11, horizon=5, season=1, fourier=0)
    y, o = _fertility("SSD"), 32
    m, f, mase = _fit_before(y, o, spec)
    p, d, q = m.order
    assert d == 0 and p + q <= 5 and p > 3, m.describe()
    assert mase < 2.0, (mase, f, y[o:o + spec.horizon], m.describe())


# statsforecast 2.1.1's AutoARIMA(season_length=1) on Rwanda's first 32 years (1960-1991): ARIMA(2,2,3), forecast
# of 1992-1996 (recorded with benchmarks/peers in .venv-peers; CI has no statsforecast)
RWA_32_STATSFORECAST = np.array([6.7620372728901375, 6.557711496608582, 6.400176388121289, 6.288146361452072,
                                 6.212353197872605])


def test_arima_fits_an_order_whose_hannan_rissanen_estimates_explode_instead_of_dropping_it():
    # Rwanda's rate rises, turns and falls fast; on the second differences OLS gives AR(2) (and every longer AR)
    # explosive estimates (roots 0.958), so ranking at Hannan-Rissanen estimates dropped them and kept AR(1):
    # a straight fall, MASE 4.1 on the next 5 years, 0.49 below statsforecast's forecast at the fifth. Fitted by
    # maximum likelihood (stationary) instead, AR(2) wins AICc and the forecast bends as auto.arima's does.
    spec = Spec(lags=11, horizon=5, season=1, fourier=0)
    y, o = _fertility("RWA"), 32
    m, f, mase = _fit_before(y, o, spec)
    p, d, q = m.order
    assert d == 2 and p >= 2, m.describe()
    assert mase < 1.0, (mase, f, y[o:o + spec.horizon], m.describe())
    assert np.abs(f - RWA_32_STATSFORECAST).max() < 0.1, (f, m.describe())
