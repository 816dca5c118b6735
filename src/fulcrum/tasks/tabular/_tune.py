"""Hyperparameter tuning for one tabular model family (``fulcrum tune`` / ``fulcrum.tune``).

An Optuna study (TPE sampler, seeded) searches one family's space; bad trials are pruned from their
intermediate reports; the best trial's parameters then train a normal package through ``fulcrum.train``'s
path (``fit_to_package``), which carries the study's summary (manifest ``tuning``) and a plot of the
search (``tuning/search.png``).

What a trial measures (the test split is never looked at: it is the final package's honest score):

=========  ============================================================  ==============================
family     objective (the task's primary metric: accuracy or r2)         intermediate reports (pruning)
=========  ============================================================  ==============================
linear     mean over ``folds`` (default 5) CV folds of train+validation  running mean after each fold
lightgbm   the same (early stopping on each fold's held-out part)        running mean after each fold
mlp        the validation split (trained on the training split, best     validation metric after each
           epoch kept, as ``fulcrum train --model mlp`` does)             epoch (a Trainer callback)
=========  ============================================================  ==============================

Search spaces (``SPACES``; every other key keeps its config value, and ``--set KEY=VALUE`` still applies):

- linear: ``l2`` in [1e-4, 1e3], log scale (ridge strength; logistic regression's C = 1 / l2).
- lightgbm: the space ``fulcrum train``'s search uses (``_select.suggest_lightgbm``): ``gbm_learning_rate``
  [0.02, 0.3] log, ``num_leaves`` [4, 128] log, ``min_data_in_leaf`` [2, min(100, fold rows / 8)] log,
  ``feature_fraction`` [0.4, 1], ``bagging_fraction`` [0.5, 1], ``lambda_l2`` [1e-3, 10] log, and
  ``n_estimators`` 1000 with early stopping.
- mlp: ``lr`` [1e-4, 3e-2] log, ``hidden_sizes`` one of 64 | 128,64 | 256,128 | 64,64,64, ``dropout``
  [0, 0.5], ``weight_decay`` [1e-6, 1e-2] log, ``batch_size`` one of 32 | 64 | 128; ``epochs`` from the
  config (default 100) with early stopping.

Trial 0 is the family's defaults (clamped into the space), so the summary shows what tuning gained over
them (``baseline``). Pruners: ``median`` (default; Optuna's MedianPruner: a trial whose report is worse than
the median of earlier trials at the same step stops, once 3 trials are complete, from the second fold or the
fifth epoch),
``halving`` (successive halving, Optuna's SuccessiveHalvingPruner) or ``none``. ``time_limit`` bounds the
search (no trial starts after it; a running trial finishes); the final training runs after it.

``backend="ray"`` runs the same search on a Ray cluster through Ray Tune: trials are Ray tasks (1 CPU
each, as many at a time as the cluster has CPUs), proposed by Optuna's TPE sampler through
``OptunaSearch`` over the same space (the same ``suggest`` function, define-by-run; trial 0 is the
defaults) and pruned by the ASHA scheduler (asynchronous successive halving, reduction factor 3) from the
same intermediate reports (running CV mean per fold; validation metric per epoch, from the fifth). The
summary has the same fields (``backend: ray``, ``pruner: asha``); the best trial trains and registers
locally exactly as with the local backend. ``address`` selects the cluster (``fulcrum._ray.connect``).
"""

from __future__ import annotations

import io
import math
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

from ...errors import ConfigError, DataError, TrainingError
from ...training import Callback

__all__ = ["FAMILIES", "SPACES", "PRUNERS", "check_tune_options", "run_study", "plot_study"]

FAMILIES = ("lightgbm", "mlp", "linear")
PRUNERS = ("median", "halving", "none")
PLOT_FILE = "tuning/search.png"
HIDDEN_CHOICES = ("64", "128,64", "256,128", "64,64,64")

#: (kind, low, high, log) for numbers; ("choice", values) for categories. LightGBM's lives in _select.
SPACES: dict[str, dict[str, tuple[Any, ...]]] = {
    "linear": {"l2": ("float", 1e-4, 1e3, True)},
    "lightgbm": {"gbm_learning_rate": ("float", 0.02, 0.3, True), "num_leaves": ("int", 4, 128, True),
                 "min_data_in_leaf": ("int", 2, "min(100, fold rows // 8)", True),
                 "feature_fraction": ("float", 0.4, 1.0, False), "bagging_fraction": ("float", 0.5, 1.0, False),
                 "lambda_l2": ("float", 1e-3, 10.0, True), "n_estimators": ("fixed", 1000)},
    "mlp": {"lr": ("float", 1e-4, 3e-2, True), "hidden_sizes": ("choice", HIDDEN_CHOICES),
            "dropout": ("float", 0.0, 0.5, False), "weight_decay": ("float", 1e-6, 1e-2, True),
            "batch_size": ("choice", (32, 64, 128))},
}


def check_tune_options(trials: Any, time_limit: Any, model: Any, backend: Any, pruner: Any, folds: Any) -> None:
    """Refuse bad options before anything is read or written: one line naming the problem and the fix."""
    if isinstance(trials, bool) or not isinstance(trials, (int, np.integer)) or trials < 1:
        raise ConfigError(f"trials must be a whole number >= 1 (how many configurations to try), e.g. --trials 20; "
                          f"got {trials!r}.")
    if time_limit is not None:
        try:
            ok = math.isfinite(float(time_limit)) and float(time_limit) > 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ConfigError(f"time_limit must be a positive number of seconds for the search, e.g. --time-limit 60; "
                              f"got {time_limit!r}.")
    if model not in FAMILIES:
        raise ConfigError(f"Unknown model {model!r} for tune: choose one of {', '.join(FAMILIES)} "
                          "(tune searches one family's space; `fulcrum train --model auto` compares families).")
    if backend not in ("local", "ray"):
        raise ConfigError(f"Unknown backend {backend!r}: use --backend local (Optuna in this process) or ray "
                          "(Ray Tune on a cluster).")
    if not (isinstance(pruner, str) and pruner in PRUNERS) and not _is_pruner(pruner):
        raise ConfigError(f"Unknown pruner {pruner!r}: choose one of {', '.join(PRUNERS)}.")
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ConfigError(f"folds must be a whole number >= 2 (CV folds per linear/LightGBM trial); got {folds!r}.")


def _is_pruner(obj: Any) -> bool:
    try:
        import optuna

        return isinstance(obj, optuna.pruners.BasePruner)
    except ImportError:  # pragma: no cover
        return False


# ----------------------------------------------------------------------------------------------- spaces


def suggest(family: str, trial: Any, n_fold_rows: int) -> dict[str, Any]:
    """One configuration (TrainConfig overrides) of ``family`` from an Optuna trial."""
    if family == "lightgbm":
        from ._select import suggest_lightgbm

        return suggest_lightgbm(trial, n_fold_rows)
    out: dict[str, Any] = {}
    for key, spec in SPACES[family].items():
        if spec[0] == "float":
            out[key] = trial.suggest_float(key, spec[1], spec[2], log=spec[3])
        elif spec[0] == "int":
            out[key] = trial.suggest_int(key, spec[1], spec[2], log=spec[3])
        else:
            out[key] = trial.suggest_categorical(key, list(spec[1]))
    if "hidden_sizes" in out:
        out["hidden_sizes"] = tuple(int(h) for h in str(out["hidden_sizes"]).split(","))
    return out


def _defaults(family: str, cfg: Any, n_fold_rows: int) -> dict[str, Any]:
    """The family's default configuration as Optuna parameters, clamped into the space (trial 0)."""
    if family == "linear":
        return {"l2": float(min(1e3, max(1e-4, cfg.l2 if cfg.l2 else 1.0)))}
    if family == "lightgbm":
        hi_leaf = max(3, min(100, n_fold_rows // 8))
        mdl = cfg.min_data_in_leaf if cfg.min_data_in_leaf is not None else min(20, max(2, n_fold_rows // 20))
        return {"gbm_learning_rate": min(0.3, max(0.02, cfg.gbm_learning_rate)),
                "num_leaves": int(min(128, max(4, cfg.num_leaves))), "min_data_in_leaf": int(min(hi_leaf, max(2, mdl))),
                "feature_fraction": max(0.4, cfg.feature_fraction), "bagging_fraction": max(0.5, cfg.bagging_fraction),
                "lambda_l2": min(10.0, max(1e-3, cfg.lambda_l2))}
    hidden = ",".join(str(h) for h in cfg.hidden_sizes)
    return {"lr": min(3e-2, max(1e-4, cfg.lr)), "hidden_sizes": hidden if hidden in HIDDEN_CHOICES else "128,64",
            "dropout": min(0.5, cfg.dropout), "weight_decay": min(1e-2, max(1e-6, cfg.weight_decay)),
            "batch_size": cfg.batch_size if cfg.batch_size in (32, 64, 128) else 64}


def _config_params(params: dict[str, Any]) -> dict[str, Any]:
    """Trial parameters as TrainConfig values (hidden sizes as a list, as the manifest's config holds them)."""
    out = dict(params)
    if "hidden_sizes" in out:
        out["hidden_sizes"] = [int(h) for h in str(out["hidden_sizes"]).split(",")]
    return out


# ----------------------------------------------------------------------------------------------- data


@dataclass
class _Data:
    kind: str
    task: Any  # TaskSpec
    schema: Any
    train: pd.DataFrame
    val: pd.DataFrame
    y_tr: np.ndarray
    y_va: np.ndarray


def _prepare(df: pd.DataFrame, cfg: Any, say: Callable[[str], None]) -> _Data:
    """The split ``fulcrum train`` makes with the same seed (the test split is left out entirely)."""
    from ... import data as D
    from ...models import TaskSpec

    if not cfg.target:
        raise ConfigError("No target column given; pass --target COLUMN (or target=... in Python).")
    target = cfg.target
    df, n_dropped = D.check_target(df, target, cfg.kind)
    if n_dropped:
        say(f"note: dropped {n_dropped} row(s) with a missing target {target!r}")
    kind = cfg.kind if cfg.kind != "auto" else D.infer_task(df[target])
    D.check_target(df, target, kind)
    schema = D.infer_schema(df, target)
    if not schema.feature_columns:
        raise DataError(f"No usable feature columns besides the target {target!r}; the table needs at least one input column.")
    train, val, _test = D.train_val_test_split(df, target, task=kind, test_size=cfg.test_size, val_size=cfg.val_size,
                                               seed=cfg.seed)
    if kind == "classification":
        codec = D.LabelCodec().fit(df[target])
        y_tr, y_va = codec.encode(train[target]), codec.encode(val[target])
        task = TaskSpec("classification", n_classes=len(codec.classes_))
    else:
        try:
            y_tr, y_va = (s[target].to_numpy(dtype=np.float64) for s in (train, val))
        except (TypeError, ValueError) as exc:
            raise DataError(f"Regression target {target!r} must be numeric: {exc}.") from exc
        task = TaskSpec("regression")
    return _Data(kind, task, schema, train, val, y_tr, y_va)


# ----------------------------------------------------------------------------------------------- the study


class _ReportEpochs(Callback):
    """Reports the MLP's validation metric to the trial after every epoch; stops the run when Optuna prunes."""

    def __init__(self, trial: Any, key: str) -> None:
        self.trial = trial
        self.key = key
        self.pruned = False

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, Any]) -> None:
        value = logs.get(self.key)
        if value is None or not math.isfinite(value):
            return
        self.trial.report(float(value), step=epoch + 1)
        if self.trial.should_prune():
            self.pruned = True
            trainer.stop_training = True


def _make_pruner(pruner: Any, family: str) -> Any:
    import optuna

    if not isinstance(pruner, str):
        return pruner
    if pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=5 if family == "mlp" else 2)
    if pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=5 if family == "mlp" else 1, reduction_factor=3)
    return optuna.pruners.NopPruner()


def run_study(df: pd.DataFrame, cfg: Any, *, family: str, trials: int, time_limit: float | None, pruner: Any = "median",
              folds: int = 5, say: Callable[[str], None] | None = None, progress: bool = True,
              backend: str = "local", address: str | None = None) -> dict[str, Any]:
    """Run the search; returns the summary (JSON-ready) with ``best_params`` as config values."""
    import optuna

    from ... import data as D
    from ...models import adapter_class
    from .._metrics import PRIMARY
    from ...models._ensemble import ENSEMBLE_METRICS
    from ._fit import _oversample

    say = say or (lambda msg: None)
    t0 = time.perf_counter()
    d = _prepare(df, cfg, say)
    primary = PRIMARY[d.kind]
    score_fn = ENSEMBLE_METRICS[primary][1]  # accuracy / r2: greater is better, the study maximizes it
    base = cfg.replace(model=family, progress=False, resume=False)
    trainval = pd.concat([d.train, d.val], ignore_index=True)
    y_tv = np.concatenate([d.y_tr, d.y_va])
    f32 = (lambda X: X) if family == "linear" else (lambda X: X.astype(np.float32))

    def resample(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if d.kind == "classification" and cfg.balance == "oversample":
            return _oversample(X, y, cfg.seed)
        return X, y

    def prepare(frame: pd.DataFrame) -> Any:
        return D.Preprocessor(d.schema, clip_outliers=cfg.clip_outliers, max_categories=cfg.max_categories).fit(frame)

    if family == "mlp":
        pre = prepare(d.train)
        holdout = (f32(pre.transform(d.train, dtype=np.float64)), f32(pre.transform(d.val, dtype=np.float64)))
        n_fold_rows = len(d.train)
        objective_doc = "the validation split (trained on the training split; best epoch kept)"
        fold_data: list[Any] = []
    else:
        k = max(2, min(folds, len(trainval) // 2))
        fold_data = []
        for tr_idx, va_idx in D.kfold_indices(pd.Series(y_tv), k, task=d.kind, seed=cfg.seed):
            fpre = prepare(trainval.iloc[tr_idx])
            fold_data.append((f32(fpre.transform(trainval.iloc[tr_idx], dtype=np.float64)), y_tv[tr_idx],
                              f32(fpre.transform(trainval.iloc[va_idx], dtype=np.float64)), y_tv[va_idx]))
        n_fold_rows = len(fold_data[0][0])
        objective_doc = f"mean over {k} CV folds of train+validation"

    if backend == "ray":
        job = {"family": family, "kind": d.kind, "task": d.task, "base": base, "primary": primary,
               "balance": cfg.balance, "seed": cfg.seed, "fold_data": fold_data,
               "holdout": (holdout[0], d.y_tr, holdout[1], d.y_va) if family == "mlp" else None}
        summary = _run_ray(job, cfg, trials=trials, time_limit=time_limit, n_fold_rows=n_fold_rows,
                           address=address, say=say)
        summary.update(objective=objective_doc, time_s=time.perf_counter() - t0)
        return summary

    def objective(trial: Any) -> float:
        params = suggest(family, trial, n_fold_rows)
        tcfg = base.replace(**params)
        if family == "mlp":
            rep = _ReportEpochs(trial, f"val_{primary}")
            ad = adapter_class("mlp")(d.task, tcfg)
            X_fit, y_fit = resample(holdout[0], d.y_tr)
            ad.fit(X_fit, y_fit, holdout[1], d.y_va, callbacks=[rep])
            if rep.pruned:
                raise optuna.TrialPruned(f"pruned after epoch {len(ad.history_)}")
            return float(score_fn(d.y_va, ad.predict_output(holdout[1])))
        scores = []
        for step, (Xa, ya, Xb, yb) in enumerate(fold_data, start=1):
            ad = adapter_class(family)(d.task, tcfg)
            X_fit, y_fit = resample(Xa, ya)
            ad.fit(X_fit, y_fit, Xb, yb)
            scores.append(float(score_fn(yb, ad.predict_output(Xb))))
            trial.report(float(np.mean(scores)), step=step)
            if step < len(fold_data) and trial.should_prune():
                raise optuna.TrialPruned(f"pruned after fold {step}")
        return float(np.mean(scores))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():  # multivariate TPE is "experimental" in some Optuna versions; nothing to act on
        warnings.simplefilter("ignore")
        sampler = optuna.samplers.TPESampler(seed=cfg.seed, n_startup_trials=max(2, min(5, trials // 3)),
                                             multivariate=True)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=_make_pruner(pruner, family))
    study.enqueue_trial(_defaults(family, cfg, n_fold_rows))  # trial 0: the defaults, the baseline

    bar = None
    if progress:
        import sys

        from tqdm.auto import tqdm

        bar = tqdm(total=trials, desc=f"tune {family}", unit="trial", file=sys.stderr, disable=None, leave=True,
                   dynamic_ncols=True)

    def on_trial(study: Any, trial: Any) -> None:
        if bar is not None:
            try:
                best = f"{study.best_value:.4f}"
            except ValueError:
                best = "-"
            bar.set_postfix({"trial": trial.number + 1, "state": trial.state.name.lower(), f"best {primary}": best},
                            refresh=False)
            bar.update(1)

    search_started = time.perf_counter()
    try:
        study.optimize(objective, n_trials=trials, timeout=time_limit, callbacks=[on_trial], catch=(ValueError, ArithmeticError, TrainingError))
    finally:
        if bar is not None:
            bar.close()
    search_s = time.perf_counter() - search_started
    states = optuna.trial.TrialState
    done = [t for t in study.trials if t.state == states.COMPLETE]
    if not done:
        raise DataError(f"No trial of the {family} search completed ({len(study.trials)} ran: "
                        f"{sum(t.state == states.PRUNED for t in study.trials)} pruned, "
                        f"{sum(t.state == states.FAIL for t in study.trials)} failed); raise --time-limit or --trials.")
    best = study.best_trial
    history = []
    for t in study.trials:
        steps = sorted(t.intermediate_values.items())
        history.append({"number": t.number, "state": t.state.name.lower(),
                        "value": t.value if t.state == states.COMPLETE else None,  # Optuna keeps a pruned one's last report
                        "params": _config_params(t.params), "steps": len(steps),
                        "last_report": float(steps[-1][1]) if steps else None,
                        "seconds": (t.duration.total_seconds() if t.duration is not None else None)})
    t0_trial = study.trials[0]
    baseline = {"trial": 0, "params": _config_params(t0_trial.params),
                "value": t0_trial.value if t0_trial.state == states.COMPLETE else None,
                "state": t0_trial.state.name.lower()}
    return {
        "backend": "local", "engine": f"optuna {optuna.__version__}", "family": family, "metric": primary,
        "greater": True, "objective": objective_doc,
        "sampler": f"TPE (multivariate, seed {cfg.seed})",
        "pruner": pruner if isinstance(pruner, str) else type(pruner).__name__,
        "trials_requested": int(trials), "time_limit_s": None if time_limit is None else float(time_limit),
        "trials": len(study.trials), "complete": len(done),
        "pruned": sum(t.state == states.PRUNED for t in study.trials),
        "failed": sum(t.state == states.FAIL for t in study.trials),
        "stopped_by": "trials" if len(study.trials) >= trials else "time limit",
        "best_trial": best.number, "best_value": float(best.value),
        "best_params": _config_params({**best.params, **_fixed(family)}),
        "baseline": baseline,
        "search_s": search_s, "time_s": time.perf_counter() - t0,
        "space": {k: list(v) if not isinstance(v[1], tuple) else [v[0], list(v[1])] for k, v in SPACES[family].items()},
        "history": history, "plot": PLOT_FILE,
    }


# ----------------------------------------------------------------------------------------------- Ray Tune


class _TuneEpochs(Callback):
    """Reports the MLP's validation metric to Ray Tune after every epoch (ASHA stops the trial between them)."""

    def __init__(self, key: str) -> None:
        self.key = key

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, Any]) -> None:
        from ray import tune

        value = logs.get(self.key)
        if value is not None and math.isfinite(value):
            tune.report({"score": float(value)})


class _Space:
    """OptunaSearch's define-by-run space: the local backend's ``suggest``, unchanged (picklable, as Tune
    checkpoints its searcher)."""

    def __init__(self, family: str, n_fold_rows: int) -> None:
        self.family, self.n_fold_rows = family, n_fold_rows

    def __call__(self, trial: Any) -> None:
        suggest(self.family, trial, self.n_fold_rows)


def _ray_trial(config: dict[str, Any], job: dict[str, Any]) -> None:
    """One trial in a Ray worker: the local objective, with intermediate reports to Ray Tune."""
    from ray import tune

    from ...models import adapter_class
    from ...models._ensemble import ENSEMBLE_METRICS
    from ._fit import _oversample

    family = job["family"]
    score_fn = ENSEMBLE_METRICS[job["primary"]][1]
    tcfg = job["base"].replace(**_config_params({**config, **_fixed(family)}))

    def resample(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if job["kind"] == "classification" and job["balance"] == "oversample":
            return _oversample(X, y, job["seed"])
        return X, y

    if family == "mlp":
        X_tr, y_tr, X_va, y_va = (np.array(a) for a in job["holdout"])
        ad = adapter_class("mlp")(job["task"], tcfg)
        ad.fit(*resample(X_tr, y_tr), X_va, y_va, callbacks=[_TuneEpochs(f"val_{job['primary']}")])
        tune.report({"score": float(score_fn(y_va, ad.predict_output(X_va))), "complete": 1})
        return
    scores: list[float] = []
    for step, fold in enumerate(job["fold_data"], start=1):
        Xa, ya, Xb, yb = (np.array(a) for a in fold)
        ad = adapter_class(family)(job["task"], tcfg)
        ad.fit(*resample(Xa, ya), Xb, yb)
        scores.append(float(score_fn(yb, ad.predict_output(Xb))))
        last = step == len(job["fold_data"])
        tune.report({"score": float(np.mean(scores)), **({"complete": 1} if last else {})})


def _run_ray(job: dict[str, Any], cfg: Any, *, trials: int, time_limit: float | None, n_fold_rows: int,
             address: str | None, say: Callable[[str], None]) -> dict[str, Any]:
    """The search on Ray Tune: OptunaSearch (TPE, the same space, trial 0 the defaults) + ASHA."""
    import tempfile

    import optuna

    from ..._ray import connect

    ray = connect(address, log=say)
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    family = job["family"]
    steps = int(cfg.epochs) + 1 if family == "mlp" else len(job["fold_data"])  # reports a full trial makes
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sampler = optuna.samplers.TPESampler(seed=cfg.seed, n_startup_trials=max(2, min(5, trials // 3)),
                                             multivariate=True)

    search = OptunaSearch(space=_Space(family, n_fold_rows), metric="score", mode="max", sampler=sampler,
                          points_to_evaluate=[_defaults(family, job["base"], n_fold_rows)])
    asha = ASHAScheduler(time_attr="training_iteration", max_t=max(steps, 1),
                         grace_period=5 if family == "mlp" else 1, reduction_factor=3)
    storage = tempfile.mkdtemp(prefix="fulcrum-tune-")
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(_ray_trial, job=job), {"cpu": 1}),
        tune_config=tune.TuneConfig(metric="score", mode="max", search_alg=search, scheduler=asha,
                                    num_samples=int(trials), time_budget_s=time_limit),
        run_config=tune.RunConfig(name="search", storage_path=storage, verbose=0),
    )
    say(f"searching {family} on Ray Tune: {trials} trial(s), {int(ray.cluster_resources().get('CPU', 1))} CPU(s) "
        "in the cluster, OptunaSearch (TPE) + ASHA")
    started = time.perf_counter()
    try:
        import contextlib
        import sys

        with contextlib.redirect_stdout(sys.stderr):  # Tune's tables are progress, not the command's output
            grid = tuner.fit()
    finally:
        import shutil

        shutil.rmtree(storage, ignore_errors=True)
    search_s = time.perf_counter() - started

    history = []
    def started(r: Any) -> int:  # Tune's experiment tag starts with the trial's 1-based number: "3_l2=0.1"
        head = str((r.metrics or {}).get("experiment_tag", "")).split("_", 1)[0]
        return int(head) if head.isdigit() else 1 << 30

    for r in sorted(grid, key=started):
        m = r.metrics or {}
        frame = r.metrics_dataframe
        reports = [] if frame is None or "score" not in frame else [float(v) for v in frame["score"]]
        state = "failed" if r.error is not None or not reports else ("complete" if m.get("complete") else "pruned")
        history.append({"number": len(history), "state": state,
                        "value": float(m["score"]) if state == "complete" else None,
                        "params": _config_params({k: v for k, v in (r.config or {}).items()}),
                        "steps": len(reports), "last_report": reports[-1] if reports else None,
                        "seconds": float(m["time_total_s"]) if "time_total_s" in m else None})
    done = [h for h in history if h["state"] == "complete"]
    if not done:
        raise DataError(f"No trial of the {family} search on Ray completed ({len(history)} ran: "
                        f"{sum(h['state'] == 'pruned' for h in history)} pruned, "
                        f"{sum(h['state'] == 'failed' for h in history)} failed); raise --time-limit or --trials.")
    best = max(done, key=lambda h: h["value"])
    t0_trial = history[0]
    return {
        "backend": "ray", "engine": f"ray tune {ray.__version__} + optuna {optuna.__version__}", "family": family,
        "metric": job["primary"], "greater": True, "objective": "",
        "sampler": f"TPE through OptunaSearch (multivariate, seed {cfg.seed})",
        "pruner": "asha", "trials_requested": int(trials),
        "time_limit_s": None if time_limit is None else float(time_limit),
        "trials": len(history), "complete": len(done),
        "pruned": sum(h["state"] == "pruned" for h in history),
        "failed": sum(h["state"] == "failed" for h in history),
        "stopped_by": "trials" if len(history) >= trials else "time limit",
        "best_trial": best["number"], "best_value": float(best["value"]),
        "best_params": {**best["params"], **_fixed(family)},
        "baseline": {"trial": 0, "params": t0_trial["params"], "value": t0_trial["value"], "state": t0_trial["state"]},
        "search_s": search_s, "time_s": 0.0,
        "space": {k: list(v) if not isinstance(v[1], tuple) else [v[0], list(v[1])] for k, v in SPACES[family].items()},
        "history": history, "plot": PLOT_FILE,
    }


def _fixed(family: str) -> dict[str, Any]:
    """Parameters a family's space fixes (part of the configuration the best trial trained)."""
    return {k: v[1] for k, v in SPACES[family].items() if v[0] == "fixed"}


# ----------------------------------------------------------------------------------------------- the plot


def plot_study(summary: dict[str, Any], *, title: str = "") -> bytes:
    """PNG bytes: the objective of every trial (complete: dots; pruned: x at their last report; the defaults
    ringed), the running best as a step line, the best trial starred."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hist = summary["history"]
    fig, ax = plt.subplots(figsize=(9, 4.2), dpi=110)
    comp = [h for h in hist if h["state"] == "complete"]
    pruned = [h for h in hist if h["state"] == "pruned" and h["last_report"] is not None]
    ax.scatter([h["number"] for h in comp], [h["value"] for h in comp], color="#2a9d8f", s=28, zorder=3,
               label=f"complete ({len(comp)})")
    if pruned:
        ax.scatter([h["number"] for h in pruned], [h["last_report"] for h in pruned], color="#e76f51", marker="x",
                   s=36, zorder=3, label=f"pruned ({len(pruned)}; last report)")
    xs, ys, best = [], [], -math.inf
    for h in hist:
        if h["state"] == "complete" and h["value"] is not None and h["value"] > best:
            best = h["value"]
        if math.isfinite(best):
            xs.append(h["number"])
            ys.append(best)
    if xs:
        ax.step(xs, ys, where="post", color="#264653", lw=1.5, label="running best")
    b = next(h for h in hist if h["number"] == summary["best_trial"])
    ax.scatter([b["number"]], [b["value"]], marker="*", s=180, color="#e9c46a", edgecolor="#264653", zorder=4,
               label=f"best: trial {b['number']} ({b['value']:.4f})")
    base = summary.get("baseline") or {}
    if base.get("value") is not None:
        ax.scatter([0], [base["value"]], facecolors="none", edgecolors="#555555", s=90, zorder=2,
                   label=f"defaults ({base['value']:.4f})")
    vals = [h["value"] for h in comp] + [h["last_report"] for h in pruned]
    lo, hi = min(vals), max(vals)
    pad = max(1e-3, 0.08 * (hi - lo))
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel("trial")
    ax.set_ylabel(f"{summary['metric']} ({summary['objective'].split(' (')[0]})", fontsize=8)
    ax.set_title(title or f"{summary['family']}: {summary['trials']} trials, {summary['pruned']} pruned, "
                          f"{summary['search_s']:.1f} s", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
