"""scikit-learn-style estimators for users who think in scikit-learn.

``FulcrumClassifier().fit(X, y)`` runs the same recipe as ``fulcrum train``
(schema, preparation, model, early stopping) and keeps the trained model in
memory; ``save(name)`` registers it as a package.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from .config import TrainConfig
from .errors import NotFittedError

__all__ = ["FulcrumClassifier", "FulcrumRegressor"]

_TARGET = "__target__"


class _FulcrumEstimator(BaseEstimator):
    _task = "auto"

    def __init__(self, model: str = "auto", *, epochs: int = 100, batch_size: int = 64, lr: float = 1e-3,
                 hidden_sizes: tuple[int, ...] = (128, 64), dropout: float = 0.1, l2: float | None = None,
                 patience: int = 10, val_size: float = 0.2, seed: int = 0, progress: bool = False):
        self.model = model
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.hidden_sizes = hidden_sizes
        self.dropout = dropout
        self.l2 = l2
        self.patience = patience
        self.val_size = val_size
        self.seed = seed
        self.progress = progress

    def _frame(self, X: Any) -> pd.DataFrame:
        if isinstance(X, pd.DataFrame):
            return X.reset_index(drop=True)
        arr = np.asarray(X)
        if arr.ndim == 1:
            arr = arr[:, None]
        cols = getattr(self, "feature_names_in_", None)
        if cols is None or len(cols) != arr.shape[1]:
            cols = [f"x{i}" for i in range(arr.shape[1])]
        return pd.DataFrame(arr, columns=list(cols))

    def fit(self, X: Any, y: Any) -> "_FulcrumEstimator":
        from .tasks import fit_tabular

        df = self._frame(X)
        self.feature_names_in_ = np.asarray(df.columns, dtype=object)
        self.n_features_in_ = df.shape[1]
        df[_TARGET] = np.asarray(y)
        # Small data: keep a validation split for early stopping, a token test split.
        cfg = TrainConfig(target=_TARGET, task=self._task, model=self.model, epochs=self.epochs,
                          batch_size=self.batch_size, lr=self.lr, hidden_sizes=tuple(self.hidden_sizes),
                          dropout=self.dropout, l2=self.l2, patience=self.patience, val_size=self.val_size,
                          test_size=0.1, seed=self.seed, progress=self.progress)
        self.trained_ = fit_tabular(df, cfg, source="estimator")
        self.metrics_ = self.trained_.metrics
        if self.trained_.labels is not None:
            self.classes_ = np.asarray(self.trained_.labels)
        units = self.trained_.manifest["model"]["describe"]
        if "coefficients" in units:
            self.coef_ = np.asarray([units["coefficients"].get(str(c), 0.0) for c in df.columns[:-1]])
            self.intercept_ = float(units["intercept"])
        return self

    def _outputs(self, X: Any) -> np.ndarray:
        if not hasattr(self, "trained_"):
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet; call fit(X, y) before predicting.")
        t = self.trained_
        # as the model was fitted: float64 for linear models and ensembles (their members cast their own input)
        dtype = np.float32 if t.adapter.family in ("lightgbm", "mlp") else np.float64
        return t.adapter.predict_output(t.preprocessor.transform(self._frame(X), dtype=dtype))

    def save(self, name: str, *, registry: Any = None) -> Any:
        """Register the fitted model as a new package version; returns the package."""
        from .artifact import Registry

        if not hasattr(self, "trained_"):
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet; call fit(X, y) before save().")
        reg = registry if isinstance(registry, Registry) else Registry(registry)
        return reg.register(name, self.trained_.manifest, self.trained_.files)


class FulcrumClassifier(ClassifierMixin, _FulcrumEstimator):
    _task = "classification"

    def predict_proba(self, X: Any) -> np.ndarray:
        return self._outputs(X)

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[self._outputs(X).argmax(axis=1)]


class FulcrumRegressor(RegressorMixin, _FulcrumEstimator):
    _task = "regression"

    def predict(self, X: Any) -> np.ndarray:
        return self._outputs(X)
