"""Knowledge distillation: a smaller MLP student trained on the teacher's outputs.

Classification (Hinton et al., 2015): the loss is
``alpha * T^2 * KL(softmax(teacher_logits / T) || softmax(student_logits / T))
+ (1 - alpha) * cross_entropy(student_logits, true_label)``; the ``T^2`` factor keeps the
soft-target gradients on the same scale as the hard ones when T changes.
Regression: the student regresses ``alpha * teacher + (1 - alpha) * truth`` (standardized).
Training goes through the same :class:`fulcrum.training.Trainer` as every MLP.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["student_sizes", "distill_mlp", "OutputTeacher"]


class OutputTeacher:
    """A teacher known only by its outputs (an ensemble of trees, linear models and MLPs).

    ``predict(X)`` gives (N, K) probabilities or (N,) values; the distillation reads them as logits
    ``log p`` (softmax(log p / T) is the teacher's distribution at temperature T) or as values
    standardized with the training target's ``y_mean`` / ``y_std`` (which the student's head maps back).
    """

    def __init__(self, predict: Any, kind: str, in_features: int, out_features: int, y_mean: float = 0.0,
                 y_std: float = 1.0) -> None:
        self.predict, self.kind = predict, kind
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.y_mean, self.y_std = float(y_mean), float(y_std) or 1.0

    def raw(self, X: np.ndarray) -> np.ndarray:
        out = np.asarray(self.predict(X), dtype=np.float64)
        if self.kind == "classification":
            return np.log(np.clip(out, 1e-7, 1.0)).astype(np.float32)  # (N, K) logits
        return ((out - self.y_mean) / self.y_std)[:, None].astype(np.float32)  # (N, 1) standardized


def student_sizes(teacher: list[int] | tuple[int, ...], shrink: int = 4, minimum: int = 8) -> list[int]:
    """Each hidden layer ``shrink`` times narrower (at least ``minimum`` units): about shrink^2 fewer
    multiply-adds in the hidden-to-hidden products."""
    return [max(minimum, int(h) // shrink) for h in teacher]


def _loss_module(n_classes: int, temperature: float, alpha: float) -> Any:
    import torch
    from torch import nn
    from torch.nn import functional as F

    class DistillLoss(nn.Module):
        """target (B, K + 1): the teacher's logits, then the true class index."""

        def forward(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            t_logits, y = target[:, :n_classes], target[:, n_classes].long()
            T = temperature
            soft = F.kl_div(F.log_softmax(out / T, dim=1), F.softmax(t_logits / T, dim=1), reduction="batchmean") * T * T
            hard = F.cross_entropy(out, y)
            return alpha * soft + (1 - alpha) * hard

    return DistillLoss()



def distill_mlp(teacher: Any, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None, y_val: np.ndarray | None,
                config: Any, *, hidden_sizes: list[int], temperature: float = 2.0, alpha: float = 0.7,
                epochs: int | None = None) -> Any:
    """Train a student InferenceHead with ``hidden_sizes`` on the teacher's outputs (an MLP's InferenceHead,
    or an :class:`OutputTeacher`)."""
    import torch
    from torch import nn

    from ...models import MLP, InferenceHead
    from ...training import Trainer

    kind = teacher.kind
    if isinstance(teacher, OutputTeacher):
        in_f, out_f, teacher_raw = teacher.in_features, teacher.out_features, teacher.raw
    else:
        in_f = teacher.body.net[0].in_features
        out_f = [m for m in teacher.body.net if isinstance(m, nn.Linear)][-1].out_features

        def teacher_raw(A: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return teacher.body(torch.as_tensor(A, dtype=torch.float32)).numpy()  # (N, K) logits / standardized value
    torch.manual_seed(int(config.seed))
    student = MLP(in_f, out_f, hidden_sizes, dropout=0.0)

    if kind == "classification":
        target = np.concatenate([teacher_raw(X), y[:, None].astype(np.float32)], axis=1)
        target_val = (np.concatenate([teacher_raw(X_val), y_val[:, None].astype(np.float32)], axis=1)
                      if X_val is not None and len(X_val) else None)
        loss_fn: nn.Module = _loss_module(out_f, temperature, alpha)
    else:
        m, s = float(teacher.y_mean), float(teacher.y_std)
        target = (alpha * teacher_raw(X)[:, :1] + (1 - alpha) * ((y - m) / s)[:, None]).astype(np.float32)
        target_val = (((y_val - m) / s)[:, None].astype(np.float32) if X_val is not None and len(X_val) else None)
        loss_fn = nn.MSELoss()
    cfg = config.replace(epochs=epochs or config.epochs, hidden_sizes=list(hidden_sizes), dropout=0.0,
                         early_stopping=True, progress=False, resume=False, checkpoint_dir=None, device="cpu")
    val = (X_val, target_val) if target_val is not None else None
    Trainer(cfg, monitor="val_loss" if val is not None else "train_loss").fit(
        student, (X, target), val, loss_fn=loss_fn, target_dtype=torch.float32)
    return InferenceHead(student.cpu(), kind, float(teacher.y_mean), float(teacher.y_std)).eval()
