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
    ref = np.stack([m.reference_forecast(W[i]) for i in picks])
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
