"""Tabular prediction: classification and regression on a table.

``fit_tabular`` is the whole training recipe: check the target, split, infer the
schema, fit the preparation on the training split only, train one or several
model families, pick the best on validation, score on the held-out test split,
and hand back everything a model package needs (manifest pieces and files).
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ...config import TrainConfig
from ...errors import ConfigError, DataError
from ...models import ModelAdapter, TaskSpec, adapter_class
from ...training import Callback, ProgressBar
from .._base import Trained
from .._metrics import GREATER_IS_BETTER, PRIMARY, classification_metrics, regression_metrics

__all__ = ["fit_tabular", "TrainedTabular", "evaluate_outputs", "library_versions", "AUTO_CANDIDATES"]

AUTO_CANDIDATES = ("linear", "lightgbm", "mlp")
CV_SELECTION_MAX_ROWS = 20_000  # above this, one validation split ranks candidates well enough
SELECTION_FOLDS = 5


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


def library_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for lib in ("fulcrum", "torch", "numpy", "pandas", "scikit-learn", "lightgbm", "onnx", "onnxruntime", "safetensors"):
        try:
            out[lib] = md.version(lib)
        except md.PackageNotFoundError:
            pass
    return out


def evaluate_outputs(kind: str, y_true: np.ndarray, outputs: np.ndarray, n_classes: int) -> dict[str, Any]:
    if kind == "classification":
        return classification_metrics(y_true, outputs, n_classes)
    return regression_metrics(y_true, outputs)


def _score(metrics: dict[str, Any], name: str) -> float:
    v = metrics.get(name)
    if v is None:
        return -np.inf if GREATER_IS_BETTER.get(name, True) else np.inf
    return float(v)


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
    from ... import data as D

    say = log or (lambda msg: None)
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

    # ---- preparation, fitted on the training split only
    pre = D.Preprocessor(schema, clip_outliers=config.clip_outliers, max_categories=config.max_categories).fit(train)
    # each family gets its input type from _x: linear models fit in double precision
    dtype = np.float64 if config.model in ("auto", "linear") else np.float32
    X_tr, X_va, X_te = (pre.transform(s, dtype=dtype) for s in (train, val, test))
    X_fit, y_fit = X_tr, y_tr
    if kind == "classification" and config.balance == "oversample":
        X_fit, y_fit = _oversample(X_tr, y_tr, config.seed)

    # ---- rank candidates (k-fold CV on small tables, else the validation split)
    primary = PRIMARY[kind]
    greater = GREATER_IS_BETTER[primary]
    families = list(AUTO_CANDIDATES) if config.model == "auto" else [config.model]
    trainval = pd.concat([train, val], ignore_index=True)
    use_cv = len(families) > 1 and (
        config.selection == "cv" or (config.selection == "auto" and len(trainval) <= CV_SELECTION_MAX_ROWS)
    )
    candidates: dict[str, dict[str, Any]] = {}
    spent: dict[str, int] = {}  # family -> training FLOPs over every fit of the run
    if use_cv:
        for fam in families:
            cv_fam = _cross_validate(trainval, schema, codec, kind, task, fam, config, folds=SELECTION_FOLDS, spent=spent)
            candidates[fam] = {"cv": cv_fam, "score": cv_fam.get(primary, {}).get("mean")}
            say(f"{fam:>9}: {SELECTION_FOLDS}-fold CV {primary} = {_fmt(candidates[fam]['score'])}")

    # ---- fit each remaining candidate on train with early stopping on validation
    fitted: dict[str, ModelAdapter] = {}
    to_fit = [_best(candidates, greater)] if use_cv else families
    for fam in to_fit:
        adapter = adapter_class(fam)(task, config)
        cbs = list(callbacks)
        if fam == "mlp" and config.progress:
            cbs.append(ProgressBar(desc="train mlp"))
        ckpt = Path(checkpoint_dir) / fam if checkpoint_dir is not None else None
        adapter.fit(_x(fam, X_fit), y_fit, _x(fam, X_va), y_va, callbacks=cbs, checkpoint_dir=ckpt, resume=config.resume)
        fitted[fam] = adapter
        spent[fam] = spent.get(fam, 0) + adapter.training_flops_
        val_m = evaluate_outputs(kind, y_va, adapter.predict_output(_x(fam, X_va)), task.n_classes)
        candidates.setdefault(fam, {})["validation"] = val_m
        if not use_cv:
            candidates[fam]["score"] = val_m.get(primary)
            say(f"{fam:>9}: validation {primary} = {_fmt(val_m.get(primary))}")
    family = _best({f: candidates[f] for f in fitted}, greater)
    adapter = fitted[family]
    val_metrics = candidates[family]["validation"]

    # ---- refit on train+validation with the epochs / trees found by early stopping
    refit_info = None
    if config.refit and len(X_va):
        refit_cfg, refit_info = _refit_config(config, family, adapter)
        X_all = np.concatenate([X_fit, X_va])
        y_all = np.concatenate([y_fit, y_va])
        refit_pre = pre  # preparation stays fitted on the training split (the profile describes it)
        final = adapter_class(family)(task, refit_cfg)
        ckpt = Path(checkpoint_dir) / f"{family}-refit" if checkpoint_dir is not None else None
        cbs = list(callbacks) + ([ProgressBar(desc="refit mlp")] if family == "mlp" and config.progress else [])
        final.fit(_x(family, X_all), y_all, None, None, callbacks=cbs, checkpoint_dir=ckpt, resume=config.resume)
        spent[family] = spent.get(family, 0) + final.training_flops_
        final.history_ = adapter.history_  # the curve with validation is the informative one
        adapter, pre = final, refit_pre
    X_te = _x(family, X_te)
    test_metrics = evaluate_outputs(kind, y_te, adapter.predict_output(X_te), task.n_classes)

    # ---- optional k-fold cross-validation of the chosen family on train+val
    cv = None
    if config.cv_folds:
        cv = candidates[family].get("cv") if use_cv and config.cv_folds == SELECTION_FOLDS else None
        cv = cv or _cross_validate(trainval, schema, codec, kind, task, family, config, spent=spent)

    meta, files = adapter.to_files()
    describe = adapter.describe()
    units = _original_unit_coefficients(adapter, pre, kind)
    if units:
        describe.update(units)
    meta["describe"] = describe
    meta["n_features"] = int(pre.n_features_)
    files["preprocess.json"] = json.dumps(pre.to_dict(), sort_keys=True).encode()
    files["profile.json"] = json.dumps(D.profile_frame(train, schema), sort_keys=True).encode()
    files["history.json"] = json.dumps(adapter.history_).encode()
    # one ONNX graph, raw inputs -> outputs; parity vs the native adapter measured on the test split
    from ._export import package_onnx

    files["model.onnx"], onnx_section = package_onnx(pre.to_dict(), adapter, task, pre.n_features_,
                                                     test, adapter.predict_output(X_te))
    primary_value = test_metrics.get(primary)
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
        },
        "metrics": {
            "primary": {"name": primary, "value": primary_value, "split": "test"},
            "validation": val_metrics,
            "test": test_metrics,
            "cv": cv,
            "candidates": candidates,
            "selection": "cv" if use_cv else "validation",
            "refit": refit_info,
        },
        "lineage": {"parent": None, "data_source": source},
    }
    methods = {fam: adapter_class(fam).flops_method for fam in spent}
    return TrainedTabular(manifest, files, test_frame=test, training_flops=int(sum(spent.values())),
                          flops_methods=methods, extra={"adapter": adapter, "preprocessor": pre})


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.4f}"


def _best(candidates: dict[str, dict[str, Any]], greater: bool) -> str:
    """The family to keep, scanning in order of simplicity (AUTO_CANDIDATES order).

    With cross-validation scores, the one-standard-error rule (Breiman et al., 1984):
    the simplest family whose mean score is within one standard error of the best
    mean. Differences smaller than the fold-to-fold noise do not buy complexity.
    Without CV, the best validation score; ties go to the simpler family.
    """

    def key(info: dict[str, Any]) -> float:
        v = info.get("score")
        return -np.inf if v is None else (v if greater else -v)

    best_fam = max(candidates, key=lambda f: key(candidates[f]))
    best_cv = candidates[best_fam].get("cv")
    margin = 0.0
    if best_cv:
        primary = next((k for k, v in best_cv.items() if isinstance(v, dict) and candidates[best_fam]["score"] == v["mean"]), None)
        if primary:
            margin = best_cv[primary]["std"] / np.sqrt(max(1, best_cv["folds"]))
    for fam in candidates:  # insertion order = simplest first
        if key(candidates[fam]) >= key(candidates[best_fam]) - margin:
            return fam
    return best_fam


def _x(family: str, X: np.ndarray) -> np.ndarray:
    """Features as ``family`` takes them: float64 for linear models (exact least squares; the
    LinearAdapter computes in float64), float32 for the others (the ONNX graph's feature type)."""
    return X if family == "linear" else X.astype(np.float32, copy=False)


def _refit_config(config: TrainConfig, family: str, adapter: ModelAdapter) -> tuple[TrainConfig, dict[str, Any]]:
    """Config for retraining on train+validation for as long as early stopping found best."""
    if family == "mlp":
        epochs = int(adapter.train_result_.best_epoch) + 1  # type: ignore[attr-defined]
        return config.replace(epochs=epochs, early_stopping=False, progress=config.progress), {"epochs": epochs}
    if family == "lightgbm":
        booster = adapter.booster_  # type: ignore[attr-defined]
        trees = max(1, int(booster.best_iteration or booster.current_iteration()))  # boosting rounds
        return config.replace(n_estimators=trees), {"trees": trees}
    return config, {}


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


