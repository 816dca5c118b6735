"""Tabular prediction: classification and regression on a table.

``fit_tabular`` is the whole training recipe: check the target, split, infer the
schema, fit the preparation on the training split only, train one or several
model families, pick the best on validation, score on the held-out test split,
and hand back everything a model package needs (manifest pieces and files).
"""

from __future__ import annotations

import json
import math
import platform
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ...config import TrainConfig
from ...errors import ConfigError, ConstraintError, DataError
from ...models import ModelAdapter, TaskSpec, adapter_class
from ...training import Callback, ProgressBar
from .._base import Trained
from .._metrics import GREATER_IS_BETTER, PRIMARY, classification_metrics, regression_metrics
from ._select import LATENCY_METHOD

__all__ = ["fit_tabular", "TrainedTabular", "evaluate_outputs", "library_versions", "AUTO_CANDIDATES"]

AUTO_CANDIDATES = ("linear", "lightgbm", "mlp")
CV_SELECTION_MAX_ROWS = 20_000
HOLDOUT_FILE = "holdout.safetensors"  # refit_full: the pre-refit model's outputs on the test split  # above this, one validation split ranks candidates well enough


class TrainedTabular(Trained):
    """A tabular run's :class:`~fulcrum.tasks.Trained`; ``extra`` holds the fitted adapter and preprocessor."""

    @property
    def adapter(self) -> ModelAdapter:
        return self.extra["adapter"]

    @property
    def preprocessor(self) -> Any:
        return self.extra["preprocessor"]

    @property
    def labels(self) -> list[Any] | None:
        return self.manifest["task"].get("labels")

    @property
    def metrics(self) -> dict[str, Any]:
        return self.manifest["metrics"]


def library_versions(*extra: str) -> dict[str, str]:
    """Versions of Python, the libraries every package is made with, and ``extra`` ones a task adds (those not
    installed are left out)."""
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for lib in ("fulcrum", "torch", "numpy", "pandas", "scikit-learn", "lightgbm", "onnx", "onnxruntime", "safetensors",
                *extra):
        try:
            out[lib] = md.version(lib)
        except md.PackageNotFoundError:
            pass
    return out


def evaluate_outputs(kind: str, y_true: np.ndarray, outputs: np.ndarray, n_classes: int) -> dict[str, Any]:
    if kind == "classification":
        return classification_metrics(y_true, outputs, n_classes)
    return regression_metrics(y_true, outputs)


def _oversample(X: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random oversampling of minority classes up to the majority count (training split only)."""
    rng = np.random.default_rng(seed)
    counts = np.bincount(y)
    idx = [np.arange(len(y))]
    for cls, cnt in enumerate(counts):
        if 0 < cnt < counts.max():
            idx.append(rng.choice(np.flatnonzero(y == cls), counts.max() - cnt, replace=True))
    sel = np.concatenate(idx)
    return X[sel], y[sel]


def _original_unit_coefficients(adapter: ModelAdapter, pre: Any, kind: str) -> dict[str, Any] | None:
    """Map a linear model on standardized features back to the user's units.

    y = b + sum_i w_i (x_i - mu_i) / s_i  =>  coef_i = w_i / s_i,  intercept = b - sum_i w_i mu_i / s_i
    (one-hot and indicator features keep their weight: they are not scaled).
    """
    coef = getattr(adapter, "coef_", None)
    if coef is None or kind != "regression":
        return None
    w, b = np.asarray(coef)[0], float(np.asarray(adapter.intercept_)[0])
    names = list(pre.feature_names_)
    scale = {}
    for col in pre.to_dict().get("columns", []):
        if col.get("kind") == "numeric" and "mean" in col and "std" in col:
            scale[col["name"]] = (float(col["mean"]), float(col["std"]) or 1.0)
    out: dict[str, float] = {}
    for name, wi in zip(names, w):
        if name in scale:
            mu, s = scale[name]
            out[name] = float(wi / s)
            b -= float(wi * mu / s)
        else:
            out[name] = float(wi)
    return {"coefficients": out, "intercept": b}


def fit_tabular(
    df: pd.DataFrame,
    config: TrainConfig,
    *,
    source: str = "dataframe",
    callbacks: Sequence[Callback] = (),
    checkpoint_dir: str | Path | None = None,
    log: Any = None,
) -> TrainedTabular:
    """The recipe (see ``_select`` for presets, the deadline, the race and the search):

    1. split train / validation / test (test held out until the end);
    2. race the candidates over k folds of train+validation (the validation split alone on large tables,
       or when one ``model`` is given): linear and LightGBM first, then the LightGBM search, then the MLP
       when its rule allows, each fold with its own preparation fitted on the fold's training rows;
    3. choose: the simplest candidate within one standard error of the best (paired over folds), or the
       weighted ensemble when its cross-fitted score beats the best single model beyond noise;
    4. fit the choice on train+validation with the trees / epochs early stopping found, score it on test
       (the honest score kept in the package);
    5. refit_full: fit it again on every row, test included, when the plan says so and time allows;
    6. export one ONNX graph and measure its parity on the test rows.
    """
    from ... import data as D
    from ...models._ensemble import ENSEMBLE_METRICS, EnsembleAdapter, caruana_weights
    from ._select import (
        MIN_GAP, RUN_STARTED, SELECTION_SHARE, Z_DROP, Candidate, Deadline, DeadlineStop, FoldData, Race, cores,
        lightgbm_search, make_plan, paired_gap,
    )

    say = log or (lambda msg: None)
    started = RUN_STARTED.get()
    if not config.target:
        raise ConfigError("No target column given; pass --target COLUMN (or target=... in Python).")
    target = config.target
    df, n_dropped = D.check_target(df, target, config.kind)
    if n_dropped:
        say(f"note: dropped {n_dropped} row(s) with a missing target {target!r}")
    kind = config.kind if config.kind != "auto" else D.infer_task(df[target])
    D.check_target(df, target, kind)  # one-class check now that the kind is known
    schema = D.infer_schema(df, target)
    for msg in schema.notices:  # e.g. a numeric column whose few unparsable cells are read as missing
        say(f"note: {msg}")
    for name, reason in schema.dropped:
        say(f"note: column {name!r} dropped: {reason}")
    if not schema.feature_columns:
        raise DataError(f"No usable feature columns besides the target {target!r}; the table needs at least one input column.")
    plan = make_plan(config, len(df), len(schema.feature_columns))
    deadline = Deadline(plan.time_limit, started)
    selection_deadline = deadline.earlier(SELECTION_SHARE, reserve_s=0.3)
    cut: list[str] = []  # what the time limit cut
    skipped: list[str] = []  # what the plan left out, and why
    train, val, test = D.train_val_test_split(
        df, target, task=kind, test_size=config.test_size, val_size=config.val_size, seed=config.seed
    )

    # ---- targets
    codec = None
    if kind == "classification":
        codec = D.LabelCodec().fit(df[target])
        labels = list(codec.classes_)
        y_tr, y_va, y_te = (codec.encode(s[target]) for s in (train, val, test))
        task = TaskSpec("classification", n_classes=len(labels))
    else:
        labels = None
        try:
            y_tr, y_va, y_te = (s[target].to_numpy(dtype=np.float64) for s in (train, val, test))
        except (TypeError, ValueError) as exc:
            raise DataError(f"Regression target {target!r} must be numeric: {exc}. Use kind='classification' for labels.") from exc
        task = TaskSpec("regression")

    primary = PRIMARY[kind]
    greater = GREATER_IS_BETTER[primary]
    score_fn = ENSEMBLE_METRICS[primary][1]
    auto = config.model == "auto"
    trainval = pd.concat([train, val], ignore_index=True)
    y_tv = np.concatenate([y_tr, y_va])
    use_cv = auto and (config.selection == "cv" or (config.selection == "auto" and len(trainval) <= CV_SELECTION_MAX_ROWS))
    if use_cv:
        fold_idx = D.kfold_indices(trainval[target], plan.folds, task=kind, seed=config.seed)
    else:  # the validation split: one fold
        fold_idx = [(np.arange(len(train)), np.arange(len(train), len(trainval)))]

    def prepare(frame_fit: pd.DataFrame) -> Any:
        return D.Preprocessor(schema, clip_outliers=config.clip_outliers, max_categories=config.max_categories).fit(frame_fit)

    def resample(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if kind == "classification" and config.balance == "oversample":
            return _oversample(X, y, config.seed)
        return X, y

    folds: list[FoldData] = []
    for tr_idx, va_idx in fold_idx:
        f_tr, f_va = trainval.iloc[tr_idx], trainval.iloc[va_idx]
        fpre = prepare(f_tr)
        Xa, Xb = (fpre.transform(f, dtype=np.float64) for f in (f_tr, f_va))
        folds.append(FoldData(tr_idx, va_idx, Xa, Xb, y_tv[tr_idx], y_tv[va_idx], fpre))

    n_jobs = max(1, config.n_jobs or cores())
    threads = max(1, cores() // n_jobs)
    quiet = config.replace(progress=False, resume=False)
    holdout_single = not use_cv and not auto  # one family asked for: the old train -> validation path

    def fit_fold(cand: Candidate, f: int, fold: FoldData) -> dict[str, Any]:
        fam = cand.family
        # LightGBM threads: one per fold side by side; alone, its own rule (one thread below 20,000 rows)
        cfg = cand.config(quiet, gbm_threads=config.gbm_threads or (threads if n_jobs > 1 else 0))
        kw: dict[str, Any] = {}
        stop = None
        if fam == "lightgbm":
            kw["deadline"] = selection_deadline
        elif fam == "mlp":
            stop = DeadlineStop(selection_deadline)
            cbs: list[Any] = [stop]
            if holdout_single:  # the user's callbacks, progress and checkpoints, as a single fit always had
                cfg = cand.config(config)
                cbs = list(callbacks) + ([ProgressBar(desc="train mlp")] if config.progress else []) + cbs
                kw.update(checkpoint_dir=Path(checkpoint_dir) / fam if checkpoint_dir is not None else None,
                          resume=config.resume)
            kw["callbacks"] = cbs
        ad = adapter_class(fam)(task, cfg)
        X_fit, y_fit = resample(fold.X(fam, "tr"), fold.y_tr)
        ad.fit(X_fit, y_fit, fold.X(fam, "va"), fold.y_va, **kw)
        out = ad.predict_output(fold.X(fam, "va"))
        stopped = bool(getattr(ad, "stopped_by_deadline_", False) or (stop is not None and stop.stopped))
        return {"score": float(score_fn(fold.y_va, out)), "out": out, "iters": _iterations(fam, ad),
                "flops": int(ad.training_flops_), "stopped": stopped and fam != "linear", "adapter": ad}

    race = Race(folds, fit_fold, n_rows=len(trainval), out_shape=(task.n_classes,) if kind == "classification" else (),
                greater=greater, n_jobs=n_jobs, deadline=selection_deadline, say=say)
    mlp_now = False
    with _thread_limits(threads if n_jobs > 1 else None):
        base = [Candidate(f, f) for f in (("linear", "lightgbm") if auto else (config.model,))]
        race.run(base, always=True)  # the floor: the first fold of the cheap candidates runs whatever the limit
        mlp_rows = auto and plan.mlp_min_rows is not None and len(trainval) >= plan.mlp_min_rows
        mlp_est = _mlp_cv_estimate(folds, task, quiet) if mlp_rows else 0.0
        mlp_fits = mlp_rows and mlp_est <= selection_deadline.remaining()  # else the search gets all the time
        if auto and plan.trials:
            search_deadline = selection_deadline
            if mlp_fits:  # leave the MLP its estimated time
                search_deadline = Deadline(plan.time_limit, deadline.start, end=selection_deadline.end - mlp_est)
            _, why = lightgbm_search(race, plan.trials, seed=config.seed, n_fold_rows=len(folds[0].tr),
                                     deadline=search_deadline, say=say, patience=plan.patience)
            if why:
                cut.append(why)
        if auto:
            if plan.mlp_min_rows is None:
                skipped.append(f"mlp: not in preset {plan.preset}")
            elif not mlp_rows:
                skipped.append(f"mlp: train+validation has {len(trainval)} rows, under the {plan.mlp_min_rows} the "
                               f"MLP rule asks for in preset {plan.preset}")
            elif mlp_est > selection_deadline.remaining():
                cut.append(f"mlp: its estimated CV time ({mlp_est:.1f} s) exceeds the selection time left "
                           f"({max(0.0, selection_deadline.remaining()):.1f} s)")
            else:
                mlp_now = True
    if mlp_now:  # one fold at a time, every core: torch's random state is global, and a run must be reproducible
        race.n_jobs = 1
        race.run([Candidate("mlp", "mlp")])
    for c in race.all:
        if c.status == "out of time":
            cut.append(f"{c.name}: {c.note}")

    # ---- latency of the candidates' graphs (only with an infer limit)
    latency_rows = test.iloc[:1] if len(test) else trainval.iloc[:1]
    complete = race.complete()
    if config.infer_limit is not None:
        for c in sorted(complete, key=lambda c: -c.mean() if greater else c.mean())[:8]:
            ad, fpre = c.fold0
            c.latency_ms = graph_latency(fpre, ad, task, latency_rows)
            if c.latency_ms > config.infer_limit:
                c.status = "over infer-limit"
                c.note = f"{c.latency_ms:.3f} ms per row > the {config.infer_limit:g} ms limit"
        measured = {c.name for c in complete if c.latency_ms is not None}
        for c in complete:  # not measured (beyond the 8 best): not eligible under a limit
            if c.name not in measured:
                c.status, c.note = "out of time", "not measured for --infer-limit (beyond the 8 best)"
    eligible = [c for c in race.all if c.status == "complete"]
    if not eligible:
        if config.infer_limit is not None and any(c.status == "over infer-limit" for c in race.all):
            fastest = min((c for c in race.all if c.latency_ms is not None), key=lambda c: c.latency_ms)  # type: ignore[arg-type,return-value]
            raise ConstraintError(f"No candidate meets --infer-limit {config.infer_limit:g} ms per row: the fastest, "
                                  f"{fastest.name}, measured {fastest.latency_ms:.3f} ms on this machine. Raise the "
                                  "limit, or train a smaller model (e.g. --model linear).")
        most = max((c.folds_done for c in race.all), default=0)
        eligible = [c for c in race.all if c.folds_done == most and most > 0 and c.status != "failed"]
        if not eligible:
            failed = "; ".join(f"{c.name}: {c.note}" for c in race.all if c.status == "failed")
            raise DataError(f"No candidate could be trained ({failed or 'no time left'}); raise --time-limit or check the data.")
    chosen, why = _choose(eligible, race.all, greater, primary, "CV" if use_cv else "validation")

    # ---- the weighted ensemble, when it beats the best single model beyond noise (cross-fitted weights)
    ens_row: dict[str, Any] | None = None
    weights: dict[str, float] | None = None
    best = max(eligible, key=lambda c: c.mean() if greater else -c.mean())
    ens_cross: tuple[np.ndarray, np.ndarray] | None = None  # (rows, cross-fitted ensemble outputs on them)
    if plan.ensemble != "off" and len(eligible) >= 2 and all(c.status == "complete" for c in eligible):
        ens_started = time.perf_counter()
        pool = _ensemble_pool(eligible, greater)
        rows = np.flatnonzero(np.all([np.isfinite(c.oof.reshape(len(trainval), -1)).all(axis=1) for c in pool], axis=0))
        oof = {c.name: c.oof[rows] for c in pool}
        y_rows = y_tv[rows]
        weights = caruana_weights(oof, y_rows, kind, primary, n_classes=task.n_classes)
        if len(weights) >= 2:
            fold_of = np.full(len(trainval), -1)
            for f, fd in enumerate(folds):
                fold_of[fd.va] = f
            groups = fold_of[rows]
            if len(folds) == 1:  # one validation split: five random chunks of it for cross-fitting
                groups = np.random.default_rng(config.seed).integers(0, 5, len(rows))
            cross = np.zeros_like(oof[pool[0].name])
            fold_scores = []
            best_scores = []
            for g in np.unique(groups):
                inside = groups == g
                w_g = caruana_weights({k: v[~inside] for k, v in oof.items()}, y_rows[~inside], kind, primary,
                                      n_classes=task.n_classes)
                cross[inside] = sum(w * oof[k][inside] for k, w in w_g.items())
                fold_scores.append(float(score_fn(y_rows[inside], cross[inside])))
                best_scores.append(float(score_fn(y_rows[inside], oof[best.name][inside])))
            gap, se = paired_gap(fold_scores, best_scores, greater)
            beats = gap > max(Z_DROP * se, MIN_GAP)
            ens_cross = (rows, cross)
            ens_row = {"name": "ensemble", "family": "ensemble", "params": {"weights": weights},
                       "fit_s": time.perf_counter() - ens_started,  # the weights; the members' fits are their rows'
                       "members": list(weights),
                       "cv_mean": float(np.mean(fold_scores)), "cv_std": float(np.std(fold_scores, ddof=1)) if len(fold_scores) > 1 else 0.0,
                       "folds_done": len(fold_scores), "oof_score": float(score_fn(y_rows, cross)),
                       "latency_ms": None, "status": "not chosen",
                       "note": f"cross-fitted {'+' if gap >= 0 else ''}{gap:.4f} vs {best.name} (2 SE = {Z_DROP * se:.4f})"}
            if beats or plan.ensemble == "always":
                if config.infer_limit is not None:
                    members0 = {k: next(c for c in pool if c.name == k).fold0[0] for k in weights}
                    pre0 = pool[0].fold0[1]
                    ens0 = EnsembleAdapter.from_members(task, quiet, members0, weights)
                    ens_row["latency_ms"] = graph_latency(pre0, ens0, task, latency_rows)
                    if ens_row["latency_ms"] > config.infer_limit:
                        ens_row["status"] = "over infer-limit"
                        ens_row["note"] += f"; {ens_row['latency_ms']:.3f} ms per row > {config.infer_limit:g} ms"
                if ens_row["status"] != "over infer-limit":
                    ens_row["status"] = "chosen"
                    why = (f"the ensemble ({', '.join(f'{k} {w:.2f}' for k, w in weights.items())}) won: its "
                           f"cross-fitted CV {primary} {ens_row['cv_mean']:.4f} beats the best single model, "
                           f"{best.name} ({best.mean():.4f}), by {gap:+.4f}"
                           + (f" (> 2 SE = {Z_DROP * se:.4f})" if beats else " (ensemble=always)"))
        else:
            skipped.append(f"ensemble: ensemble selection kept one model ({next(iter(weights))})")
    use_ensemble = ens_row is not None and ens_row["status"] == "chosen"
    members: list[Candidate] = ([next(c for c in race.all if c.name == k) for k in weights]  # type: ignore[union-attr]
                                if use_ensemble else [chosen])
    if use_ensemble:
        say(why)
    elif auto:
        say(f"{chosen.name} chosen: {why}")

    # ---- fit the choice on train+validation with the trees / epochs found; score it on test
    def final_model(pre: Any, frame: pd.DataFrame, y: np.ndarray, tag: str) -> tuple[ModelAdapter, dict[str, Any]]:
        X = pre.transform(frame, dtype=np.float64)
        fitted: dict[str, ModelAdapter] = {}
        info: dict[str, Any] = {}
        for c in members:
            over, info[c.name] = _iteration_config(c)
            cfg = c.config(config, **over)
            fam = c.family
            kw: dict[str, Any] = {}
            if fam == "mlp":  # no deadline here: the epochs are known, so is the time (checked before starting)
                kw["callbacks"] = list(callbacks) + ([ProgressBar(desc=f"{tag} mlp")] if config.progress else [])
                kw.update(checkpoint_dir=Path(checkpoint_dir) / f"{fam}-{tag}" if checkpoint_dir is not None else None,
                          resume=config.resume)
            ad = adapter_class(fam)(task, cfg)
            Xf, yf = resample(_x(fam, X), y)
            ad.fit(Xf, yf, None, None, **kw)
            spent[fam] = spent.get(fam, 0) + ad.training_flops_
            fitted[c.name] = ad
        if use_ensemble:
            return EnsembleAdapter.from_members(task, config, fitted, weights), info  # type: ignore[arg-type]
        return fitted[chosen.name], info[chosen.name]

    spent: dict[str, int] = {}  # family -> training FLOPs over every fit of the run
    for c in race.all:
        spent[c.family] = spent.get(c.family, 0) + c.flops
    selection_s = deadline.elapsed()
    # the fit on train+validation takes about a fold's fit time per member, scaled to the rows
    fold_rows = max(1, len(folds[0].tr))
    est_final = 1.2 * sum(c.fit_s / max(1, c.folds_done) for c in members) * len(trainval) / fold_rows
    reserve = 0.3 + (0.5 if config.measure_inference else 0.0)
    final_started = time.perf_counter()
    if (use_cv or config.refit) and (est_final <= deadline.remaining() - reserve or all(c.fold0 is None for c in members)):
        # CV: preparation fitted on the rows of the final fit; the validation split (one model asked for): it
        # stays fitted on the training split, whose profile it describes, as a single model always had it
        pre = prepare(trainval) if use_cv else folds[0].pre
        adapter, refit_info = final_model(pre, trainval, y_tv, "refit")
        fit_rows = len(trainval)
    else:  # the fold-1 model(s) as they are: fitted on train (the first fold) with early stopping on the rest
        if use_cv or config.refit:
            cut.append(f"refit on train+validation: its estimated {est_final:.1f} s did not fit in the "
                       f"{max(0.0, deadline.remaining()):.1f} s left; the first fold's model is the final one")
        pre = members[0].fold0[1]
        fitted0 = {c.name: c.fold0[0] for c in members}
        adapter = (EnsembleAdapter.from_members(task, config, fitted0, weights) if use_ensemble  # type: ignore[arg-type]
                   else fitted0[chosen.name])
        refit_info, fit_rows = None, len(folds[0].tr)
    refit_done = refit_info is not None or fit_rows == len(trainval)
    final_s = time.perf_counter() - final_started if refit_done else est_final
    history = chosen.fold0[0].history_ if chosen.fold0 is not None and not use_ensemble else []

    def outputs(model: ModelAdapter, p: Any, frame: pd.DataFrame) -> np.ndarray:
        X = p.transform(frame, dtype=np.float64)
        return model.predict_output(X if model.family == "ensemble" else _x(model.family, X))

    test_out = outputs(adapter, pre, test)
    test_metrics = evaluate_outputs(kind, y_te, test_out, task.n_classes)

    # ---- refit_full: every row, test included; the test score above stays the honest one
    refit_full: dict[str, Any] = {"applied": False, "test_rows_in_final_fit": False, "final_fit_rows": fit_rows}
    if plan.refit_full and len(test):
        est = 1.3 * final_s * (len(df) / max(1, len(trainval))) + 0.2
        reserve = 0.4 + (0.6 if config.measure_inference else 0.0)
        if not refit_done or est > deadline.remaining() - reserve:
            cut.append(f"refit_full: its estimated {est:.1f} s did not fit in the {max(0.0, deadline.remaining()):.1f} s left")
            refit_full["skipped"] = "time limit"
        else:
            pre_refit_out = np.asarray(test_out, dtype=np.float64)
            all_rows = pd.concat([trainval, test], ignore_index=True)
            pre = prepare(all_rows) if use_cv else pre
            adapter, refit_info = final_model(pre, all_rows, np.concatenate([y_tv, y_te]), "full")
            test_out = outputs(adapter, pre, test)  # for the graph's parity check only: these rows were fitted
            refit_full = {"applied": True, "test_rows_in_final_fit": True, "final_fit_rows": len(all_rows),
                          "pre_refit_test": test_metrics, "pre_refit_fit_rows": fit_rows,
                          # what the model scored on the test rows before it saw them: comparisons on exactly
                          # these rows (promote, retrain) use it instead of the refit model's optimistic outputs
                          "pre_refit_outputs": {"file": HOLDOUT_FILE, "rows": len(test),
                                                "rows_fingerprint": D.fingerprint(test),
                                                "what": "the pre-refit model's outputs (probabilities or values) "
                                                        "on the test split, in its row order"}}
    elif not plan.refit_full:
        refit_full["skipped"] = "off" if config.refit_full is False else f"not in preset {plan.preset}"
    adapter.history_ = history

    # ---- optional k-fold cross-validation of the chosen family on train+val
    cv = None
    if config.cv_folds:
        if use_cv and config.cv_folds == plan.folds and not use_ensemble:
            cv = _cv_summary(chosen, folds, kind, task)
        else:
            cv = _cross_validate(trainval, schema, codec, kind, task, members[0].family, config, spent=spent)

    meta, files = adapter.to_files()
    describe = adapter.describe()
    units = _original_unit_coefficients(adapter, pre, kind)
    if units:
        describe.update(units)
    meta["describe"] = describe
    meta["n_features"] = int(pre.n_features_)
    # the rows the preparation was fitted on (its profile is the reference for drift and OOD checks)
    fit_frame = next((f for p_, f in ((folds[0].pre, trainval.iloc[folds[0].tr]),) if p_ is pre), None)
    if fit_frame is None:
        fit_frame = pd.concat([trainval, test], ignore_index=True) if refit_full["applied"] else trainval
    files["preprocess.json"] = json.dumps(pre.to_dict(), sort_keys=True).encode()
    files["profile.json"] = json.dumps(D.profile_frame(fit_frame, schema), sort_keys=True).encode()
    files["history.json"] = json.dumps(adapter.history_).encode()
    if refit_full["applied"]:
        from safetensors.numpy import save as save_arrays

        files[HOLDOUT_FILE] = save_arrays({"outputs": np.ascontiguousarray(pre_refit_out)})
    # one ONNX graph, raw inputs -> outputs; parity vs the native adapter measured on the test split
    from ._export import package_onnx

    files["model.onnx"], onnx_section = package_onnx(pre.to_dict(), adapter, task, pre.n_features_, test, test_out)

    # ---- the leaderboard and what the run did with its time
    board = [_row(c, trainval, y_tv, kind, task, greater) for c in race.all]
    chosen_names = set(weights or {}) if use_ensemble else {chosen.name}
    for r in board:
        if r["name"] in chosen_names:
            r["status"] = "member" if use_ensemble else "chosen"
        elif r["status"] == "complete":
            r["status"] = "not chosen"
    if ens_row is not None:
        board.append(ens_row)
    if use_ensemble and ens_cross is not None:  # cross-fitted: each fold's weights fitted without it
        oof_metrics = {**evaluate_outputs(kind, y_tv[ens_cross[0]], ens_cross[1], task.n_classes),
                       "rows": "out-of-fold (cross-fitted ensemble weights)"}
    else:
        oof_metrics = _oof_metrics(members, None, trainval, y_tv, kind, task)
    selection = {
        "preset": plan.preset, "method": "cv" if use_cv else "validation", "folds": len(folds), "n_jobs": n_jobs,
        "threads_per_job": threads, "metric": primary, "greater": greater,
        "chosen": "ensemble" if use_ensemble else chosen.name, "family": adapter.family, "why": why,
        "leaderboard": board, "skipped": skipped,
        "search": {"trials_planned": plan.trials, "trials_run": sum(c.name.startswith("lightgbm-") for c in race.all),
                   "sampler": "optuna TPE (multivariate), pruned by racing over folds" if plan.trials else None},
        "ensemble": ({**{k: v for k, v in ens_row.items() if k not in ("name", "family", "params")},
                      "weights": weights, "chosen": use_ensemble} if ens_row is not None else None),
        "infer_limit_ms": config.infer_limit,
        "latency_method": LATENCY_METHOD if config.infer_limit is not None else None,
        "refit_full": refit_full,
        "time": {"limit_s": plan.time_limit if math.isfinite(plan.time_limit) else None,
                 "default": plan.default_limit, "used_s": deadline.elapsed(), "selection_s": selection_s, "cut": cut},
        "rules": {"drop": f"a candidate trailing the leader by more than {Z_DROP:g} standard errors of the paired "
                          f"fold differences (and more than {MIN_GAP}) after >= 2 folds is dropped",
                  "choose": "the simplest candidate within one standard error (paired over folds) of the best",
                  "ensemble": f"chosen when its cross-fitted score beats the best single model by more than "
                              f"{Z_DROP:g} standard errors (and {MIN_GAP})"},
    }
    primary_value = test_metrics.get(primary)
    candidates = {r["name"]: {"score": r.get("cv_mean"), "cv": {primary: {"mean": r.get("cv_mean"), "std": r.get("cv_std")},
                                                                "folds": r.get("folds_done")}, "status": r["status"]}
                  for r in board}
    manifest: dict[str, Any] = {
        "libraries": library_versions(),
        "task": {"workload": "tabular", "kind": kind, "target": target, "labels": labels},
        "schema": schema.to_dict(),
        "inputs": [{"name": c.name, "kind": c.kind, "dtype": c.dtype} for c in schema.columns],
        "outputs": _outputs(kind, target, labels),
        "model": meta,
        "onnx": onnx_section,
        "config": config.to_dict(),
        "data": {
            "source": source,
            "fingerprint": D.fingerprint(df),
            "rows": {"train": len(train), "validation": len(val), "test": len(test)},
            "dropped_target_rows": int(n_dropped),
            "final_fit_rows": refit_full["final_fit_rows"],
            "test_rows_in_final_fit": refit_full["test_rows_in_final_fit"],
        },
        "metrics": {
            "primary": {"name": primary, "value": primary_value, "split": "test",
                        **({"measured": "before refit_full"} if refit_full["applied"] else {})},
            "validation": oof_metrics,
            "test": test_metrics,
            "cv": cv,
            "candidates": candidates,
            "selection": "cv" if use_cv else "validation",
            "refit": refit_info,
        },
        "selection": selection,
        "lineage": {"parent": None, "data_source": source},
    }
    methods = {fam: adapter_class(fam).flops_method for fam in spent}
    return TrainedTabular(manifest, files, test_frame=test, training_flops=int(sum(spent.values())),
                          flops_methods=methods, extra={"adapter": adapter, "preprocessor": pre, "deadline": deadline})


def _mlp_cv_estimate(folds: list[Any], task: TaskSpec, config: TrainConfig) -> float:
    """Seconds the MLP's CV would take: steps per epoch x expected epochs (early stopping rarely runs past 50)
    x folds (one at a time), at the time per step measured here on 10 steps of the same network."""
    import torch

    from ...models import MLP

    fold = folds[0]
    X = torch.as_tensor(fold.X("mlp", "tr")[: 10 * config.batch_size])
    k = task.n_classes if task.kind == "classification" else 1
    net = MLP(X.shape[1], k, config.hidden_sizes, config.dropout)
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr)
    t0 = time.perf_counter()
    for start in range(0, len(X), config.batch_size):
        loss = net(X[start:start + config.batch_size]).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    step_s = (time.perf_counter() - t0) / max(1, math.ceil(len(X) / config.batch_size))
    steps = math.ceil(len(fold.tr) / config.batch_size) * min(config.epochs, 50)
    return steps * step_s * len(folds)


def graph_latency(pre: Any, adapter: ModelAdapter, task: TaskSpec, rows: pd.DataFrame) -> float:
    from ._select import graph_latency_ms

    return graph_latency_ms(pre.to_dict(), adapter, task, pre.n_features_, rows)


def _iterations(family: str, adapter: ModelAdapter) -> int:
    """Trees (LightGBM) or epochs (MLP) early stopping kept; 0 for a linear model."""
    if family == "lightgbm":
        booster = adapter.booster_  # type: ignore[attr-defined]
        return max(1, int(booster.best_iteration or booster.current_iteration()))
    if family == "mlp":
        return int(adapter.train_result_.best_epoch) + 1  # type: ignore[attr-defined]
    return 0


def _iteration_config(cand: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Config overrides (and the record) to refit ``cand`` without a validation split: the mean over its
    folds of the trees / epochs early stopping kept."""
    if cand.family == "lightgbm" and cand.iters:
        trees = max(1, int(round(float(np.mean(cand.iters)))))
        return {"n_estimators": trees}, {"trees": trees}
    if cand.family == "mlp" and cand.iters:
        epochs = max(1, int(round(float(np.mean(cand.iters)))))
        return {"epochs": epochs, "early_stopping": False}, {"epochs": epochs}
    return {}, {}


def _choose(eligible: list[Any], everyone: list[Any], greater: bool, primary: str, how: str = "CV") -> tuple[Any, str]:
    """The simplest eligible candidate (race order: linear, LightGBM, search trials, MLP) whose CV score is
    within one standard error of the best's, paired over their common folds (the one-standard-error rule,
    Breiman et al. 1984: differences smaller than the fold-to-fold noise do not buy complexity)."""
    from ._select import paired_gap

    best = max(eligible, key=lambda c: c.mean() if greater else -c.mean())
    order = {c.name: i for i, c in enumerate(everyone)}
    for c in sorted(eligible, key=lambda c: order[c.name]):
        gap, se = paired_gap(best.scores, c.scores, greater)
        if c is best:
            return c, (f"best {how} {primary} {c.mean():.4f}" + (f" ± {c.std():.4f} over {c.folds_done} folds"
                                                                   if c.folds_done > 1 else "")
                       + _beaten(c, eligible, greater))
        if gap <= se:
            return c, (f"the simplest candidate within one standard error of the best ({best.name} "
                       f"{best.mean():.4f}): {how} {primary} {c.mean():.4f}, gap {gap:.4f} <= 1 SE {se:.4f}")
    return best, f"best {how} {primary} {best.mean():.4f}"


def _beaten(winner: Any, eligible: list[Any], greater: bool) -> str:
    from ._select import paired_gap

    simpler = []
    for c in eligible:
        if c is winner:
            break
        gap, se = paired_gap(winner.scores, c.scores, greater)
        simpler.append(f"{c.name} {gap:+.4f} behind (> 1 SE {se:.4f})")
    return "; simpler candidates were worse beyond noise: " + ", ".join(simpler) if simpler else ""


def _ensemble_pool(eligible: list[Any], greater: bool) -> list[Any]:
    """Ensemble candidates: the best of each family plus the runner-up LightGBM configuration (at most 4),
    in race order (the order caruana_weights prefers on ties)."""
    ranked = sorted(eligible, key=lambda c: -c.mean() if greater else c.mean())
    picked: list[Any] = []
    per_family: dict[str, int] = {}
    for c in ranked:
        limit = 2 if c.family == "lightgbm" else 1
        if per_family.get(c.family, 0) < limit and len(picked) < 4:
            picked.append(c)
            per_family[c.family] = per_family.get(c.family, 0) + 1
    order = {id(c): i for i, c in enumerate(eligible)}
    return sorted(picked, key=lambda c: order[id(c)])


def _row(c: Any, trainval: pd.DataFrame, y_tv: np.ndarray, kind: str, task: TaskSpec, greater: bool) -> dict[str, Any]:
    from ...models._ensemble import ENSEMBLE_METRICS

    oof_score = None
    if c.oof is not None and c.folds_done:
        flat = c.oof.reshape(len(trainval), -1)
        rows = np.isfinite(flat).all(axis=1)
        if rows.any():
            oof_score = float(ENSEMBLE_METRICS[PRIMARY[kind]][1](y_tv[rows], c.oof[rows]))
    return {"name": c.name, "family": c.family, "params": {k: v for k, v in c.params.items()},
            "fit_s": float(c.fit_s), "folds_done": c.folds_done,
            "cv_mean": float(np.mean(c.scores)) if c.scores else None,
            "cv_std": float(np.std(c.scores, ddof=1)) if len(c.scores) > 1 else (0.0 if c.scores else None),
            "fold_scores": [float(s) for s in c.scores], "oof_score": oof_score,
            "iterations": [int(i) for i in c.iters], "latency_ms": c.latency_ms, "status": c.status,
            "note": c.note}


def _oof_metrics(members: list[Any], weights: dict[str, float] | None, trainval: pd.DataFrame, y_tv: np.ndarray,
                 kind: str, task: TaskSpec) -> dict[str, Any]:
    """Metrics of the choice on the out-of-fold rows of train+validation (each row predicted by a model that
    did not train on it): the validation figures of the report."""
    if weights:
        out = sum(w * next(c for c in members if c.name == k).oof for k, w in weights.items())
    else:
        out = members[0].oof
    if out is None:
        return {}
    flat = np.asarray(out).reshape(len(trainval), -1)
    rows = np.isfinite(flat).all(axis=1)
    if not rows.any():
        return {}
    return {**evaluate_outputs(kind, y_tv[rows], np.asarray(out)[rows], task.n_classes), "rows": "out-of-fold"}


def _cv_summary(cand: Any, folds: list[Any], kind: str, task: TaskSpec) -> dict[str, Any]:
    per_fold = [evaluate_outputs(kind, fd.y_va, cand.oof[fd.va], task.n_classes) for fd in folds]
    summary: dict[str, Any] = {"folds": len(folds)}
    for key in per_fold[0]:
        vals = [f[key] for f in per_fold if isinstance(f.get(key), (int, float)) and key != "n"]
        if vals and len(vals) == len(per_fold):
            summary[key] = {"mean": float(np.mean(vals)), "std": float(np.std(vals))}
    return summary


class _thread_limits:
    """While folds run side by side: ``threads`` BLAS/OpenMP threads and torch intra-op threads per fit."""

    def __init__(self, threads: int | None) -> None:
        self.threads = threads
        self._ctl: Any = None
        self._torch: int | None = None

    def __enter__(self) -> "_thread_limits":
        if self.threads is not None:
            from threadpoolctl import threadpool_limits

            self._ctl = threadpool_limits(self.threads)
            import torch

            self._torch = torch.get_num_threads()
            torch.set_num_threads(self.threads)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._ctl is not None:
            self._ctl.restore_original_limits()
        if self._torch is not None:
            import torch

            torch.set_num_threads(self._torch)


def _x(family: str, X: np.ndarray) -> np.ndarray:
    """Features as ``family`` takes them: float64 for linear models (exact least squares; the
    LinearAdapter computes in float64), float32 for the others (the ONNX graph's feature type)."""
    return X if family == "linear" else X.astype(np.float32, copy=False)


def _outputs(kind: str, target: str, labels: list[Any] | None) -> list[dict[str, Any]]:
    if kind == "classification":
        return [
            {"name": target, "kind": "label"},
            {"name": "probabilities", "kind": "probabilities", "labels": labels},
        ]
    return [{"name": target, "kind": "value"}]


def _cross_validate(
    frame: pd.DataFrame, schema: Any, codec: Any, kind: str, task: TaskSpec, family: str, config: TrainConfig,
    folds: int | None = None, spent: dict[str, int] | None = None,
) -> dict[str, Any]:
    from ... import data as D

    target = config.target
    assert target is not None
    y_all = codec.encode(frame[target]) if codec is not None else frame[target].to_numpy(np.float64)
    folds_idx = D.kfold_indices(y_all, folds or config.cv_folds, task=kind, seed=config.seed)
    per_fold: list[dict[str, Any]] = []
    quiet = config.replace(progress=False, resume=False)
    for tr_idx, va_idx in folds_idx:
        tr, va = frame.iloc[tr_idx], frame.iloc[va_idx]
        pre = D.Preprocessor(schema, clip_outliers=config.clip_outliers, max_categories=config.max_categories).fit(tr)
        Xtr, Xva = (_x(family, pre.transform(f, dtype=np.float64)) for f in (tr, va))
        ad = adapter_class(family)(task, quiet).fit(Xtr, y_all[tr_idx], Xva, y_all[va_idx])
        if spent is not None:
            spent[family] = spent.get(family, 0) + ad.training_flops_
        per_fold.append(evaluate_outputs(kind, y_all[va_idx], ad.predict_output(Xva), task.n_classes))
    summary: dict[str, Any] = {"folds": len(folds_idx)}
    for key in per_fold[0]:
        vals = [f[key] for f in per_fold if isinstance(f.get(key), (int, float)) and key != "n"]
        if vals and len(vals) == len(per_fold):
            summary[key] = {"mean": float(np.mean(vals)), "std": float(np.std(vals))}
    return summary


