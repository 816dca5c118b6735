"""A forecasting run, top to bottom.

1. read the table into regular series (time column, frequency, missing steps and values filled, reported);
2. infer the season, horizon H and window L (or take them from the config);
3. rolling-origin backtest: ``folds`` origins, H steps apart, at the end of every series; at each origin every
   candidate is fitted on the windows whose targets end before it and forecasts the next H steps;
4. the first ``folds - test_folds`` origins choose the model and calibrate the intervals (split conformal, per
   horizon step, on residuals scaled by each window's scale; never narrower than the same quantile of the
   model's own errors on its training windows, ``insample_quantiles``); the last ``test_folds`` origins are held out: the
   reported metrics and the intervals' measured coverage. The choice (``select``): the candidates whose per-fold
   validation MASE is not worse than the lowest-MASE candidate's beyond noise (paired fold differences: mean gap
   > ``separating_t(k)`` standard errors, Student's t at 97.5% with k - 1 degrees of freedom for k validation
   folds and never under ``Z_SEPARATE``, and > ``MIN_GAP``) are tied; on one series ``arima`` when it is tied
   (it chose its form, which includes the random walk with or without drift and simple or trend exponential
   smoothing, by AICc over the whole training history: the in-sample choice decides what the folds cannot);
   else two or more tied statistical models (drift, ets; arima too with several series) give their combination (the forecasts' mean weighted by 1 / validation
   MASE^2 (``combination_weights``), one affine map like each of them); else the simplest tied candidate, so a
   more complex model wins only when it beats ``arima`` and the simpler ones by a margin that separates over the
   validation folds (DESIGN.md section 8);
5. refit the chosen model on every window, export one graph, check it against the model on the last windows.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from ...errors import DataError
from .._base import Trained
from ._config import ForecastConfig
from ._data import Series, epoch_seconds, prepare_series, season_of, step_index, step_seconds
from ._models import COMBINED, FAMILIES, Combination, Spec, conformal_quantile, make_model, metrics, window_features

__all__ = ["fit_forecast", "plan", "windows", "backtest", "select", "separating_t", "insample_quantiles",
           "heldout_quantiles", "combination_weights", "combine_folds"]

PARITY_WINDOWS = 200
Z_SEPARATE = 2.0  # standard errors of the paired per-fold differences (the tabular race's Z_DROP)
MIN_GAP = 0.005  # MASE: a smaller mean gap is never a difference


def separating_t(k: int) -> float:
    """Standard errors a mean paired gap over ``k`` folds must exceed to count: Student's t at 97.5% with k - 1
    degrees of freedom (the standard error comes from k differences: 12.7 for 2 folds, 3.2 for 4, 2.6 for 6),
    never under ``Z_SEPARATE``. A fixed 2 treated a gap over 2 validation folds as known to within its
    standard error, and the rule then bet on noise (replayed on the 72 design series)."""
    from scipy import stats

    return max(Z_SEPARATE, float(stats.t.ppf(0.975, max(k - 1, 1))))


def select(families: Sequence[str], per_fold: dict[str, list[float]], one_series: bool = True) -> tuple[str, str, list[str]]:
    """(family, why, members) from the per-fold validation MASE of ``families`` (ordered simplest first).

    The candidates not separably worse than the one with the lowest mean are the tied set: with d = a
    candidate's fold MASE - the best's, separated when mean(d) > max(separating_t(folds) * sd(d) / sqrt(folds),
    MIN_GAP). Then, in order:

    - ``arima`` in the tied set of a ``one_series`` run: ``arima`` (members: [it]). It picked its form by AICc
      over every training observation, and that form includes the random walk (0, 1, 0), the random walk with
      drift (with the constant), simple (0, 1, 1) and linear-trend (0, 2, 2) exponential smoothing; when a few
      validation folds cannot tell the candidates apart, the choice made on the whole history decides (replayed
      on the 72 design series, this and ``separating_t`` took the mean held-out MASE from 1.427 to 1.216: the
      old fallbacks, the simplest tied candidate or a mean with worse members, lost most on short trending
      series). With several series arima is fitted on the longest one only, so that argument does not hold and
      it is a combination member like the others;
    - two or more statistical models (COMBINED: drift, ets, and arima with several series; the seasonal_naive
      baseline is no member) in the tied set: their combination (``combination``, members: those candidates),
      since the mean of forecasts no fold separates is never worse, origin by origin, than their mean absolute
      error (the triangle inequality);
    - else the simplest candidate in the tied set (members: [it]).

    Validation folds only; the held-out folds never enter."""
    from ..tabular._select import paired_gap

    means = {f: float(np.mean(per_fold[f])) for f in families}
    best = min(families, key=lambda f: (means[f], list(families).index(f)))
    k = len(per_fold[best])
    z = separating_t(k)
    tied, gaps = [], {}
    for fam in families:
        gap, se = paired_gap(per_fold[best], per_fold[fam], greater=False)
        gaps[fam] = (gap, se)
        if fam == best or gap <= max(z * se, MIN_GAP):
            tied.append(fam)
    noise = f"over {k} validation folds (gap <= max({z:.3g} SE of the paired fold differences, {MIN_GAP:g}))"
    stat = [f for f in tied if f in COMBINED]
    if "arima" in tied and one_series:
        if best == "arima":
            others = [f for f in tied if f != "arima"]
            why = (f"arima: lowest validation MASE ({means[best]:.4f}) over {k} validation folds; " + (
                "every other candidate worse beyond noise" if not others else
                f"{', '.join(others)} within noise of it {noise}, and the form arima chose by AICc over the whole "
                "training history decides what the folds cannot"))
        else:
            gap, se = gaps["arima"]
            why = (f"arima: within noise of the lowest validation MASE ({best} {means[best]:.4f}, arima "
                   f"{means['arima']:.4f}, gap {gap:.4f} <= max({z:.3g} SE = {z * se:.4f}, {MIN_GAP:g}) over {k} "
                   "validation folds), so the form arima chose by AICc over the whole training history decides")
        return "arima", why, ["arima"]
    if len(stat) >= 2:
        why = (f"combination of the statistical models {', '.join(stat)}: none is worse beyond noise than "
               f"the lowest validation MASE ({best} {means[best]:.4f}; theirs " + ", ".join(
                   f"{f} {means[f]:.4f}" for f in stat) + f") {noise}, so the folds cannot tell them apart and their "
               "weighted mean forecast is never worse than their weighted average error")
        return "combination", why, stat
    fam = tied[0]
    gap, se = gaps[fam]
    if fam == best:
        why = (f"lowest validation MASE ({best} {means[best]:.4f}) over {k} validation folds, and every simpler "
               f"candidate worse beyond noise (> {z:.3g} SE of the paired fold differences)")
    else:
        why = (f"simplest candidate within noise of the lowest validation MASE: {means[fam]:.4f} vs {best} "
               f"{means[best]:.4f} (gap {gap:.4f} <= max({z:.3g} SE = {z * se:.4f}, {MIN_GAP:g}) over "
               f"{k} validation folds)")
    return fam, why, [fam]


def combination_weights(per_fold: dict[str, list[float]], members: Sequence[str]) -> list[float]:
    """The members' weights in a combination: inverse error variance (Bates and Granger), w_m proportional to
    1 / v_m^2 with v_m the member's mean validation MASE (an absolute error, so its square stands for the error
    variance), normalised to sum to 1. A member the folds cannot separate from the best still counts, but one
    several times worse on validation counts little. Tuned on the design series only (s19 replayed offline,
    equal -> these weights: the 21 s19 hold-out series 1.068 -> 0.956, the 31 earlier design series 2.165 ->
    2.071; better on 14 series, worse on 10, by at most 0.3)."""
    inv = np.array([1.0 / max(float(np.mean(per_fold[m])), 1e-6) ** 2 for m in members])
    return [float(v) for v in inv / inv.sum()]


def combine_folds(folds: dict[str, list[dict[str, Any]]], members: Sequence[str],
                  weights: Sequence[float] | None = None) -> list[dict[str, Any]]:
    """The backtest folds of the combination: per fold, the weighted mean of the members' forecasts (``f``, and
    ``cal``'s ``f``; equal weights by default) and of their in-sample interval quantiles (``q_in``: the mean of
    forecasts errs no more than the members' mean error, point by point); truth, scales and origins are the
    members' own (the same for every candidate)."""
    w = np.full(len(members), 1.0 / len(members)) if weights is None else np.asarray(weights, np.float64) / np.sum(weights)

    def wmean(arrays: list[np.ndarray]) -> np.ndarray:
        return np.tensordot(w, np.stack(arrays), axes=1)

    return [{**first, "f": wmean([folds[m][i]["f"] for m in members]),
             "cal": {**first["cal"], "f": wmean([folds[m][i]["cal"]["f"] for m in members])},
             "q_in": wmean([folds[m][i]["q_in"] for m in members])}
            for i, first in enumerate(folds[members[0]])]


def plan(series: list[Series], freq: str, cfg: ForecastConfig, say: Callable[[str], None]) -> Spec:
    """Season, horizon and window length: from the config, else inferred from the frequency and the lengths."""
    n_min = min(len(s.values) for s in series)
    P = cfg.season or season_of(freq)
    if cfg.season is None and P > 1 and n_min < 3 * P:
        say(f"note: no seasonal terms: the shortest series has {n_min} steps, under 3 seasons of {P}")
        P = 1
    H = cfg.horizon or (P if 2 <= P <= 24 else (13 if P > 24 else 5))
    F = cfg.folds
    room = n_min - H * F
    L = cfg.lags or (2 * P if P > 1 else (24 if n_min >= 200 else 12))
    if cfg.lags is None:
        L = max(min(L, room // 2), max(P, 2) if P > 1 else 2)
    need = L + H * F + max(H, 10)
    if n_min < need:
        raise DataError(
            f"The shortest series has {n_min} steps; a window of {L} (lags) plus {F} backtest folds of {H} steps "
            f"(horizon) and some training windows needs at least {need}. Pass a longer history, or smaller "
            "--set horizon=, lags= or folds=.")
    if P > L:
        raise DataError(f"lags={L} is shorter than the season ({P} steps); the seasonal-naive baseline needs a whole "
                        "season in the window: raise lags or set season=1.")
    J = min(3, P // 2) if P >= 2 else 0
    return Spec(int(L), int(H), int(P), int(J))


def windows(s: Series, k: np.ndarray, origins: Sequence[int], L: int, H: int
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(W (N, L), Y (N, H), k of the first forecast step (N,), Z (N, H, C) the known-future covariates at the H
    target steps) at the given origins (index of the first step)."""
    o = np.asarray(list(origins), dtype=np.int64)
    C = 0 if s.covs is None else s.covs.shape[1]
    if not len(o):
        return np.zeros((0, L)), np.zeros((0, H)), np.zeros(0, np.int64), np.zeros((0, H, C))
    idx = o[:, None] + np.arange(-L, 0)[None, :]
    tgt = o[:, None] + np.arange(H)[None, :]
    Z = s.covs[tgt] if C else np.zeros((len(o), H, 0))
    return s.values[idx], s.values[tgt], k[o], Z


def _scale(v: np.ndarray, m: int) -> float:
    """In-sample MAE of the seasonal-naive forecast (lag m): the MASE denominator."""
    d = np.abs(v[m:] - v[:-m]) if len(v) > m else np.abs(np.diff(v))
    return float(np.mean(d)) if len(d) and np.mean(d) > 0 else 1.0


def backtest(series: list[Series], ks: list[np.ndarray], spec: Spec, cfg: ForecastConfig, families: Sequence[str],
             say: Callable[[str], None]) -> dict[str, Any]:
    """Per family and fold: forecasts, truth, MASE scales and window scales at each series' fold origin (the
    metrics), the same fold's model forecasting from every origin up to the next fold's (``cal``: residuals
    for the intervals, with each origin's index ``o`` and the first index after the series ``n``), and the fold
    model's in-sample interval quantiles on its own training windows (``q_in``, :func:`insample_quantiles`)."""

    L, H, F, P = spec.lags, spec.horizon, cfg.folds, spec.season
    m = P if P > 1 else 1
    out: dict[str, Any] = {f: [] for f in families}
    flops = {f: 0 for f in families}
    for fold in range(F):
        parts = []
        tests = []
        cals = []
        for s, k in zip(series, ks):
            n = len(s.values)
            cut = n - H * (F - fold)
            parts.append(windows(s, k, range(L, cut - H + 1), L, H))
            W, Y, kk, Z = windows(s, k, [cut], L, H)
            tests.append((W, Y, kk, Z, _scale(s.values[:cut], m)))
            origins = list(range(cut, min(cut + H, n - H + 1)))
            cals.append((*windows(s, k, origins, L, H), np.asarray(origins), np.full(len(origins), n),
                         np.full(len(origins), tests[-1][4])))
        Wtr, Ytr, ktr, Ztr = (np.concatenate([p[i] for p in parts]) for i in range(4))
        Wte, Yte, kte, Zte = (np.concatenate([t[i] for t in tests]) for i in range(4))
        Wc, Yc, kc, Zc, oc, nc, sc = (np.concatenate([c[i] for c in cals]) for i in range(7))
        scale = np.asarray([t[4] for t in tests])[:, None]
        _, _, s_win = window_features(Wte, np.float64)
        _, _, s_cal = window_features(Wc, np.float64)
        for fam in families:
            model = make_model(fam, spec, cfg).fit(Wtr, ktr, Ytr, Ztr)
            flops[fam] += int(getattr(model, "training_flops_", 0))
            fc = model.predict(Wc, kc, Zc)
            out[fam].append({"f": model.predict(Wte, kte, Zte), "y": Yte, "scale": scale, "s": s_win,
                             "cal": {"f": fc, "y": Yc, "s": s_cal, "o": oc, "n": nc, "scale": sc[:, None]},
                             "q_in": insample_quantiles(model, Wtr, ktr, Ytr, Ztr, cfg.coverage)})
    return {"folds": out, "flops": flops}


def interval_quantiles(cal: Sequence[dict[str, Any]], coverage: float, before: int | None = None) -> np.ndarray:
    """Interval half-widths per horizon step, in units of the window scale: split conformal on the backtest
    residuals |y - f| / s of every origin in ``cal`` (the folds' ``cal`` parts; with ``before`` = the number of
    steps each series' calibration targets must end before its end, e.g. the held-out folds' steps).

    The residuals grow with the step: each step's RMS (made non-decreasing in the step) is the step's scale; the
    residuals divided by it are pooled over steps (H times the points of one step) for one conformal quantile,
    which is multiplied back by each step's scale."""
    r_parts = []
    for c in cal:
        keep = np.ones(len(c["o"]), bool) if before is None else (c["o"] + c["f"].shape[1] <= c["n"] - before)
        r_parts.append(np.abs(c["y"][keep] - c["f"][keep]) / c["s"][keep])
    r = np.concatenate(r_parts) if r_parts else np.zeros((0, 1))
    if not len(r):
        return np.full(r.shape[1], np.inf)
    g = np.sqrt(np.mean(r ** 2, axis=0))
    g = np.maximum.accumulate(np.maximum(g, 1e-9))
    q = conformal_quantile((r / g).reshape(-1, 1), coverage)[0]
    return q * g


def insample_quantiles(model: Any, W: np.ndarray, k: np.ndarray, Y: np.ndarray, Z: np.ndarray | None,
                       coverage: float) -> np.ndarray:
    """(H,) interval half-widths in units of the window scale from the model's own errors on its training
    windows: per step, the conformal quantile of |y - f| / s at ``coverage``, non-decreasing in the step.

    The intervals are the wider, step by step, of this and the split-conformal width from the validation
    origins (:func:`interval_quantiles`): those come from a few origins on a short series (10 on a 52-year one)
    and under-cover there, these from every training window but optimistic for a model that fits its training
    data closely; each fails where the other holds. Replayed on the design series (90% nominal, held-out
    origins): 47 short annual series 79% -> 89%, 23 longer ones 80% -> 84%, widths x1.16 and x1.05 (medians)."""
    _, _, s = window_features(W, np.float64)
    r = np.abs(np.asarray(Y, np.float64) - model.predict(W, k, Z)) / s
    return np.maximum.accumulate(conformal_quantile(r, coverage)) if len(r) else np.zeros(np.shape(Y)[1])


def interval_coverage(cal: Sequence[dict[str, Any]], q: np.ndarray | Sequence[np.ndarray]) -> tuple[np.ndarray, int]:
    """(per-step share of the truth inside forecast +- q * s, points) over every origin of ``cal``; ``q`` one
    array for every part of ``cal`` or one per part."""
    qs = list(q) if isinstance(q, (list, tuple)) else [q] * len(cal)
    inside = np.concatenate([np.abs(c["y"] - c["f"]) <= qq[None, :] * c["s"] for c, qq in zip(cal, qs)])
    return inside.mean(axis=0), int(inside.size)


def heldout_quantiles(folds: Sequence[dict[str, Any]], n_val: int, held: int, coverage: float) -> list[np.ndarray]:
    """The interval half-widths at each held-out fold (``folds[n_val:]``), from data before the held-out folds
    only: the wider of the validation origins' split-conformal width and the fold model's in-sample width."""
    q_val = interval_quantiles([f["cal"] for f in folds[:n_val]], coverage, before=held)
    return [np.maximum(q_val, f["q_in"]) for f in folds[n_val:]]


def _pool(folds: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    return {key: np.concatenate([f[key] for f in folds]) for key in ("f", "y", "scale", "s")} if folds else {}


def fit_forecast(frame: pd.DataFrame, config: Any, *, source: str = "dataframe", callbacks: Sequence[Any] = (),
                 checkpoint_dir: str | Path | None = None, log: Callable[[str], None] | None = None) -> Trained:
    from ... import data as D
    from ..tabular import library_versions
    from ._graph import build_graph

    say = log or (lambda msg: None)
    cfg = ForecastConfig.coerce(config)
    if not cfg.target:
        raise DataError("No target column given; pass --target COLUMN (the values to forecast).")
    target = cfg.target
    series, notes = prepare_series(frame, target, cfg.timestamp, cfg.series, cfg.freq, say, cfg.covariates)
    covs = list(notes.get("covariates") or [])
    freq = notes["freq"]
    spec = plan(series, freq, cfg, say)
    L, H, P = spec.lags, spec.horizon, spec.season
    t0 = int(min(epoch_seconds(s.times[:1])[0] for s in series))
    step_s = step_seconds(freq)
    ks = []
    for s in series:
        k = step_index(epoch_seconds(s.times), t0, step_s)
        if len(k) > 1 and not (np.diff(k) == 1).all():  # the linear step index must walk the grid one by one
            raise DataError(f"Series {s.id!r}: its {freq!r} steps do not map one-to-one onto step numbers; this is a "
                            "bug, please report it with the frequency.")
        ks.append(k)
    say(f"forecast {target!r}: {len(series)} series, frequency {freq!r}, season {P}, horizon {H}, window {L} "
        f"(steps: {sum(len(s.values) for s in series)})")

    n_windows = sum(max(0, len(s.values) - L - H * cfg.folds - H + 1) for s in series)  # the first fold's training windows
    if cfg.model == "auto":
        families = [f for f in FAMILIES if f not in ("lightgbm", "mlp") or n_windows >= cfg.min_windows_ml]
        if len(families) < len(FAMILIES):
            say(f"note: lightgbm and mlp are not candidates: the first backtest fold trains on {n_windows} windows, "
                f"under min_windows_ml={cfg.min_windows_ml}")
    else:
        families = sorted({"seasonal_naive", cfg.model}, key=FAMILIES.index)
    t_start = time.perf_counter()
    bt = backtest(series, ks, spec, cfg, families, say)
    n_val = cfg.folds - cfg.test_folds
    candidates: dict[str, Any] = {}
    held = cfg.test_folds * H

    def scores(fam: str) -> None:
        test = _pool(bt["folds"][fam][n_val:])
        cal = [f["cal"] for f in bt["folds"][fam][:n_val]]
        keep = [c["o"] + H <= c["n"] - held for c in cal]  # targets before the held-out folds
        val = {key: np.concatenate([c[key][m] for c, m in zip(cal, keep)]) for key in ("y", "f", "scale")}
        per_fold = [metrics(c["y"][m], c["f"][m], c["scale"][m])["mase"] for c, m in zip(cal, keep) if m.any()]
        candidates[fam] = {"validation": metrics(val["y"], val["f"], val["scale"]),
                           "validation_folds": [round(v, 6) for v in per_fold],
                           "test": metrics(test["y"], test["f"], test["scale"])}
        say(f"  {fam:>14}: backtest MASE validation {candidates[fam]['validation']['mase']:.4f} "
            f"(per fold {' '.join(f'{v:.3f}' for v in per_fold)}), test {candidates[fam]['test']['mase']:.4f}")

    for fam in families:
        scores(fam)
    if cfg.model == "auto":
        family, why, members = select(families, {f: candidates[f]["validation_folds"] for f in families},
                                      one_series=len(series) == 1)
    else:
        family, why, members = cfg.model, "asked for", [cfg.model]
    weights = None
    if family == "combination":  # its backtest: the members' forecasts averaged (for its metrics and intervals)
        weights = combination_weights({f: candidates[f]["validation_folds"] for f in members}, members)
        why += ("; weighted by inverse error variance (1 / mean validation MASE^2): "
                + ", ".join(f"{f} {w:.3f}" for f, w in zip(members, weights)))
        bt["folds"]["combination"] = combine_folds(bt["folds"], members, weights)
        scores("combination")
    say(f"selected: {family} ({why})")

    # ---- intervals: calibrated on the validation folds' origins, coverage measured on the held-out folds' origins
    folds_f = bt["folds"][family]
    per_step, points = interval_coverage([f["cal"] for f in folds_f[n_val:]],
                                         heldout_quantiles(folds_f, n_val, held, cfg.coverage))
    coverage = {"nominal": cfg.coverage, "measured": float(per_step.mean()), "points": points,
                "per_step": [round(float(c), 4) for c in per_step],
                "how": "per step the wider of (a) split conformal on |residual| / window scale from every backtest "
                       "origin, each step's residual RMS (non-decreasing in the step) as its scale, pooled over steps, "
                       "and (b) the same quantile of the model's own errors on its training windows: calibrated on the "
                       "validation folds' origins (targets before the held-out folds) and each held-out fold model's "
                       "training windows, measured on the held-out folds' origins"}
    q_conformal = interval_quantiles([f["cal"] for f in folds_f], cfg.coverage)
    say(f"intervals: {cfg.coverage:.0%} nominal, {coverage['measured']:.1%} measured on {points} held-out points "
        f"(backtest origins after the validation folds)")

    # ---- refit on every window, export, parity
    allw = [windows(s, k, range(L, len(s.values) - H + 1), L, H) for s, k in zip(series, ks)]
    W_all, Y_all, k_all, Z_all = (np.concatenate([w[i] for w in allw]) for i in range(4))
    if family == "combination":
        model = Combination(spec, [make_model(m, spec, cfg).fit(W_all, k_all, Y_all, Z_all) for m in members], weights)
    else:
        model = make_model(family, spec, cfg).fit(W_all, k_all, Y_all, Z_all)
    q_in = insample_quantiles(model, W_all, k_all, Y_all, Z_all, cfg.coverage)
    q = np.maximum(q_conformal, q_in)
    fit_s = time.perf_counter() - t_start
    flops = int(sum(bt["flops"].values()) + getattr(model, "training_flops_", 0))
    model_bytes = build_graph(model, spec, t0, step_s, q, n_cov=len(covs))
    W_p, k_p, Z_p = W_all[-PARITY_WINDOWS:], k_all[-PARITY_WINDOWS:], Z_all[-PARITY_WINDOWS:]
    parity = _parity(model_bytes, model, W_p, k_p, t0, step_s, Z_p)
    if parity["windows_off"] > max(2, 0.02 * len(W_p)):
        raise DataError(f"The exported forecasting graph disagrees with the {family} model on {parity['windows_off']} of "
                        f"{len(W_p)} windows (max relative difference {parity['max_rel_diff']:.2e}); this is a bug, please "
                        "report it.")
    say(f"graph parity with the {family} model: max relative difference {parity['max_rel_diff']:.1e} on {len(W_p)} windows")

    # ---- stored history (the state a request without history forecasts from), profile, manifest
    ts_col, sid_col = notes["timestamp"], notes["series_column"]
    history = {"format": 1, "freq": freq, "lags": L, "horizon": H, "series_column": sid_col,
               "covariates": covs,
               "series": {s.id: {"end": s.times[-1].isoformat(), "values": [float(v) for v in s.values[-(L + cfg.folds * H):]],
                                 **({"covariates": s.covs[-(L + cfg.folds * H):].tolist()} if covs else {})}
                          for s in series}}
    future = []
    for s in series:
        nxt = pd.date_range(s.times[-1], periods=H + 1, freq=freq)[1:]
        for t in nxt:  # (covariates: the last known values; these rows time the model, nobody scores them)
            future.append({ts_col: t.isoformat(), **({sid_col: s.id} if sid_col else {}),
                           **{c: float(s.covs[-1, j]) for j, c in enumerate(covs)}})
    test_frame = pd.DataFrame(future)
    inputs = [{"name": ts_col, "kind": "datetime", "dtype": "string",
               "description": f"the time to forecast: one of the {H} steps after the stored history's end"}]
    if sid_col:
        inputs.append({"name": sid_col, "kind": "categorical", "dtype": "string", "categories": [s.id for s in series]})
    for c in covs:
        inputs.append({"name": c, "kind": "numeric", "dtype": "float64",
                       "description": "known-future covariate: its value at the time to forecast (required)"})
    values = np.concatenate([s.values for s in series])
    profile = {"n_rows": int(len(values)), "columns": {sid_col: {"kind": "categorical", "top": {series[0].id: 1.0}}} if sid_col else {},
               "target": {"kind": "numeric", "mean": float(values.mean()), "std": float(values.std())}}
    c_test = candidates[family]["test"]
    manifest: dict[str, Any] = {
        "libraries": library_versions(),
        "task": {"workload": "forecast", "kind": "regression", "target": target, "labels": None,
                 "timestamp": ts_col, "series_column": sid_col, "covariates": covs, "freq": freq, "season": P, "horizon": H, "lags": L,
                 "series": len(series), "next": pd.date_range(series[0].times[-1], periods=2, freq=freq)[1].isoformat()},
        "inputs": inputs,
        "outputs": [{"name": "value", "kind": "value", "description": "the forecast for the row's time"},
                    {"name": "forecast", "kind": "forecast", "shape": [H], "description": "the H steps after the history"},
                    {"name": "lower", "kind": "interval_lower", "coverage": cfg.coverage,
                     "description": f"lower end of the {cfg.coverage:.0%} prediction interval for the row's time "
                                    f"(measured coverage on held-out backtest origins: {coverage['measured']:.1%})"},
                    {"name": "upper", "kind": "interval_upper", "coverage": cfg.coverage,
                     "description": f"upper end of the {cfg.coverage:.0%} prediction interval"}],
        "model": {"family": family, "members": members, **({"weights": weights} if weights else {}), "selection": why, "multi_step": "direct", "spec": spec.to_dict(),
                  "describe": model.describe(), "t0": t0, "step_s": step_s,
                  "interval_quantiles": [float(v) for v in q],
                  "interval_parts": {"conformal": [float(v) for v in q_conformal], "in_sample": [float(v) for v in q_in]},
                  "mase_scale": float(np.mean([_scale(s.values, P if P > 1 else 1) for s in series]))},
        "onnx": {"opset": 17, "inputs": "window float32 (N, L), start int64 (N, 1) epoch seconds of the first forecast "
                 "step, step int64 (N, 1) in 1..H", "outputs": "value/lower/upper (N,) at step, forecast/forecast_lower/forecast_upper (N, H)", **parity},
        "config": cfg.to_dict(),
        "data": {"source": source, "fingerprint": D.fingerprint(frame.reset_index(drop=True)),
                 "rows": {"train": int(len(values)), "validation": 0, "test": int(c_test and sum(f["y"].size for f in folds_f[n_val:]))},
                 **{k: v for k, v in notes.items() if k != "timestamp"}},
        "metrics": {"primary": {"name": "mase", "value": c_test["mase"], "split": "test (held-out backtest folds)"},
                    "validation": candidates[family]["validation"], "test": c_test,
                    "candidates": candidates, "selection": "rolling-origin backtest",
                    "backtest": {"folds": cfg.folds, "test_folds": cfg.test_folds, "step": H},
                    "baseline": {"name": "seasonal_naive", **candidates["seasonal_naive"]["test"]},
                    "coverage": coverage},
        "lineage": {"parent": None, "data_source": source},
    }
    files = {"model.onnx": model_bytes, "history.json": json.dumps(history, sort_keys=True).encode(),
             "profile.json": json.dumps(profile, sort_keys=True).encode()}
    return Trained(manifest, files, test_frame=test_frame, training_flops=flops,
                   flops_methods={"forecast": "ridge: 2 N F^2 + 2 F^3 per fit; lightgbm: 6 x rows x features x trees "
                                              "per fit (estimate); every backtest fold and the refit"},
                   extra={"model": model, "spec": spec, "series": series, "ks": ks, "backtest": bt, "fit_s": fit_s,
                          "windows": (W_all, Y_all, k_all)})


def _parity(model_bytes: bytes, model: Any, W: np.ndarray, k: np.ndarray, t0: int, step_s: float,
            Z: np.ndarray | None = None) -> dict[str, Any]:
    import onnxruntime as ort

    if not len(W):
        return {"max_rel_diff": 0.0, "windows_off": 0, "parity_windows": 0}
    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    start = (np.int64(t0) + np.round(k * step_s).astype(np.int64)).reshape(-1, 1)
    feeds = {"window": W.astype(np.float32), "start": start, "step": np.ones((len(W), 1), np.int64)}
    if Z is not None and Z.shape[2]:
        feeds["future"] = Z.astype(np.float32)
    got = sess.run(["forecast"], feeds)[0]
    ref = model.predict(W, k, Z)
    rel = np.abs(got - ref).max(axis=1) / np.maximum(np.abs(ref).max(axis=1), 1e-6)
    return {"max_rel_diff": float(rel.max()), "windows_off": int((rel > 1e-4).sum()), "parity_windows": int(len(W))}
