"""Task metrics: classification and regression, computed from model outputs."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

__all__ = ["classification_metrics", "regression_metrics", "PRIMARY", "GREATER_IS_BETTER", "greater_is_better"]

# The metric that ranks models (auto selection, benchmarks) for each task kind.
PRIMARY = {"classification": "accuracy", "regression": "r2"}
GREATER_IS_BETTER = {
    "accuracy": True, "balanced_accuracy": True, "f1": True, "roc_auc": True, "r2": True,
    "log_loss": False, "loss": False, "rmse": False, "mae": False,
    "wer": False, "cer": False,  # transcription: word / character error rates
    "mase": False, "smape": False, "mape": False, "mse": False,  # forecasts
    "coverage": True,  # recommendations: share of the catalogue recommended
}
# ranking metrics at a cut-off k ("ndcg@10"): all higher-is-better
_AT_K_GREATER = ("ndcg", "recall", "map", "precision", "hit_rate", "mrr")


def greater_is_better(name: str) -> bool:
    """Whether a higher value of the metric ``name`` is better: the one answer the promotion guard, the optimizer
    and the dashboard use for every task. An unknown name is refused, never guessed (a wrong guess would let a
    worse model through the promotion guard)."""
    key = str(name).strip().lower()
    if key in GREATER_IS_BETTER:
        return GREATER_IS_BETTER[key]
    if "@" in key and key.split("@", 1)[0] in _AT_K_GREATER:
        return True
    from ..errors import ConfigError

    raise ConfigError(f"metric {name!r} is unknown, so Fulcrum cannot tell whether higher or lower is better; "
                      f"use one of {sorted(GREATER_IS_BETTER)} or <{'|'.join(_AT_K_GREATER)}>@k")


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, n_classes: int) -> dict[str, Any]:
    """Metrics from integer labels ``y_true`` (N,) and class probabilities ``proba`` (N, K)."""
    from sklearn import metrics as m

    y_true = np.asarray(y_true, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    y_pred = proba.argmax(axis=1)
    labels = list(range(n_classes))
    out: dict[str, Any] = {"n": int(len(y_true))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # undefined metrics on tiny splits become None below
        out["accuracy"] = _finite(m.accuracy_score(y_true, y_pred))
        out["balanced_accuracy"] = _finite(m.balanced_accuracy_score(y_true, y_pred)) if len(set(y_true)) > 1 else None
        out["f1"] = _finite(m.f1_score(y_true, y_pred, average="binary" if n_classes == 2 else "macro", labels=labels if n_classes > 2 else None, zero_division=0))
        clipped = np.clip(proba, 1e-15, 1.0)
        clipped = clipped / clipped.sum(axis=1, keepdims=True)
        out["log_loss"] = _finite(m.log_loss(y_true, clipped, labels=labels))
        present = np.unique(y_true)
        if len(present) < 2:
            out["roc_auc"] = None
        elif n_classes == 2:
            out["roc_auc"] = _finite(m.roc_auc_score(y_true, proba[:, 1]))
        elif len(present) == n_classes:
            out["roc_auc"] = _finite(m.roc_auc_score(y_true, clipped, multi_class="ovr", average="macro", labels=labels))
        else:
            out["roc_auc"] = None
        out["confusion_matrix"] = m.confusion_matrix(y_true, y_pred, labels=labels).tolist()
    return out


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    y_true = np.asarray(y_true, dtype=np.float64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.float64).ravel()
    err = y_pred - y_true
    out: dict[str, Any] = {"n": int(len(y_true))}
    out["rmse"] = _finite(math.sqrt(float(np.mean(err**2))))
    out["mae"] = _finite(float(np.mean(np.abs(err))))
    ss_tot = float(np.sum((y_true - y_true.mean()) ** 2))
    out["r2"] = _finite(1.0 - float(np.sum(err**2)) / ss_tot) if len(y_true) >= 2 and ss_tot > 0 else None
    return out
