"""Forecasting models on a window of the last ``L`` values, and the rolling-origin backtest.

Every model is **direct multi-step**: it forecasts the ``H`` steps after the window at once (no forecast is
fed back as an input). Inputs are scale-free so one model serves many series (global models): with
``last`` the window's last value and ``s`` the mean absolute step-to-step change in the window,

    x = (window[:-1] - last) / s          target_h = (y[t+h] - last) / s          forecast_h = last + s * f_h(...)

plus the calendar: Fourier terms of the position in the seasonal cycle (``season`` steps) of the forecast
step, from the step index of the first forecast step (``k = round((t - t0) / step)``).

``seasonal_naive``  y[t+h] = y[t+h-season] (the last value when there is no season): the baseline
``linear``          ridge regression, one output per step: [x, Fourier(k)] -> (H,)
``lightgbm``        one gradient-boosted tree ensemble over (window, step) rows: [x, h, Fourier(k+h-1)] -> 1
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from ...errors import DataError

__all__ = ["Spec", "window_features", "fourier", "make_model", "FAMILIES", "metrics", "conformal_quantile"]

FAMILIES = ("seasonal_naive", "linear", "lightgbm")  # simplest first
EPS = 1e-6


@dataclasses.dataclass
class Spec:
    """The shapes every model of a run shares."""

    lags: int  # L: window length
    horizon: int  # H
    season: int  # P (1: none)
    fourier: int  # J: Fourier pairs (0 when season < 2)

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def window_features(W: np.ndarray, dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x (N, L-1), last (N, 1), s (N, 1)) in ``dtype``, in the graph's order of operations."""
    W = np.asarray(W, dtype=dtype)
    last = W[:, -1:]
    s = np.maximum(np.mean(np.abs(W[:, 1:] - W[:, :-1]), axis=1, keepdims=True), dtype(EPS))
    return ((W[:, :-1] - last) / s).astype(dtype), last, s.astype(dtype)


def fourier_table(season: int, J: int) -> np.ndarray:
    """(P, 2J) float32: [sin(2 pi j ph / P), cos(...)]_j for each phase ph; values within 1e-6 of 0 or +-1 are
    exact, so the graph (a Gather from this table) and numpy give the same bits."""
    ph = np.arange(season, dtype=np.float64)[:, None]
    j = np.arange(1, J + 1, dtype=np.float64)[None, :]
    ang = 2 * math.pi * ph * j / season
    t = np.concatenate([np.sin(ang), np.cos(ang)], axis=1)
    for v in (0.0, 1.0, -1.0):
        t[np.abs(t - v) < 1e-6] = v
    return t.astype(np.float32)


def fourier(k: np.ndarray, season: int, J: int, dtype: Any = np.float32) -> np.ndarray:
    """(N, 2J) Fourier terms of the phase k mod P (integer first: exact at any k), from :func:`fourier_table`."""
    k = np.asarray(k, dtype=np.int64)
    if J == 0:
        return np.zeros((len(k), 0), dtype)
    return fourier_table(season, J)[np.mod(k, season)].astype(dtype)


class SeasonalNaive:
    family = "seasonal_naive"

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        P, L = spec.season, spec.lags
        self.index = np.array([L - P + (h % P) for h in range(spec.horizon)] if P > 1 else [L - 1] * spec.horizon)

    def fit(self, W: np.ndarray, k: np.ndarray, Y: np.ndarray) -> "SeasonalNaive":
        return self

    def predict(self, W: np.ndarray, k: np.ndarray) -> np.ndarray:
        return np.asarray(W, np.float64)[:, self.index]

    def describe(self) -> dict[str, Any]:
        return {"season": self.spec.season}

    def flops(self) -> int:
        return self.spec.horizon


class LinearAR:
    family = "linear"

    def __init__(self, spec: Spec, alpha: float = 1.0) -> None:
        self.spec, self.alpha = spec, alpha
        self.coef: np.ndarray | None = None  # (F, H)
        self.intercept: np.ndarray | None = None  # (H,)

    def features(self, W: np.ndarray, k: np.ndarray, dtype: Any = np.float64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x, last, s = window_features(W, dtype)
        return np.concatenate([x, fourier(k, self.spec.season, self.spec.fourier, dtype)], axis=1), last, s

    def fit(self, W: np.ndarray, k: np.ndarray, Y: np.ndarray) -> "LinearAR":
        X, last, s = self.features(W, k)
        T = (np.asarray(Y, np.float64) - last) / s
        mx, mt = X.mean(0), T.mean(0)
        Xc, Tc = X - mx, T - mt
        A = Xc.T @ Xc + self.alpha * np.eye(X.shape[1])
        self.coef = np.linalg.solve(A, Xc.T @ Tc)
        self.intercept = mt - mx @ self.coef
        self.training_flops_ = int(2 * X.shape[0] * X.shape[1] ** 2 + 2 * X.shape[1] ** 3)
        return self

    def predict(self, W: np.ndarray, k: np.ndarray) -> np.ndarray:
        X, last, s = self.features(W, k)
        return last + s * (X @ self.coef + self.intercept)

    def describe(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "features": int(self.coef.shape[0]) if self.coef is not None else None}

    def flops(self) -> int:
        F = self.spec.lags - 1 + 2 * self.spec.fourier
        return int(2 * F * self.spec.horizon + 4 * self.spec.lags)


class LightGBMAR:
    family = "lightgbm"

    def __init__(self, spec: Spec, trees: int = 300, leaves: int = 15, lr: float = 0.05, seed: int = 0) -> None:
        self.spec, self.trees, self.leaves, self.lr, self.seed = spec, trees, leaves, lr, seed
        self.booster: Any = None

    def rows(self, W: np.ndarray, k: np.ndarray, dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(N*H, L-1+1+2J) rows in (window, step) order, last, s."""
        H, P, J = self.spec.horizon, self.spec.season, self.spec.fourier
        x, last, s = window_features(W, dtype)
        N = len(x)
        xs = np.repeat(x[:, None, :], H, axis=1)
        hs = np.broadcast_to(np.arange(1, H + 1, dtype=dtype)[None, :, None], (N, H, 1))
        kk = (np.asarray(k, np.int64)[:, None] + np.arange(H)[None, :]).reshape(-1)
        fs = fourier(kk, P, J, dtype).reshape(N, H, 2 * J)
        return np.concatenate([xs, hs, fs], axis=2).reshape(N * H, -1), last, s

    def fit(self, W: np.ndarray, k: np.ndarray, Y: np.ndarray) -> "LightGBMAR":
        import lightgbm as lgb

        from ..tabular._export import _float32_thresholds

        X, last, s = self.rows(W, k)
        T = ((np.asarray(Y, np.float64) - last.astype(np.float64)) / s.astype(np.float64)).reshape(-1)
        params = {"objective": "l2", "num_leaves": self.leaves, "learning_rate": self.lr, "min_data_in_leaf": 10,
                  "feature_fraction": 0.9, "bagging_fraction": 0.9, "bagging_freq": 1, "seed": self.seed,
                  "verbose": -1, "num_threads": 1, "deterministic": True}  # OpenMP spin on a busy 2-core box made 2 threads far slower
        booster = lgb.train(params, lgb.Dataset(X, T), num_boost_round=self.trees)
        # thresholds as float32, as the graph compares them: the native model and the graph split alike
        self.booster = lgb.Booster(model_str=_float32_thresholds(booster.model_to_string()))
        self.training_flops_ = int(X.shape[0] * X.shape[1] * self.trees * 6)
        return self

    def predict(self, W: np.ndarray, k: np.ndarray) -> np.ndarray:
        X, last, s = self.rows(W, k)
        out = self.booster.predict(X).reshape(len(last), self.spec.horizon)
        return last.astype(np.float64) + s.astype(np.float64) * out

    def describe(self) -> dict[str, Any]:
        return {"trees": self.trees, "leaves": self.leaves, "learning_rate": self.lr}

    def flops(self) -> int:
        return int(self.trees * math.ceil(math.log2(max(self.leaves, 2))) * 2 * self.spec.horizon)


def make_model(family: str, spec: Spec, cfg: Any) -> Any:
    if family == "seasonal_naive":
        return SeasonalNaive(spec)
    if family == "linear":
        return LinearAR(spec, cfg.ridge)
    if family == "lightgbm":
        return LightGBMAR(spec, cfg.lgbm_trees, cfg.lgbm_leaves, cfg.lgbm_lr, cfg.seed)
    raise DataError(f"Unknown forecasting model {family!r}; choose one of {', '.join(FAMILIES)}.")


# ----------------------------------------------------------------------------- metrics


def metrics(y: np.ndarray, f: np.ndarray, scale: np.ndarray) -> dict[str, float]:
    """MASE (errors over each row's in-sample seasonal-naive MAE, ``scale`` (N, 1)), MAE, RMSE, sMAPE (%)."""
    y, f = np.asarray(y, np.float64), np.asarray(f, np.float64)
    e = y - f
    denom = np.abs(y) + np.abs(f)
    smape = np.where(denom > 0, 2 * np.abs(e) / np.where(denom > 0, denom, 1), 0.0)
    return {"mase": float(np.mean(np.abs(e) / np.maximum(scale, 1e-12))), "mae": float(np.mean(np.abs(e))),
            "rmse": float(np.sqrt(np.mean(e ** 2))), "smape": float(100 * np.mean(smape))}


def conformal_quantile(abs_scores: np.ndarray, coverage: float) -> np.ndarray:
    """Per column (horizon step): the split-conformal quantile ceil((n + 1) c) / n of the scores."""
    a = np.sort(np.asarray(abs_scores, np.float64), axis=0)
    n = a.shape[0]
    if n == 0:
        return np.full(a.shape[1], np.inf)
    i = min(n - 1, int(math.ceil((n + 1) * coverage)) - 1)
    return a[i]
