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

__all__ = ["student_sizes", "distill_mlp"]


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
    """Train a student InferenceHead with ``hidden_sizes`` on the teacher head's outputs."""
    import torch
    from torch import nn

    from ...models import MLP, InferenceHead
    from ...training import Trainer

    kind = teacher.kind
    in_f = teacher.body.net[0].in_features
    out_f = [m for m in teacher.body.net if isinstance(m, nn.Linear)][-1].out_features
    torch.manual_seed(int(config.seed))
    student = MLP(in_f, out_f, hidden_sizes, dropout=0.0)

    def teacher_raw(A: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return teacher.body(torch.as_tensor(A, dtype=torch.float32)).numpy()  # (N, K) logits / standardized value

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
