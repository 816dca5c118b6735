"""Forecasting models on a window of the last ``L`` values, and the rolling-origin backtest.

Every model is **direct multi-step**: it forecasts the ``H`` steps after the window at once (no forecast is
fed back as an input). Inputs are scale-free so one model serves many series (global models): with
``last`` the window's last value and ``s`` the mean absolute step-to-step change in the window,

    x = (window[:-1] - last) / s          target_h = (y[t+h] - last) / s          forecast_h = last + s * f_h(...)

plus the calendar: Fourier terms of the position in the seasonal cycle (``season`` steps) of the forecast
step, from the step index of the first forecast step (``k = round((t - t0) / step)``).

``seasonal_naive``  y[t+h] = y[t+h-season] (the last value when there is no season): the baseline
``drift``           random walk with drift over the window: y[t+h] = last + h (last - first) / (L - 1)
``ets``             additive exponential smoothing, as a linear map window -> forecast (:func:`ets_map`)
``arima``           ARIMA(p, d, q) (+ drift when d = 1) fitted by statsmodels, as the affine map window -> forecast
                    it is for fixed parameters (:func:`arima_map`)
``ar``              ridge on the window's levels
``linear``          ridge regression, one output per step: [x, Fourier(k)] -> (H,)
``lightgbm``        one gradient-boosted tree ensemble over (window, step) rows: [x, h, Fourier(k+h-1)] -> 1
``combination``     the mean of two or more of the statistical models (drift, ets, arima: COMBINED): not a
                    candidate of its own; ``_fit.select`` picks it when the validation folds cannot separate
                    them from the best candidate (:class:`Combination`)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np

from ...errors import DataError

__all__ = ["Spec", "window_features", "fourier", "make_model", "FAMILIES", "STATISTICAL", "COMBINED", "Combination", "affine_map",
           "metrics", "conformal_quantile"]

FAMILIES = ("seasonal_naive", "drift", "ets", "arima", "ar", "linear", "lightgbm", "mlp")  # simplest first
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


class Covariates:
    """Known-future covariates (N, H, C): standardized by their training mean / std (constants of the graph)."""

    def __init__(self) -> None:
        self.mu = np.zeros(0)
        self.sd = np.ones(0)

    def fit(self, Z: np.ndarray | None) -> "Covariates":
        if Z is not None and Z.shape[-1]:
            flat = np.asarray(Z, np.float64).reshape(-1, Z.shape[-1])
            self.mu, self.sd = flat.mean(0), flat.std(0)
            self.sd[self.sd == 0] = 1.0
        return self

    @property
    def n(self) -> int:
        return len(self.mu)

    def __call__(self, Z: np.ndarray | None, n: int, H: int, dtype: Any = np.float64) -> np.ndarray:
        if not self.n:
            return np.zeros((n, H, 0), dtype)
        if Z is None or Z.shape[-1] != self.n:
            raise DataError(f"This model needs {self.n} known-future covariate(s) at each forecast step.")
        return ((np.asarray(Z, dtype) - self.mu.astype(dtype)) / self.sd.astype(dtype)).astype(dtype)


def ridge_steps(X: np.ndarray, Zs: np.ndarray, T: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ridge per horizon step: T[:, h] ~ X coef[:, h] + Zs[:, h] gamma[:, h] + b[h] (one shared solve without
    covariates). -> (coef (F, H), gamma (C, H), b (H,))."""
    N, F = X.shape
    H, C = T.shape[1], Zs.shape[2]
    if C == 0:
        mx, mt = X.mean(0), T.mean(0)
        Xc, Tc = X - mx, T - mt
        coef = np.linalg.solve(Xc.T @ Xc + alpha * np.eye(F), Xc.T @ Tc)
        return coef, np.zeros((0, H)), mt - mx @ coef
    coef, gamma, b = np.empty((F, H)), np.empty((C, H)), np.empty(H)
    for h in range(H):
        Xh = np.concatenate([X, Zs[:, h, :]], axis=1)
        mx, mt = Xh.mean(0), T[:, h].mean()
        Xc = Xh - mx
        w = np.linalg.solve(Xc.T @ Xc + alpha * np.eye(F + C), Xc.T @ (T[:, h] - mt))
        coef[:, h], gamma[:, h], b[h] = w[:F], w[F:], mt - mx @ w
    return coef, gamma, b


def cov_effect(Zs: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """(N, H): sum over covariates of Zs[:, h, c] * gamma[c, h]."""
    if not Zs.shape[2]:
        return np.zeros(Zs.shape[:2])
    return np.einsum("nhc,ch->nh", Zs, gamma)


class SeasonalNaive:
    family = "seasonal_naive"

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        P, L = spec.season, spec.lags
        self.index = np.array([L - P + (h % P) for h in range(spec.horizon)] if P > 1 else [L - 1] * spec.horizon)

    def fit(self, W: np.ndarray, k: np.ndarray, Y: np.ndarray, Z: np.ndarray | None = None) -> "SeasonalNaive":
        return self

    def predict(self, W: np.ndarray, k: np.ndarray, Z: np.ndarray | None = None) -> np.ndarray:
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

    def fit(self, W: np.ndarray, k: np.ndarray, Y: np.ndarray, Z: np.ndarray | None = None) -> "LinearAR":
        X, last, s = self.features(W, k)
        T = (np.asarray(Y, np.float64) - last) / s
        self.cov = Covariates().fit(Z)
        self.coef, self.gamma, self.intercept = ridge_steps(X, self.cov(Z, len(X), self.spec.horizon), T, self.alpha)
        self.training_flops_ = int(2 * X.shape[0] * X.shape[1] ** 2 + 2 * X.shape[1] ** 3) * (self.spec.horizon if self.cov.n else 1)
        return self

    def predict(self, W: np.ndarray, k: np.ndarray, Z: np.ndarray | None = None) -> np.ndarray:
        X, last, s = self.features(W, k)
        return last + s * (X @ self.coef + cov_effect(self.cov(Z, len(X), self.spec.horizon), self.gamma) + self.intercept)

    def describe(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "features": int(self.coef.shape[0]) if self.coef is not None else None}

    def flops(self) -> int:
        F = self.spec.lags - 1 + 2 * self.spec.fourier
        return int(2 * F * self.spec.horizon + 4 * self.spec.lags)


class RawAR:
    """Ridge autoregression on the window's levels (the series' own units, standardized by the training mean and
    standard deviation) + calendar terms, one output per step: it keeps where the series is relative to its
    long-run level (the ``linear`` model's window-relative features drop that), so mean-reverting and cyclical
    series (sunspots, El Nino) are forecast as an AR model would. The ridge strength is chosen by exact
    leave-one-out error on the training windows."""

    family = "ar"
    ALPHAS = (0.1, 1.0, 10.0, 100.0)

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.mu, self.sd, self.alpha = 0.0, 1.0, 1.0
        self.coef: np.ndarray | None = None
        self.intercept: np.ndarray | None = None

    def features(self, W: np.ndarray, k: np.ndarray, dtype: Any = np.float64) -> np.ndarray:
        z = (np.asarray(W, dtype) - dtype(self.mu)) / dtype(self.sd)
        return np.concatenate([z, fourier(k, self.spec.season, self.spec.fourier, dtype)], axis=1)

    def fit(self, W: np.ndarray, k: np.ndarray, Y: np.ndarray, Z: np.ndarray | None = None) -> "RawAR":
        W = np.asarray(W, np.float64)
        self.mu, self.sd = float(W.mean()), float(W.std()) or 1.0
        X = self.features(W, k)
        T = (np.asarray(Y, np.float64) - self.mu) / self.sd
        mx, mt = X.mean(0), T.mean(0)
        Xc, Tc = X - mx, T - mt
        U, S, _ = np.linalg.svd(Xc, full_matrices=False)
        UT = U.T @ Tc
        best = (np.inf, 1.0)
        for a in self.ALPHAS:
            d = S ** 2 / (S ** 2 + a)
            fitted = U @ (d[:, None] * UT)
            h = np.einsum("ij,j,ij->i", U, d, U)
            loo = float(np.mean(((Tc - fitted) / np.maximum(1 - h, 1e-6)[:, None]) ** 2))
            if loo < best[0]:
                best = (loo, a)
        self.alpha = best[1]
        self.cov = Covariates().fit(Z)
        self.coef, self.gamma, self.intercept = ridge_steps(X, self.cov(Z, len(X), self.spec.horizon), T, self.alpha)
        self.training_flops_ = int(2 * X.shape[0] * X.shape[1] ** 2 * (len(self.ALPHAS) + 1) + 4 * X.shape[1] ** 3)
        return self

    def predict(self, W: np.ndarray, k: np.ndarray, Z: np.ndarray | None = None) -> np.ndarray:
        X = self.features(W, k)
        return self.mu + self.sd * (X @ self.coef + cov_effect(self.cov(Z, len(X), self.spec.horizon), self.gamma)
                                    + self.intercept)

    def describe(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "mean": self.mu, "std": self.sd, "alpha_by": "leave-one-out on training windows"}

    def flops(self) -> int:
        F = self.spec.lags + 2 * self.spec.fourier
        return int(2 * F * self.spec.horizon + 2 * self.spec.lags)


class LightGBMAR:
    family = "lightgbm"

    def __init__(self, spec: Spec, trees: int = 300, leaves: int = 15, lr: float = 0.05, seed: int = 0) -> None:
        self.spec, self.trees, self.leaves, self.lr, self.seed = spec, trees, leaves, lr, seed
        self.booster: Any = None

    def rows(self, W: np.ndarray, k: np.ndarray, Z: np.ndarray | None = None,
             dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(N*H, L-1+1+2J+C) rows in (window, step) order, last, s."""
        H, P, J = self.spec.horizon, self.spec.season, self.spec.fourier
        x, last, s = window_features(W, dtype)
        N = len(x)
        xs = np.repeat(x[:, None, :], H, axis=1)
        hs = np.broadcast_to(np.arange(1, H + 1, dtype=dtype)[None, :, None], (N, H, 1))
        kk = (np.asarray(k, np.int64)[:, None] + np.arange(H)[None, :]).reshape(-1)
        fs = fourier(kk, P, J, dtype).reshape(N, H, 2 * J)
        zs = self.cov(Z, N, H, dtype)
        return np.concatenate([xs, hs, fs, zs], axis=2).reshape(N * H, -1), last, s

    def fit(self, W: np.ndarray, k: np.ndarray, Y: np.ndarray, Z: np.ndarray | None = None) -> "LightGBMAR":
        import lightgbm as lgb

        from ..tabular._export import _float32_thresholds

        self.cov = Covariates().fit(Z)
        X, last, s = self.rows(W, k, Z)
        T = ((np.asarray(Y, np.float64) - last.astype(np.float64)) / s.astype(np.float64)).reshape(-1)
        params = {"objective": "l2", "num_leaves": self.leaves, "learning_rate": self.lr, "min_data_in_leaf": 10,
                  "feature_fraction": 0.9, "bagging_fraction": 0.9, "bagging_freq": 1, "seed": self.seed,
                  "verbose": -1, "num_threads": 1, "deterministic": True}  # OpenMP spin on a busy 2-core box made 2 threads far slower
        booster = lgb.train(params, lgb.Dataset(X, T), num_boost_round=self.trees)
        # thresholds as float32, as the graph compares them: the native model and the graph split alike
        self.booster = lgb.Booster(model_str=_float32_thresholds(booster.model_to_string()))
        self.training_flops_ = int(X.shape[0] * X.shape[1] * self.trees * 6)
        return self

    def predict(self, W: np.ndarray, k: np.ndarray, Z: np.ndarray | None = None) -> np.ndarray:
        X, last, s = self.rows(W, k, Z)
        out = self.booster.predict(X).reshape(len(last), self.spec.horizon)
        return last.astype(np.float64) + s.astype(np.float64) * out

    def describe(self) -> dict[str, Any]:
        return {"trees": self.trees, "leaves": self.leaves, "learning_rate": self.lr}

    def flops(self) -> int:
        return int(self.trees * math.ceil(math.log2(max(self.leaves, 2))) * 2 * self.spec.horizon)


class MLPAR:
    """A small neural network on the ridge model's features (window + calendar) -> the H steps, trained by
    gradient descent with the shared :class:`~fulcrum.training.Trainer` (AdamW, early stopping on the latest
    windows), with a linear skip path: ``f = W_lin x + W2 relu(W1 x + b1) + b``."""

    family = "mlp"

    def __init__(self, spec: Spec, hidden: int = 32, epochs: int = 60, lr: float = 3e-3, weight_decay: float = 1e-3,
                 seed: int = 0) -> None:
        self.spec, self.hidden, self.epochs, self.lr, self.weight_decay, self.seed = spec, hidden, epochs, lr, weight_decay, seed
        self.layers: dict[str, np.ndarray] | None = None

    def features(self, W: np.ndarray, k: np.ndarray, dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x, last, s = window_features(W, dtype)
        return np.concatenate([x, fourier(k, self.spec.season, self.spec.fourier, dtype)], axis=1), last, s

    def fit(self, W: np.ndarray, k: np.ndarray, Y: np.ndarray, Z: np.ndarray | None = None) -> "MLPAR":
        import torch
        from torch import nn

        from ...config import TrainConfig
        from ...training import Trainer

        X, last, s = self.features(W, k)
        T = ((np.asarray(Y, np.float64) - last.astype(np.float64)) / s.astype(np.float64)).astype(np.float32)
        T = np.clip(T, -50, 50)  # a flat window (s ~ eps) must not blow up the loss
        n_val = max(1, len(X) // 6) if len(X) >= 24 else 0  # the latest windows: early stopping
        tr, va = (X[:-n_val], T[:-n_val]) if n_val else (X, T), ((X[-n_val:], T[-n_val:]) if n_val else None)
        torch.manual_seed(self.seed)
        F, H, hidden = X.shape[1], self.spec.horizon, self.hidden

        class Net(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.lin = nn.Linear(F, H)
                self.hid = nn.Linear(F, hidden)
                self.out = nn.Linear(hidden, H, bias=False)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.lin(x) + self.out(torch.relu(self.hid(x)))

        net = Net()
        cfg = TrainConfig(epochs=self.epochs, batch_size=64, lr=self.lr, weight_decay=self.weight_decay,
                          lr_schedule="cosine", optimizer="adamw", early_stopping=va is not None, patience=10,
                          seed=self.seed, progress=False, device="cpu")
        with _torch_threads(1):
            Trainer(cfg, monitor="val_loss" if va is not None else "train_loss").fit(net, tr, va, loss_fn=nn.MSELoss())
        net.eval()
        self.layers = {"lin_w": net.lin.weight.detach().numpy().T.copy(), "lin_b": net.lin.bias.detach().numpy().copy(),
                       "hid_w": net.hid.weight.detach().numpy().T.copy(), "hid_b": net.hid.bias.detach().numpy().copy(),
                       "out_w": net.out.weight.detach().numpy().T.copy()}
        self.training_flops_ = int(6 * len(tr[0]) * self.epochs * (F * H + F * hidden + hidden * H))
        return self

    def raw(self, X: np.ndarray) -> np.ndarray:
        p = self.layers
        X = np.asarray(X, np.float32)
        return (X @ p["lin_w"] + p["lin_b"]) + np.maximum(X @ p["hid_w"] + p["hid_b"], 0) @ p["out_w"]

    def predict(self, W: np.ndarray, k: np.ndarray, Z: np.ndarray | None = None) -> np.ndarray:
        X, last, s = self.features(W, k)
        return last.astype(np.float64) + s.astype(np.float64) * self.raw(X).astype(np.float64)

    def describe(self) -> dict[str, Any]:
        return {"hidden": self.hidden, "skip": "linear", "epochs": self.epochs, "trainer": "fulcrum.training.Trainer"}

    def flops(self) -> int:
        F = self.spec.lags - 1 + 2 * self.spec.fourier
        return int(2 * (F * self.spec.horizon + F * self.hidden + self.hidden * self.spec.horizon) + 4 * self.spec.lags)


def ets_map(L: int, H: int, P: int, alpha: float, beta: float, phi: float, gamma: float) -> np.ndarray:
    """(L, H): additive exponential smoothing (damped trend, additive season of P steps when P > 1) started from
    the window's own first values, as the linear map window -> forecast it is for fixed parameters (every step
    of the recursion and the start are linear in the values). Run on the identity: row i = what value i adds."""
    Y = np.eye(L)
    P = P if P > 1 and L >= 2 * P else 1
    if P > 1:
        level = Y[:, :P].mean(axis=1)
        trend = (Y[:, P:2 * P].mean(axis=1) - level) / P
        S = Y[:, :P] - level[:, None] - trend[:, None] * (np.arange(P) - (P - 1) / 2)[None, :]
    else:
        level = Y[:, 0].copy()
        half = max(1, L // 2)
        trend = (Y[:, L - half:].mean(axis=1) - Y[:, :half].mean(axis=1)) / max(1, L - half)
        S = np.zeros((L, 1))
    trend = trend * (beta > 0)
    for t in range(P if P > 1 else 1, L):
        j = t % P
        pred = level + phi * trend + S[:, j]
        e = Y[:, t] - pred
        level = level + phi * trend + alpha * e
        trend = phi * trend + beta * e
        S[:, j] = S[:, j] + gamma * e
    out = np.empty((L, H))
    damp = 0.0
    for h in range(1, H + 1):
        damp += phi ** h
        out[:, h - 1] = level + damp * trend + S[:, (L + h - 1) % P]
    return out


class ETS:
    """Exponential smoothing (level, damped additive trend, additive season) on the window: a linear map
    window -> forecast (:func:`ets_map`), its four parameters chosen by grid on the training windows' MAE."""

    family = "ets"
    ALPHAS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0)
    TRENDS = ((0.0, 1.0), (0.02, 0.9), (0.02, 0.98), (0.1, 0.9), (0.1, 0.98), (0.02, 1.0), (0.3, 0.9))  # (beta, phi)
    GAMMAS = (0.0, 0.05, 0.2, 0.5)

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.params: dict[str, float] | None = None
        self.M: np.ndarray | None = None  # (L, H)

    def fit(self, W: np.ndarray, k: np.ndarray, Y: np.ndarray, Z: np.ndarray | None = None) -> "ETS":
        L, H, P = self.spec.lags, self.spec.horizon, self.spec.season
        W, Y = np.asarray(W, np.float64), np.asarray(Y, np.float64)
        _, _, s = window_features(W, np.float64)
        if len(W) > 600:  # the latest windows: enough to rank a few hundred parameter sets
            W, Y, s = W[-600:], Y[-600:], s[-600:]
        seasonal = P > 1 and L >= 2 * P
        best = (np.inf, None, None)
        for a in self.ALPHAS:
            for b, ph in self.TRENDS:
                for g in (self.GAMMAS if seasonal else (0.0,)):
                    M = ets_map(L, H, P, a, b, ph, g)
                    err = float(np.mean(np.abs(W @ M - Y) / s))
                    if err < best[0]:
                        best = (err, {"alpha": a, "beta": b, "phi": ph, "gamma": g}, M)
        self.params, self.M = best[1], best[2]
        n_sets = len(self.ALPHAS) * len(self.TRENDS) * (len(self.GAMMAS) if seasonal else 1)
        self.training_flops_ = int(n_sets * 2 * len(W) * L * H)
        return self

    def predict(self, W: np.ndarray, k: np.ndarray, Z: np.ndarray | None = None) -> np.ndarray:
        return np.asarray(W, np.float64) @ self.M

    def describe(self) -> dict[str, Any]:
        return {**(self.params or {}), "form": "additive exponential smoothing as a linear map of the window"}

    def flops(self) -> int:
        return int(2 * self.spec.lags * self.spec.horizon)



class Drift:
    """Random walk with drift over the window (the classic benchmark): last + h * (last - first) / (L - 1), a
    linear map window -> forecast with nothing to fit."""

    family = "drift"

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        L, H = spec.lags, spec.horizon
        h = np.arange(1, H + 1, dtype=np.float64)
        self.M = np.zeros((L, H))
        self.M[-1] = 1 + h / (L - 1)
        self.M[0] -= h / (L - 1)
        self.b = np.zeros(H)

    def fit(self, W: np.ndarray, k: np.ndarray, Y: np.ndarray, Z: np.ndarray | None = None) -> "Drift":
        return self

    def predict(self, W: np.ndarray, k: np.ndarray, Z: np.ndarray | None = None) -> np.ndarray:
        return np.asarray(W, np.float64) @ self.M

    def describe(self) -> dict[str, Any]:
        return {"form": "last + h (last - first) / (L - 1) over the window"}

    def flops(self) -> int:
        return int(2 * self.spec.lags * self.spec.horizon)


STATISTICAL = ("seasonal_naive", "drift", "ets", "arima")  # each an affine map of the window (affine_map)
# the members a combination may have: the statistical models, not the seasonal_naive baseline (what MASE measures
# against; without a season it is ets with alpha = 1). On the design series (s18b replayed) the baseline as a
# member was worse on 7 of the 9 series where the two choices differ (better on El Nino and elec_equip)
COMBINED = ("drift", "ets", "arima")


def affine_map(model: Any) -> tuple[np.ndarray, np.ndarray]:
    """(M (L, H), b (H,)) with forecast = window @ M + b, for the statistical candidates (STATISTICAL)."""
    L, H = model.spec.lags, model.spec.horizon
    if model.family == "seasonal_naive":
        M = np.zeros((L, H))
        M[model.index, np.arange(H)] = 1.0
        return M, np.zeros(H)
    if model.family in ("drift", "ets", "arima"):
        b = getattr(model, "b", None)
        return np.asarray(model.M, np.float64), (np.zeros(H) if b is None else np.asarray(b, np.float64))
    raise ValueError(f"{model.family} is not an affine map of the window")


class Combination:
    """The weighted mean of fitted statistical candidates' forecasts (forecast combination; equal weights unless
    ``weights`` are given). Each member is an affine map window -> forecast, so their weighted mean is one too:
    M = sum of w_m M_m, b = sum of w_m b_m (weights normalised to sum to 1)."""

    family = "combination"

    def __init__(self, spec: Spec, members: Sequence[Any], weights: Sequence[float] | None = None) -> None:
        if len(members) < 2:
            raise ValueError("a combination needs at least two members")
        w = np.ones(len(members)) if weights is None else np.asarray(weights, np.float64)
        if w.shape != (len(members),) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError(f"combination weights must be one non-negative number per member; got {weights!r}")
        self.spec = spec
        self.members = list(members)
        self.weights = w / w.sum()
        maps = [affine_map(m) for m in self.members]
        self.M = np.tensordot(self.weights, np.stack([m for m, _ in maps]), axes=1)
        self.b = np.tensordot(self.weights, np.stack([b for _, b in maps]), axes=1)
        self.training_flops_ = int(sum(getattr(m, "training_flops_", 0) for m in self.members))

    def fit(self, W: np.ndarray, k: np.ndarray, Y: np.ndarray, Z: np.ndarray | None = None) -> "Combination":
        return self  # the members come fitted

    def predict(self, W: np.ndarray, k: np.ndarray, Z: np.ndarray | None = None) -> np.ndarray:
        return np.asarray(W, np.float64) @ self.M + self.b

    def describe(self) -> dict[str, Any]:
        return {"members": {m.family: m.describe() for m in self.members},
                "weights": {m.family: float(w) for m, w in zip(self.members, self.weights)},
                "form": "the weighted mean of the members' forecasts: one affine map of the window"}

    def flops(self) -> int:
        return int(2 * self.spec.lags * self.spec.horizon + self.spec.horizon)


def diff_matrix(L: int, d: int) -> np.ndarray:
    """(L - d, L): the d-th difference operator on a window of L values."""
    D = np.eye(L)
    for _ in range(d):
        D = D[1:] - D[:-1]
    return D


def seasonal_diff_matrix(L: int, P: int) -> np.ndarray:
    """(L - P, L): the lag-P difference operator on a window of L values."""
    return np.eye(L)[P:] - np.eye(L)[:-P]


def _stages(L: int, d: int, P: int, D: int) -> list[tuple[str, np.ndarray]]:
    """The differencing chain on a window: [(kind of the step into this stage, operator (n_j, L))], first the
    seasonal difference (when D), then d regular ones."""
    out = [("", np.eye(L))]
    if D:
        out.append(("seasonal", seasonal_diff_matrix(L, P)))
    for _ in range(d):
        S = out[-1][1]
        out.append(("regular", S[1:] - S[:-1]))
    return out


def arima_map(L: int, H: int, d: int, ar: np.ndarray, ma: np.ndarray, mean: float, P: int = 1,
              D: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(M (L, H), b (H,)): ARIMA(p, d, q)(0, D, 0)_P forecasts from a window of L values as the affine map
    ``window @ M + b``.

    The differences z of the window (a lag-P difference when D = 1, then d regular ones: L - D P - d values) follow
    a stationary ARMA with mean ``mean`` (for one difference, the drift); the forecast of the next H differences
    from the window alone is the best linear predictor mean + G (z - mean), G = Cov(future, window) Cov(window)^-1
    from the ARMA autocovariances (what the Kalman filter started from the stationary distribution computes); the
    levels are the differences summed back, stage by stage, from the window's own values."""
    from statsmodels.tsa.arima_process import arma_acovf

    stages = _stages(L, d, P, D)
    n = stages[-1][1].shape[0]
    acov = arma_acovf(np.r_[1.0, -np.asarray(ar, np.float64)], np.r_[1.0, np.asarray(ma, np.float64)], nobs=n + H)
    idx = np.arange(n + H)
    G_all = acov[np.abs(idx[:, None] - idx[None, :])]
    G = np.linalg.solve(G_all[:n, :n], G_all[:n, n:]).T  # (H, n)
    A = G @ stages[-1][1]  # (H, L): the innermost differences' forecast, linear part
    c = mean * (1.0 - G.sum(axis=1))  # and its constant
    for j in range(len(stages) - 1, 0, -1):  # undo the step into stage j: forecasts of stage j - 1
        kind, S = stages[j][0], stages[j - 1][1]
        lag = P if kind == "seasonal" else 1
        A2, c2 = np.empty_like(A), np.empty_like(c)
        for h in range(H):  # x[T + h] = x[T + h - lag] + z[T + h]; x[T + h - lag] from the window or a forecast
            back = h - lag
            prevA, prevc = (S[S.shape[0] + back], 0.0) if back < 0 else (A2[back], c2[back])
            A2[h], c2[h] = prevA + A[h], prevc + c[h]
        A, c = A2, c2
    return A.T.copy(), c


def _segments(W: np.ndarray, Y: np.ndarray) -> list[np.ndarray]:
    """The series the training windows were cut from: consecutive windows of one series overlap exactly."""
    out, start = [], 0
    for i in range(1, len(W) + 1):
        if i == len(W) or not (np.array_equal(W[i, :-1], W[i - 1, 1:]) and W[i, -1] == Y[i - 1, 0]):
            out.append(np.concatenate([W[start], W[start + 1:i, -1], Y[i - 1]]))
            start = i
    return out


class ARIMA:
    """ARIMA(p, d, q)(0, D, 0)_P with a constant (the mean without differences, the drift after one; none after
    two), as auto.arima does it: D = 1 (one lag-P difference) when the seasonal strength exceeds 0.64, d from
    repeated KPSS tests (5%, floor(3 sqrt(n) / 13) lags: auto.arima's and statsforecast's; statsmodels'
    automatic lag makes the test almost powerless on smooth series such as annual fertility rates), the order
    (p <= 5, q <= 5, p + q <= 5: auto.arima's bounds; with or without the constant) by AICc,
    fitted by statsmodels on the training series (the longest one when there are several; its last MAX_OBS
    values). Candidate orders are ranked by the exact likelihood at Hannan-Rissanen estimates, an order whose
    estimates there are explosive or non-invertible (OLS on a smooth series often is) by its maximum likelihood
    instead of being dropped; the REFIT best are then fitted by maximum likelihood (SARIMAX, scale concentrated
    out, at most MAX_ITER L-BFGS iterations) and the lowest AICc at the maximum wins: auto.arima's approximation
    (rank by a cheap fit, re-fit the best by exact ML). Exported as the affine map window -> forecast
    (:func:`arima_map`)."""

    family = "arima"
    MAX_P, MAX_Q, MAX_ORDER, MAX_D, MAX_OBS, MAX_ITER, REFIT = 5, 5, 5, 2, 400, 15, 3

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.order: tuple[int, int, int] | None = None
        self.constant = True
        self.params: np.ndarray | None = None
        self.M: np.ndarray | None = None
        self.b: np.ndarray | None = None

    @staticmethod
    def ndiffs(y: np.ndarray, max_d: int) -> int:
        import warnings

        from statsmodels.tsa.stattools import kpss

        d = 0
        while d < max_d and len(y) > 10 and np.ptp(y) > 0:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                p = kpss(y, regression="c", nlags=int(3 * np.sqrt(len(y)) / 13))[1]
            if p >= 0.05:
                break
            y, d = np.diff(y), d + 1
        return d

    def fit(self, W: np.ndarray, k: np.ndarray, Y: np.ndarray, Z: np.ndarray | None = None) -> "ARIMA":
        import warnings

        from statsmodels.tsa.arima.estimators.hannan_rissanen import hannan_rissanen
        from statsmodels.tsa.statespace.sarimax import SARIMAX

        L, H, P = self.spec.lags, self.spec.horizon, self.spec.season
        y = max(_segments(np.asarray(W, np.float64), np.asarray(Y, np.float64)), key=len)[-self.MAX_OBS:]
        D = int(P > 1 and L - P >= 4 and len(y) >= 3 * P and seasonal_strength(y, P) > 0.64)
        ys = y[P:] - y[:-P] if D else y
        d = self.ndiffs(ys, min(self.MAX_D, L - D * P - 3))
        z = np.diff(ys, n=d) if d else ys
        scale = float(np.std(z)) or 1.0
        zs = z / scale  # the optimizer works in unit scale; the map is rescaled after
        n = len(zs)

        def aicc(llf: float, kpar: int) -> float:
            return -2 * llf + 2 * kpar + 2 * kpar * (kpar + 1) / (n - kpar - 1)

        def mle(p: int, q: int, const: bool, start: np.ndarray) -> tuple[float, np.ndarray] | None:
            """(AICc, parameters) at the maximum likelihood (stationary and invertible), or None."""
            mod = SARIMAX(zs, order=(p, 0, q), trend="c" if const else "n", concentrate_scale=True)
            if len(start):  # the fit's log-likelihood is the one at its parameters: no second filter pass
                res = mod.fit(start_params=start, disp=False, maxiter=self.MAX_ITER)
                par, llf = np.asarray(res.params, np.float64), float(res.llf)
            else:
                par, llf = start, float(mod.loglike(start))
            if not (_stationary(par[int(const):int(const) + p]) and _stationary(-par[int(const) + p:])):
                return None
            return aicc(llf, p + q + const + 1), par

        cands = []  # [AICc, p, q, const, parameters, at the maximum likelihood]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for const in ((True, False) if d + D == 1 else ((True,) if d + D == 0 else (False,))):
                for p in range(self.MAX_P + 1):
                    for q in range(self.MAX_Q + 1):
                        kpar = p + q + const + 1
                        if p + q > self.MAX_ORDER or n - kpar - 1 <= 0 or n < 3 * (p + q + 1):
                            continue
                        try:
                            mu = float(zs.mean()) if const else 0.0
                            ar, ma, admissible = np.zeros(p), np.zeros(q), True
                            if p or q:
                                hr, _ = hannan_rissanen(zs - mu, ar_order=p, ma_order=q, demean=False)
                                ar2, ma2 = np.asarray(hr.ar_params), np.asarray(hr.ma_params)
                                admissible = _stationary(ar2) and _stationary(-ma2)
                                if admissible:
                                    ar, ma = ar2, ma2
                            start = np.r_[[mu * (1 - ar.sum())] if const else [], ar, ma]
                            if admissible:  # the exact likelihood at the Hannan-Rissanen estimates
                                llf = float(SARIMAX(zs, order=(p, 0, q), trend="c" if const else "n",
                                                    concentrate_scale=True).loglike(start))
                                cands.append([aicc(llf, kpar), p, q, const, start, False])
                            else:  # explosive or non-invertible there (OLS on a smooth series): fit it properly
                                got = mle(p, q, const, np.r_[start[:int(const)], np.zeros(p + q)])
                                if got is not None:
                                    cands.append([got[0], p, q, const, got[1], True])
                        except Exception:  # noqa: BLE001 - an order that cannot be estimated is no candidate
                            continue
            cands = sorted((c for c in cands if np.isfinite(c[0])), key=lambda c: c[0])
            best = None
            for c in cands[:self.REFIT]:  # the best few re-ranked at their maximum likelihood
                if not c[5]:
                    try:
                        got = mle(c[1], c[2], c[3], c[4])
                    except Exception:  # noqa: BLE001 - the optimizer failed: not this order
                        got = None
                    if got is None:
                        continue
                    c = [got[0], c[1], c[2], c[3], got[1], True]
                if best is None or c[0] < best[0]:
                    best = c
            if best is None:  # too short for any order: white noise (+ the constant) on the differences
                best = [np.inf, 0, 0, d + D < 2, np.r_[[float(zs.mean())] if d + D < 2 else []], True]
        _, p, q, const, par, _ = best
        ar = par[int(const):int(const) + p]
        ma = par[int(const) + p:int(const) + p + q]
        mean = float(par[0] / (1 - ar.sum())) * scale if const else 0.0
        self.order, self.constant, self.scale, self.seasonal_diff = (p, d, q), bool(const), scale, D
        self.params, self.ar, self.ma, self.mean = par, ar, ma, mean
        self.M, self.b = arima_map(L, H, d, ar, ma, mean, P, D)
        self.training_flops_ = int(2 * len(zs) * (self.MAX_P + self.MAX_Q + 2) ** 2 * 24 + 2 * (L + H) ** 3)
        return self

    def predict(self, W: np.ndarray, k: np.ndarray, Z: np.ndarray | None = None) -> np.ndarray:
        return np.asarray(W, np.float64) @ self.M + self.b

    def describe(self) -> dict[str, Any]:
        p, d, q = self.order or (None, None, None)
        return {"order": [p, d, q], "seasonal_difference": getattr(self, "seasonal_diff", 0), "constant": self.constant, "ar": [float(v) for v in getattr(self, "ar", [])],
                "ma": [float(v) for v in getattr(self, "ma", [])], "mean_of_differences": getattr(self, "mean", None),
                "form": "ARIMA (statsmodels SARIMAX, order by AICc, d by KPSS) as an affine map of the window"}

    def flops(self) -> int:
        return int(2 * self.spec.lags * self.spec.horizon + self.spec.horizon)


def seasonal_strength(y: np.ndarray, P: int) -> float:
    """Hyndman's seasonal strength max(0, 1 - var(remainder) / var(season + remainder)) from a classical additive
    decomposition (centred moving-average trend): auto.arima takes one seasonal difference above 0.64."""
    y = np.asarray(y, np.float64)
    if P % 2 == 0:
        k = np.r_[0.5, np.ones(P - 1), 0.5] / P
    else:
        k = np.ones(P) / P
    trend = np.convolve(y, k, mode="valid")
    off = (len(y) - len(trend)) // 2
    detr = y[off:off + len(trend)] - trend
    ph = (np.arange(len(detr)) + off) % P
    season = np.array([detr[ph == j].mean() for j in range(P)])
    season -= season.mean()
    rem = detr - season[ph]
    v = np.var(detr)
    return float(max(0.0, 1 - np.var(rem) / v)) if v > 0 else 0.0


def _stationary(ar: np.ndarray) -> bool:
    """The AR polynomial 1 - ar_1 z - ... has all roots outside the unit circle (a margin of 1e-3)."""
    if not len(ar):
        return True
    return bool(np.all(np.abs(np.roots(np.r_[1.0, -np.asarray(ar)][::-1])) > 1.001))


class _torch_threads:
    def __init__(self, n: int) -> None:
        self.n = n

    def __enter__(self) -> None:
        import torch

        self.old = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc: Any) -> None:
        import torch

        torch.set_num_threads(self.old)


def make_model(family: str, spec: Spec, cfg: Any) -> Any:
    if family == "seasonal_naive":
        return SeasonalNaive(spec)
    if family == "linear":
        return LinearAR(spec, cfg.ridge)
    if family == "lightgbm":
        return LightGBMAR(spec, cfg.lgbm_trees, cfg.lgbm_leaves, cfg.lgbm_lr, cfg.seed)
    if family == "mlp":
        return MLPAR(spec, seed=cfg.seed)
    if family == "ets":
        return ETS(spec)
    if family == "ar":
        return RawAR(spec)
    if family == "drift":
        return Drift(spec)
    if family == "arima":
        return ARIMA(spec)
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
