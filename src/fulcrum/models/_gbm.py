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
            "min_data_in_leaf": int(c.min_data_in_leaf if c.min_data_in_leaf is not None else min(20, max(2, n_rows // 20))),
            "feature_fraction": c.feature_fraction,
            "lambda_l2": c.lambda_l2,
            "seed": c.seed,
            "deterministic": True,
            "force_row_wise": True,
            # gbm_threads; 0 = auto: one thread below 20,000 rows, else every core. OpenMP threads spin while
            # they wait, so on a busy machine more threads than free cores are far slower than one: 5-fold CV
            # on 350 rows took 8.4 s with 2 threads and 0.3 s with one on this project's loaded 2-core box.
            "num_threads": c.gbm_threads or (1 if n_rows < 20_000 else os.cpu_count() or 1),
            "verbose": -1,
        }
        if c.bagging_fraction < 1.0:
            p.update(bagging_fraction=c.bagging_fraction, bagging_freq=1)
        if self.task.kind == "regression":
            p.update(objective="regression", metric="l2")
        elif self.task.n_classes == 2:
            p.update(objective="binary", metric="binary_logloss")
        else:
            p.update(objective="multiclass", num_class=self.task.n_classes, metric="multi_logloss")
        return p

    def fit(self, X, y, X_val=None, y_val=None, *, deadline: Any = None, **_: Any) -> "LightGBMAdapter":
        """``deadline``: an object with ``expired()`` (tasks/tabular/_select.Deadline); boosting stops at the
        last finished round once it has expired, and ``stopped_by_deadline_`` says so."""
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
        self.stopped_by_deadline_ = False
        if deadline is not None:
            callbacks.append(self._deadline_callback(deadline))
        self.booster_ = lgb.train(
            self._params(len(X)), train, num_boost_round=c.n_estimators,
            valid_sets=valid_sets, valid_names=["val"] if valid_sets else None, callbacks=callbacks,
        )
        trees = self.booster_.num_trees()
        self.training_flops_ = int(trees * (X.shape[0] * X.shape[1] + self.config.num_leaves * X.shape[1] * 256))
        curve = next(iter(record.get("val", {}).values()), [])
        self.history_ = [{"epoch": i, "val_loss": float(v)} for i, v in enumerate(curve)]
        return self

    def _deadline_callback(self, deadline: Any) -> Any:
        import lightgbm as lgb

        def stop_at_deadline(env: Any) -> None:
            if deadline.expired():
                self.stopped_by_deadline_ = True
                # keep the rounds finished so far (lgb.train sets best_iteration = this + 1)
                raise lgb.callback.EarlyStopException(env.iteration, list(env.evaluation_result_list or []))

        stop_at_deadline.order = 40  # type: ignore[attr-defined]  # after early stopping (30)
        return stop_at_deadline

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
