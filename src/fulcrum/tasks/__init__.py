"""Workloads: one module per kind of data. Tables first; text, images, speech,
recommendation and forecasting plug in beside it with the same contract."""

from __future__ import annotations

from ._metrics import GREATER_IS_BETTER, PRIMARY, classification_metrics, regression_metrics
from .tabular import AUTO_CANDIDATES, TrainedTabular, evaluate_outputs, fit_tabular, library_versions

__all__ = [
    "fit_tabular", "TrainedTabular", "evaluate_outputs", "library_versions", "AUTO_CANDIDATES",
    "classification_metrics", "regression_metrics", "PRIMARY", "GREATER_IS_BETTER",
]
