"""Linear and logistic regression (scikit-learn), stored as plain coefficient arrays."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._base import ModelAdapter, ReadFile, TaskSpec, softmax

__all__ = ["LinearAdapter", "RIDGE_ALPHAS"]

# Candidate L2 strengths for regression when none is given (RidgeCV picks one by
# leave-one-out error); when the smallest wins, plain least squares is fitted instead, so
# exactly linear data keeps exact coefficients.
RIDGE_ALPHAS = (1e-6, 1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0)


class LinearAdapter(ModelAdapter):
    """OLS / ridge for regression, (multinomial) logistic regression for classification.

    Only ``coef_`` (K', D) and ``intercept_`` (K',) are kept: prediction is one
    matrix product, so the saved form is two arrays in safetensors, no estimator object.
    Fitting and prediction run in float64 (pass float64 features for full precision; the
    ONNX graph takes float32 features and agrees to float32 rounding).
    """

    family = "linear"
    flops_method = ("estimate: least squares 2*n*d^2 + d^3; logistic regression "
                    "n_iter * 4*n*d*k (one forward and one gradient pass per L-BFGS iteration)")
    coef_: np.ndarray | None = None
    intercept_: np.ndarray | None = None

    def fit(self, X, y, X_val=None, y_val=None, **_: Any) -> "LinearAdapter":
        from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge, RidgeCV

        c = self.config
        X = np.asarray(X, dtype=np.float64)  # double precision: exact least squares on exactly linear data
        if self.task.kind == "regression":
            y = np.asarray(y, dtype=np.float64)
            if c.l2 is None:  # default: ridge with its strength chosen by efficient leave-one-out CV
                est = RidgeCV(alphas=RIDGE_ALPHAS).fit(X, y)
                if est.alpha_ == RIDGE_ALPHAS[0]:  # the weakest ridge won: the data wants none, so no bias
                    est = LinearRegression().fit(X, y)
            else:
                est = LinearRegression() if c.l2 == 0 else Ridge(alpha=c.l2, random_state=c.seed)
                est.fit(X, y)
            self.coef_ = np.atleast_2d(np.asarray(est.coef_, dtype=np.float64))
            self.intercept_ = np.atleast_1d(np.asarray(est.intercept_, dtype=np.float64))
            n, d = X.shape
            self.training_flops_ = int(2 * n * d * d + d**3)
        else:
            C = 1.0 / c.l2 if c.l2 else 1.0
            est = LogisticRegression(
                C=C, max_iter=2000, random_state=c.seed,
                class_weight="balanced" if c.balance == "class_weight" else None,
            )
            est.fit(X, y)
            n, d = X.shape
            self.training_flops_ = int(np.max(est.n_iter_)) * 4 * n * d * est.coef_.shape[0]
            coef, icpt = np.asarray(est.coef_, np.float64), np.asarray(est.intercept_, np.float64)
            if len(est.classes_) < self.task.n_classes:  # a class absent from training: expand
                full_c = np.full((self.task.n_classes, X.shape[1]), 0.0)
                full_i = np.full(self.task.n_classes, -1e3)
                if coef.shape[0] == 1:  # binary form over two present classes
                    coef = np.vstack([-coef / 2, coef / 2])
                    icpt = np.array([-icpt[0] / 2, icpt[0] / 2])
                full_c[est.classes_] = coef
                full_i[est.classes_] = icpt
                coef, icpt = full_c, full_i
            self.coef_, self.intercept_ = coef, icpt
        self.history_ = []
        return self

    def decision(self, X: np.ndarray) -> np.ndarray:
        self._check_fitted("coef_")
        return np.asarray(X, np.float64) @ self.coef_.T + self.intercept_  # (N, K')

    def predict_output(self, X: np.ndarray) -> np.ndarray:
        z = self.decision(X)
        if self.task.kind == "regression":
            return z[:, 0]
        if z.shape[1] == 1:  # binary logistic: sigmoid of one logit
            p1 = 1.0 / (1.0 + np.exp(-z[:, 0]))
            return np.stack([1.0 - p1, p1], axis=1)
        return softmax(z)

    def to_files(self) -> tuple[dict[str, Any], dict[str, bytes]]:
        from safetensors.numpy import save

        self._check_fitted("coef_")
        data = save({"coef": np.ascontiguousarray(self.coef_), "intercept": np.ascontiguousarray(self.intercept_)})
        return {"family": self.family, "weights": "weights.safetensors"}, {"weights.safetensors": data}

    @classmethod
    def from_files(cls, task: TaskSpec, meta: dict[str, Any], read: ReadFile) -> "LinearAdapter":
        from ..config import TrainConfig
        from ._files import corrupt_file, read_safetensors

        relpath = meta.get("weights", "weights.safetensors")
        arrays = read_safetensors(read, relpath)
        self = cls(task, TrainConfig())
        try:
            self.coef_, self.intercept_ = arrays["coef"], arrays["intercept"]
        except KeyError as exc:
            raise corrupt_file(read, relpath, "linear-model weights (coef, intercept)", exc) from None
        return self

    def describe(self) -> dict[str, Any]:
        return {"n_coef": int(self.coef_.size) if self.coef_ is not None else 0}
