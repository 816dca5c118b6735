"""Gradient-boosted trees (LightGBM), stored in LightGBM's own text model format."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ._base import ModelAdapter, ReadFile, TaskSpec, balanced_class_weights

__all__ = ["LightGBMAdapter"]


class LightGBMAdapter(ModelAdapter):
    family = "lightgbm"
    flops_method = "estimate: n_rows * n_features per tree for histogram construction, plus leaves * n_features * 256 bins for split search"
    booster_: Any = None

    def _params(self, n_rows: int) -> dict[str, Any]:
        c = self.config
        p: dict[str, Any] = {
            "learning_rate": c.gbm_learning_rate,
            "num_leaves": c.num_leaves,
            "min_data_in_leaf": int(min(20, max(2, n_rows // 20))),
            "seed": c.seed,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": os.cpu_count() or 1,
            "verbose": -1,
        }
        if self.task.kind == "regression":
            p.update(objective="regression", metric="l2")
        elif self.task.n_classes == 2:
            p.update(objective="binary", metric="binary_logloss")
        else:
            p.update(objective="multiclass", num_class=self.task.n_classes, metric="multi_logloss")
        return p

    def fit(self, X, y, X_val=None, y_val=None, **_: Any) -> "LightGBMAdapter":
        import lightgbm as lgb

        c = self.config
        weight = None
        if self.task.kind == "classification" and c.balance == "class_weight":
            weight = balanced_class_weights(y, self.task.n_classes)[y.astype(np.int64)]
        train = lgb.Dataset(X, label=y, weight=weight, free_raw_data=True)
        record: dict[str, Any] = {}
        callbacks = [lgb.record_evaluation(record)]
        valid_sets = []
        if X_val is not None and len(X_val):
            valid_sets = [lgb.Dataset(X_val, label=y_val, reference=train)]
            callbacks.append(lgb.early_stopping(stopping_rounds=max(20, 2 * c.patience), verbose=False))
        self.booster_ = lgb.train(
            self._params(len(X)), train, num_boost_round=c.n_estimators,
            valid_sets=valid_sets, valid_names=["val"] if valid_sets else None, callbacks=callbacks,
        )
        trees = self.booster_.num_trees()
        self.training_flops_ = int(trees * (X.shape[0] * X.shape[1] + self.config.num_leaves * X.shape[1] * 256))
        curve = next(iter(record.get("val", {}).values()), [])
        self.history_ = [{"epoch": i, "val_loss": float(v)} for i, v in enumerate(curve)]
        return self

    def predict_output(self, X: np.ndarray) -> np.ndarray:
        self._check_fitted("booster_")
        best = self.booster_.best_iteration or None
        out = np.asarray(self.booster_.predict(np.asarray(X, np.float64), num_iteration=best))
        if self.task.kind == "classification" and out.ndim == 1:
            return np.stack([1.0 - out, out], axis=1)
        return out

    def to_files(self) -> tuple[dict[str, Any], dict[str, bytes]]:
        self._check_fitted("booster_")
        best = self.booster_.best_iteration or -1
        text = self.booster_.model_to_string(num_iteration=best)
        return {"family": self.family, "model_file": "model.lgb.txt", "num_trees": self.booster_.num_trees()}, {
            "model.lgb.txt": text.encode("utf-8")
        }

    @classmethod
    def from_files(cls, task: TaskSpec, meta: dict[str, Any], read: ReadFile) -> "LightGBMAdapter":
        import lightgbm as lgb

        from ..config import TrainConfig
        from ._files import corrupt_file, read_text

        self = cls(task, TrainConfig())
        relpath = meta.get("model_file", "model.lgb.txt")
        try:
            self.booster_ = lgb.Booster(model_str=read_text(read, relpath, "a LightGBM model"))
        except lgb.basic.LightGBMError as exc:
            raise corrupt_file(read, relpath, "a LightGBM model", exc) from None
        return self

    def describe(self) -> dict[str, Any]:
        return {"trees": int(self.booster_.num_trees()) if self.booster_ is not None else 0}
