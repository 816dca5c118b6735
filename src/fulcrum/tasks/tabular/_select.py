"""Model selection for tables within a time limit: presets, a deadline, a race over CV folds (successive
halving that drops candidates which cannot catch up), a small Optuna search for LightGBM, ensemble
selection on out-of-fold predictions, batch-1 latency of candidate graphs, and the leaderboard.

``_fit.fit_tabular`` runs the recipe; this module holds the parts it is made of.

Presets (``--preset``, default ``balanced``); ``time_limit`` bounds the whole run in every preset:

============  =====================  =========================  ========================
              fast                   balanced                   best
============  =====================  =========================  ========================
candidates    linear, LightGBM       linear, LightGBM, search,  linear, LightGBM, search,
                                     MLP from 5,000 rows (rule  MLP from 1,000 rows (rule
                                     below)                     below)
CV folds      3                      5                          8
search        none                   12 LightGBM trials         60 LightGBM trials
ensemble      no                     when it beats the best     when it beats the best
                                     single model beyond noise  single model beyond noise
refit_full    no                     yes                        yes
time limit    5 s x size factor      12 s x size factor         120 s x size factor
============  =====================  =========================  ========================

Size factor: ``max(1, cells / 200,000) ** 0.8`` with cells = rows x input columns (1 below 200,000
cells, e.g. under 10,000 rows of 20 columns), capped at one hour.

The search stops early once `patience` trials in a row (balanced 6, best 20) beat no earlier candidate by
MIN_GAP (0.005 of the metric): on small tables it converges in a few trials.

The MLP rule: the MLP runs after the linear model, LightGBM and the search, only when train+validation
has at least 5,000 rows (balanced; 1,000 for best) and the estimate of its CV time fits in the selection
time left (the search leaves it that time): steps per epoch x 50 epochs x folds / folds at a time, at the
time per step measured on 10 steps of the same network on this machine. Small tables rarely gain from a
neural net over boosted trees and a linear model, and it is the slowest candidate to train.
"""

from __future__ import annotations

import contextvars
import math
import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ...training import Callback

__all__ = ["PRESETS", "Plan", "make_plan", "default_time_limit", "Deadline", "RUN_STARTED", "DeadlineStop",
           "Candidate", "Race", "paired_gap", "graph_latency_ms", "format_leaderboard", "plot_leaderboard"]

PRESETS: dict[str, dict[str, Any]] = {
    "fast": {"folds": 3, "trials": 0, "ensemble": False, "refit_full": False, "mlp_min_rows": None, "base_limit": 5.0,
             "patience": 0},
    "balanced": {"folds": 5, "trials": 12, "ensemble": True, "refit_full": True, "mlp_min_rows": 5000,
                 "base_limit": 12.0, "patience": 6},
    "best": {"folds": 8, "trials": 60, "ensemble": True, "refit_full": True, "mlp_min_rows": 1000,
             "base_limit": 120.0, "patience": 20},
}
MAX_DEFAULT_LIMIT = 3600.0
#: selection (the race and the search) may use this share of the limit; the rest is for the final fits,
#: refit_full, export and the inference measurement
SELECTION_SHARE = 0.7
#: gaps smaller than this (in the metric's units) never decide anything, however small the noise
MIN_GAP = 0.005
#: a candidate is dropped when it trails the leader by more than Z standard errors of the paired fold differences
Z_DROP = 2.0

#: set by ``fulcrum.train`` when a run starts (time.perf_counter()), so the deadline covers reading the data too
RUN_STARTED: contextvars.ContextVar[float | None] = contextvars.ContextVar("fulcrum_run_started", default=None)


def default_time_limit(preset: str, n_rows: int, n_columns: int) -> float:
    """Seconds for a run of ``preset`` on a table of ``n_rows`` x ``n_columns`` inputs (see the module doc)."""
    cells = max(1, n_rows) * max(1, n_columns)
    factor = max(1.0, cells / 200_000) ** 0.8
    return float(min(MAX_DEFAULT_LIMIT, PRESETS[preset]["base_limit"] * factor))


@dataclass
class Plan:
    """What a run does: the preset's answers with the user's overrides applied."""

    preset: str
    folds: int
    trials: int
    ensemble: str  # "off" | "auto" | "always"
    refit_full: bool
    mlp_min_rows: int | None
    patience: int  # the search stops after this many trials in a row that beat no earlier candidate by MIN_GAP
    time_limit: float
    default_limit: bool


def make_plan(config: Any, n_rows: int, n_columns: int) -> Plan:
    p = PRESETS[config.preset]
    ensemble = config.ensemble if config.ensemble != "auto" else ("auto" if p["ensemble"] else "off")
    limit = config.time_limit
    if limit is None and config.model != "auto":
        limit = math.inf  # one model asked for: it trains as configured unless --time-limit is given
    return Plan(
        preset=config.preset, folds=p["folds"],
        trials=p["trials"] if config.search_trials is None else int(config.search_trials),
        ensemble=ensemble, refit_full=p["refit_full"] if config.refit_full is None else bool(config.refit_full),
        mlp_min_rows=p["mlp_min_rows"], patience=p["patience"], time_limit=float(limit) if limit is not None else default_time_limit(
            config.preset, n_rows, n_columns),
        default_limit=config.time_limit is None,
    )


class Deadline:
    """A point in time: ``start + limit`` (``time.perf_counter`` seconds). ``share`` / ``reserve`` carve an
    earlier deadline (for selection) out of the same clock."""

    def __init__(self, limit_s: float, start: float | None = None, *, end: float | None = None) -> None:
        self.start = time.perf_counter() if start is None else float(start)
        self.limit = float(limit_s)
        self.end = self.start + self.limit if end is None else float(end)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def remaining(self) -> float:
        return self.end - time.perf_counter()

    def expired(self) -> bool:
        return time.perf_counter() >= self.end

    def earlier(self, share: float, reserve_s: float = 0.0) -> "Deadline":
        """A deadline at ``start + share * limit - reserve_s`` (never after this one)."""
        return Deadline(self.limit, self.start, end=min(self.end, self.start + share * self.limit - reserve_s))


class DeadlineStop(Callback):
    """Ends a Trainer run (the MLP's) after the epoch in which ``deadline`` expired."""

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline
        self.stopped = False

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, Any]) -> None:
        if self.deadline.expired():
            trainer.stop_training = True
            self.stopped = True


# ----------------------------------------------------------------------------------------------- the race


@dataclass
class Candidate:
    """One model configuration in the race: a family and config overrides, with what the folds measured."""

    name: str
    family: str
    params: dict[str, Any] = field(default_factory=dict)
    scores: list[float] = field(default_factory=list)  # primary metric per finished fold, in fold order
    iters: list[int] = field(default_factory=list)  # trees / epochs chosen by early stopping per fold
    fit_s: float = 0.0  # summed fit time of its folds
    flops: int = 0
    status: str = "pending"  # pending | running | complete | dropped by halving | out of time | failed
    note: str = ""
    latency_ms: float | None = None
    oof: np.ndarray | None = None
    fold0: Any = None  # (adapter, preprocessor) of fold 0, kept for latency measurement and the history curve

    @property
    def folds_done(self) -> int:
        return len(self.scores)

    def mean(self) -> float:
        return float(np.mean(self.scores)) if self.scores else -math.inf

    def std(self) -> float:
        return float(np.std(self.scores, ddof=1)) if len(self.scores) > 1 else 0.0

    def config(self, base: Any, **extra: Any) -> Any:
        return base.replace(**{**self.params, **extra})


def paired_gap(leader: Sequence[float], other: Sequence[float], greater: bool, floor_sd: float = 0.0) -> tuple[float, float]:
    """(mean gap, standard error) of ``leader - other`` over their common folds, oriented so that a positive
    gap means the leader is better; the standard error is never below ``floor_sd / sqrt(k)``."""
    k = min(len(leader), len(other))
    d = np.asarray(leader[:k], dtype=np.float64) - np.asarray(other[:k], dtype=np.float64)
    if not greater:
        d = -d
    sd = float(np.std(d, ddof=1)) if k > 1 else 0.0
    return float(d.mean()) if k else 0.0, max(sd, floor_sd) / math.sqrt(max(k, 1))


@dataclass
class FoldData:
    tr: np.ndarray  # positions in train+validation
    va: np.ndarray
    X_tr: np.ndarray  # float64 features (linear models); float32 copies on demand
    X_va: np.ndarray
    y_tr: np.ndarray
    y_va: np.ndarray
    pre: Any
    _f32: dict[str, np.ndarray] = field(default_factory=dict)

    def X(self, family: str, part: str) -> np.ndarray:
        X = self.X_tr if part == "tr" else self.X_va
        if family == "linear":
            return X
        if part not in self._f32:
            self._f32[part] = X.astype(np.float32)
        return self._f32[part]


class Race:
    """Candidates evaluated fold by fold (folds side by side on threads); after each rung a candidate that
    trails the leader beyond noise is dropped (successive halving by racing: ``Z_DROP`` standard errors of
    the paired fold differences, never less than ``MIN_GAP``, the standard error never below the leader's
    own fold-to-fold spread / sqrt(k), and never after a single fold)."""

    def __init__(self, folds: list[FoldData], fit_fold: Callable[[Candidate, int, FoldData], dict[str, Any]], *,
                 n_rows: int, out_shape: tuple[int, ...], greater: bool, n_jobs: int, deadline: Deadline,
                 say: Callable[[str], None]) -> None:
        self.folds = folds
        self.fit_fold = fit_fold
        self.n_rows = n_rows
        self.out_shape = out_shape
        self.greater = greater
        self.n_jobs = max(1, n_jobs)
        self.deadline = deadline
        self.say = say
        self.all: list[Candidate] = []
        self.fold_times: dict[str, list[float]] = {}

    # -- estimates from what already ran
    def estimate_fold_s(self, cand: Candidate) -> float | None:
        if cand.folds_done:
            return cand.fit_s / cand.folds_done
        same = self.fold_times.get(cand.family)
        if same:
            return float(np.mean(same))
        return None

    def leader(self, k: int, among: Sequence[Candidate] | None = None) -> Candidate | None:
        pool = [c for c in (among if among is not None else self.all)
                if c.folds_done >= k and c.status in ("running", "complete")]
        if not pool:
            return None
        return max(pool, key=lambda c: (np.mean(c.scores[:k]) if self.greater else -np.mean(c.scores[:k])))

    def _drop_beyond_noise(self, alive: list[Candidate]) -> None:
        for c in alive:
            k = c.folds_done
            if k < 2 or c.status != "running":
                continue
            lead = self.leader(k)
            if lead is None or lead is c:
                continue
            gap, se = paired_gap(lead.scores, c.scores, self.greater, floor_sd=lead.std())
            if gap > max(Z_DROP * se, MIN_GAP):
                c.status = "dropped by halving"
                c.note = f"after {k} fold(s): {gap:.4f} behind {lead.name} (> {Z_DROP:g} SE = {Z_DROP * se:.4f})"

    def run(self, cands: list[Candidate], *, always: bool = False) -> None:
        """Race ``cands`` over every fold (or until dropped / out of time). ``always``: start even when the
        estimate says the time left cannot fit a fold (the floor a run needs: one cheap candidate)."""
        self.all.extend(cands)
        for c in cands:
            c.status = "running"
            c.oof = np.full((self.n_rows, *self.out_shape), np.nan)
        k_total = len(self.folds)
        pool = ThreadPoolExecutor(self.n_jobs) if self.n_jobs > 1 else None
        try:
            while True:
                alive = [c for c in cands if c.status == "running" and c.folds_done < k_total]
                if not alive:
                    break
                # a rung: enough folds per candidate to keep every thread busy; when the time left cannot fit
                # it, the most expensive candidates stop first (cheap ones may still finish their folds)
                while alive:
                    per = max(1, math.ceil(self.n_jobs / len(alive)))
                    jobs = [(c, f) for c in alive for f in range(c.folds_done, min(k_total, c.folds_done + per))]
                    ests = [self.estimate_fold_s(c) for c, _ in jobs]
                    known = [e for e in ests if e is not None]
                    est = (sum(known) + (max(known) if known else 0.0) * (len(ests) - len(known))) / self.n_jobs
                    if always or not (self.deadline.expired() or (known and est > self.deadline.remaining())):
                        break
                    costly = max(alive, key=lambda c: self.estimate_fold_s(c) or 0.0)
                    costly.status = "out of time"
                    costly.note = f"after {costly.folds_done} fold(s): the time left could not fit another"
                    alive.remove(costly)
                if not alive:
                    break
                results = list(pool.map(lambda j: self._one(j[0], j[1], self.folds[j[1]]), jobs)) if pool \
                    else [self._one(c, f, self.folds[f]) for c, f in jobs]
                for (c, f), res in sorted(zip(jobs, results), key=lambda r: r[0][1]):
                    if c.status != "running":
                        continue
                    if res.get("error") is not None:
                        c.status, c.note = "failed", res["error"]
                        continue
                    if f != c.folds_done:  # an earlier fold of this candidate failed or stopped
                        continue
                    c.scores.append(res["score"])
                    c.iters.append(res["iters"])
                    c.fit_s += res["seconds"]
                    c.flops += res["flops"]
                    c.oof[self.folds[f].va] = res["out"]  # type: ignore[index]
                    if f == 0:
                        c.fold0 = (res["adapter"], self.folds[f].pre)
                    self.fold_times.setdefault(c.family, []).append(res["seconds"])
                    if res["stopped"]:  # kept (a model of the time there was), but the candidate ends here
                        c.status = "out of time"
                        c.note = f"fold {f + 1} stopped at the deadline"
                for c in alive:
                    if c.status == "running" and c.folds_done == k_total:
                        c.status = "complete"
                self._drop_beyond_noise([c for c in alive if c.status == "running"])
                always = False
        finally:
            if pool is not None:
                pool.shutdown(wait=True)

    def _one(self, cand: Candidate, f: int, fold: FoldData) -> dict[str, Any]:
        t0 = time.perf_counter()
        try:
            res = self.fit_fold(cand, f, fold)
        except Exception as exc:  # one failing configuration must not end the run
            from ...errors import FulcrumError

            if not isinstance(exc, (FulcrumError, ValueError, ArithmeticError, RuntimeError)):
                raise
            return {"error": f"{type(exc).__name__}: {exc}"}
        res["seconds"] = time.perf_counter() - t0
        res.setdefault("error", None)
        return res

    def complete(self) -> list[Candidate]:
        return [c for c in self.all if c.status == "complete"]


# ----------------------------------------------------------------------------------------------- search


def suggest_lightgbm(trial: Any, n_fold_rows: int) -> dict[str, Any]:
    """One LightGBM configuration from an Optuna trial (the search space)."""
    hi_leaf = max(3, min(100, n_fold_rows // 8))
    return {
        "gbm_learning_rate": trial.suggest_float("gbm_learning_rate", 0.02, 0.3, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 4, 128, log=True),
        "min_data_in_leaf": trial.suggest_int("min_data_in_leaf", 2, hi_leaf, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.4, 1.0),
        "bagging_fraction": trial.suggest_float("bagging_fraction", 0.5, 1.0),
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 10.0, log=True),
        "n_estimators": 1000,
    }


def lightgbm_search(race: Race, trials: int, *, seed: int, n_fold_rows: int, deadline: Deadline,
                    say: Callable[[str], None], patience: int = 6) -> tuple[int, str | None]:
    """Up to ``trials`` Optuna TPE trials, asked ``n_jobs`` at a time and raced like every candidate: a trial
    that trails the leader beyond noise after some folds is pruned (reported to Optuna as PRUNED with its
    running mean per fold). It stops early (converged, not a cut) after ``patience`` trials in a row that do not
    beat the best candidate so far by ``MIN_GAP``. Returns (trials started, what the time limit cut or None)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():  # multivariate TPE is "experimental" in some Optuna versions; nothing to act on
        warnings.simplefilter("ignore")
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, min(5, trials // 3)), multivariate=True)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    started = 0
    sign = 1.0 if race.greater else -1.0
    # the best CV score so far of any candidate that ran every fold (or the best partial one)
    best = max((sign * c.mean() for c in race.all if c.folds_done), default=-math.inf)
    stale = 0  # trials in a row that did not improve on it by more than MIN_GAP
    while started < trials:
        if patience and stale >= patience:
            return started, None  # converged: not a cut, the search had nothing left to find
        if deadline.expired():
            return started, f"LightGBM search: {trials - started} of {trials} trials not started (time limit)"
        est = race.estimate_fold_s(Candidate("probe", "lightgbm"))
        if est is not None and est * len(race.folds) / race.n_jobs > deadline.remaining():
            return started, f"LightGBM search: {trials - started} of {trials} trials not started (time limit)"
        batch = []
        for _ in range(min(race.n_jobs, trials - started)):
            t = study.ask()
            batch.append((t, Candidate(f"lightgbm-{t.number + 1}", "lightgbm", suggest_lightgbm(t, n_fold_rows))))
        started += len(batch)
        race.run([c for _, c in batch])
        for t, c in batch:
            for k in range(1, c.folds_done + 1):
                t.report(sign * float(np.mean(c.scores[:k])), step=k)
            if c.status == "complete":
                study.tell(t, sign * c.mean())
            elif c.folds_done:
                study.tell(t, state=optuna.trial.TrialState.PRUNED)
            else:
                study.tell(t, state=optuna.trial.TrialState.FAIL)
            if c.status == "complete" and sign * c.mean() > best + MIN_GAP:
                best, stale = sign * c.mean(), 0
            else:
                stale += 1
        if any(c.status == "out of time" for _, c in batch):
            return started, f"LightGBM search: {trials - started} of {trials} trials not started (time limit)"
    return started, None


# ----------------------------------------------------------------------------------------------- latency


def graph_latency_ms(preprocess: dict[str, Any], adapter: Any, task: Any, n_features: int, row: Any, *,
                     seconds: float = 0.05, rounds: int = 3, warmup: int = 20) -> float:
    """Milliseconds of one batch-1 ``session.run`` of the candidate's whole graph (raw columns -> outputs,
    preprocessing included) with ONNX Runtime on this machine (session as the Predictor makes it: all graph
    optimizations, one thread per physical core, sequential), on one pre-encoded row: the p50 of each of
    ``rounds`` rounds (>= 30 calls and ``seconds`` each), and of those the lowest (the round least disturbed
    by other work on the machine: load only ever adds time)."""
    import onnxruntime as ort

    from ._codec import InputEncoder
    from ._export import export_package_graph

    data = export_package_graph(preprocess, adapter, task, n_features)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = _physical_cores()
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    feeds = InputEncoder(preprocess).encode_frame(row)
    for _ in range(warmup):
        sess.run(None, feeds)
    p50s = []
    for _ in range(rounds):
        times = []
        end = time.perf_counter() + seconds
        while len(times) < 30 or (time.perf_counter() < end and len(times) < 5000):
            t0 = time.perf_counter()
            sess.run(None, feeds)
            times.append(time.perf_counter() - t0)
        p50s.append(float(np.median(times)))
    return min(p50s) * 1e3


LATENCY_METHOD = ("batch-1 onnxruntime session.run on the candidate's whole graph (raw columns -> outputs), one "
                  "pre-encoded test row, on this machine: the lowest of 3 rounds' p50 (>= 30 calls and 0.05 s each, "
                  "after 20 warm-up calls); the candidate's fold-1 model")


def _physical_cores() -> int:
    try:
        import psutil

        return int(psutil.cpu_count(logical=False) or os.cpu_count() or 1)
    except Exception:  # pragma: no cover
        return os.cpu_count() or 1


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


# ----------------------------------------------------------------------------------------------- report


def _num(v: Any, digits: int = 4) -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}f}"


def format_leaderboard(selection: dict[str, Any], *, max_rows: int = 16) -> list[str]:
    """The leaderboard as text lines (what ``fulcrum train`` prints)."""
    board = selection.get("leaderboard") or []
    metric = selection.get("metric", "score")
    rows = [("candidate", "fit s", f"cv {metric} ± std", "folds", f"oof {metric}", "ms/row", "status")]
    shown = board
    hidden = 0
    if len(board) > max_rows:  # the chosen one, then the best by CV; the rest counted
        keep = sorted(board, key=lambda r: (r["status"] != "chosen", r["status"] not in ("member", "not chosen"),
                                            -(r.get("cv_mean") or -1e9) if selection.get("greater", True)
                                            else (r.get("cv_mean") or 1e9)))[:max_rows]
        names = {r["name"] for r in keep}
        shown = [r for r in board if r["name"] in names]
        hidden = len(board) - len(shown)
    for r in shown:
        cv = f"{_num(r.get('cv_mean'))} ± {_num(r.get('cv_std'))}" if r.get("cv_mean") is not None else "-"
        rows.append((r["name"], f"{r.get('fit_s', 0):.2f}", cv, str(r.get("folds_done", "-")),
                     _num(r.get("oof_score")), _num(r.get("latency_ms"), 3), r["status"]))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i in (0, 6) else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    if hidden:
        counts: dict[str, int] = {}
        for r in board:
            if r["name"] not in {s["name"] for s in shown}:
                counts[r["status"]] = counts.get(r["status"], 0) + 1
        lines.append(f"... and {hidden} more: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    return lines


def plot_leaderboard(selection: dict[str, Any], path: Any, *, title: str = "") -> None:
    """A horizontal bar chart of CV scores (± std), coloured by status, chosen one marked; PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    board = [r for r in selection.get("leaderboard") or [] if r.get("cv_mean") is not None]
    # the best first, drawn at the top (matplotlib counts y upwards)
    board = sorted(board, key=lambda r: r["cv_mean"], reverse=selection.get("greater", True))[:25][::-1]
    colours = {"chosen": "#2a9d8f", "member": "#8ab17d", "not chosen": "#8d99ae", "dropped by halving": "#e9c46a",
               "over infer-limit": "#e76f51", "out of time": "#bc6c25", "failed": "#6d6875"}
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(board) + 1.6), dpi=110)
    y = np.arange(len(board))
    means = np.array([r["cv_mean"] for r in board])
    stds = np.array([r.get("cv_std") or 0.0 for r in board])
    for yi, m, sd, r in zip(y, means, stds, board):  # points with error bars: no bar length from an arbitrary axis start
        ax.errorbar(m, yi, xerr=sd, fmt="o", color=colours.get(r["status"], "#8d99ae"), ecolor="#555555", capsize=3,
                    markersize=9 if r["status"] == "chosen" else 6)
    labels = [f"{r['name']}  ({r['folds_done']}f, {r.get('fit_s', 0):.1f}s"
              + (f", {r['latency_ms']:.3f}ms" if r.get("latency_ms") else "") + ")" for r in board]
    ax.set_yticks(y, labels, fontsize=8)
    lo = float(np.min(means - stds)) if len(means) else 0.0
    hi = float(np.max(means + stds)) if len(means) else 1.0
    pad = max(1e-3, 0.08 * (hi - lo))
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_xlabel(f"CV {selection.get('metric', 'score')} (mean ± std over folds)")
    ax.set_title(title or f"leaderboard (preset {selection.get('preset')})", fontsize=10)
    from matplotlib.patches import Patch

    present = sorted({r["status"] for r in board}, key=list(colours).index)
    ax.legend(handles=[Patch(color=colours[s], label=s) for s in present], fontsize=7, loc="upper left",
              bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
