"""A multi-layer perceptron for tables, and its inference head."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import TrainConfig
from ..errors import NotFittedError
from ._base import ModelAdapter, ReadFile, TaskSpec, balanced_class_weights

__all__ = ["MLP", "InferenceHead", "MLPAdapter"]


class MLP(nn.Module):
    """(B, D) -> [Linear -> ReLU -> Dropout] x len(hidden) -> Linear -> (B, K)."""

    def __init__(self, in_features: int, out_features: int, hidden_sizes: tuple[int, ...] | list[int] = (128, 64), dropout: float = 0.1):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden_sizes:
            layers += [nn.Linear(width, h), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, out_features))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, D) -> (B, K)
        return self.net(x)


class InferenceHead(nn.Module):
    """Wraps a trained MLP so its output is the task's answer: probabilities or values in target units."""

    def __init__(self, body: nn.Module, kind: str, y_mean: float = 0.0, y_std: float = 1.0):
        super().__init__()
        self.body = body
        self.kind = kind
        self.register_buffer("y_mean", torch.tensor(float(y_mean)))
        self.register_buffer("y_std", torch.tensor(float(y_std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)  # (B, K)
        if self.kind == "classification":
            return torch.softmax(out, dim=1)  # (B, K) probabilities
        return out[:, 0] * self.y_std + self.y_mean  # (B,) values


def _accuracy(out: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    return {"accuracy": float((out.argmax(dim=1) == y).float().mean())}


def _r2(scale: float) -> Any:
    def metric(out: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        pred = out[:, 0]
        ss_res = torch.sum((pred - y) ** 2)
        ss_tot = torch.sum((y - y.mean()) ** 2)
        r2 = float(1 - ss_res / ss_tot) if len(y) > 1 and float(ss_tot) > 0 else float("nan")
        return {"r2": r2, "rmse": float(torch.sqrt(ss_res / len(y))) * scale}

    return metric


def _step_flops_per_sample(body: nn.Module, X: np.ndarray, y: np.ndarray, loss_fn: nn.Module, tdtype: torch.dtype) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    n = min(len(X), 8)
    xb = torch.as_tensor(X[:n], dtype=torch.float32)
    yb = torch.as_tensor(y[:n], dtype=tdtype)
    was_training = body.training
    body.train()
    with FlopCounterMode(display=False) as counter:
        loss_fn(body(xb), yb).backward()
    body.zero_grad(set_to_none=True)
    body.train(was_training)
    return int(counter.get_total_flops() // n)


def _forward_flops_per_sample(body: nn.Module, X: np.ndarray) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        body(torch.as_tensor(X[:1], dtype=torch.float32))
    return int(counter.get_total_flops())


class MLPAdapter(ModelAdapter):
    family = "mlp"
    flops_method = "counted: torch FlopCounterMode on one forward+backward step, per sample, x samples seen"

    def __init__(self, task: TaskSpec, config: TrainConfig) -> None:
        super().__init__(task, config)
        self.module_: InferenceHead | None = None
        self.args_: dict[str, Any] = {}
        self.train_result_: Any = None

    def fit(self, X, y, X_val, y_val, *, callbacks=(), checkpoint_dir=None, resume=False, **_: Any) -> "MLPAdapter":
        from ..training import Trainer

        c = self.config
        k = self.task.n_classes if self.task.kind == "classification" else 1
        self.args_ = {"in_features": int(X.shape[1]), "out_features": int(k),
                      "hidden_sizes": list(c.hidden_sizes), "dropout": float(c.dropout)}
        torch.manual_seed(c.seed)  # weight init is part of the seeded run
        body = MLP(**self.args_)
        if self.task.kind == "classification":
            weight = None
            if c.balance == "class_weight":
                weight = torch.tensor(balanced_class_weights(y, k), dtype=torch.float32)
            loss_fn: nn.Module = nn.CrossEntropyLoss(weight=weight)
            y_mean, y_std = 0.0, 1.0
            yt, yvt, metric, tdtype = y, y_val, _accuracy, torch.long
        else:
            # Regress on a standardized target; the inference head maps back to target units.
            y_mean, y_std = float(np.mean(y)), float(np.std(y)) or 1.0
            yt = ((y - y_mean) / y_std)[:, None]
            yvt = ((y_val - y_mean) / y_std)[:, None] if y_val is not None else None
            loss_fn, metric, tdtype = nn.MSELoss(), _r2(y_std), torch.float32
        val = (X_val, yvt) if X_val is not None and len(X_val) else None
        if c.backend == "ray":  # the same loop on Ray Train workers (training/_ray.py); same result type
            from ..training._ray import RayTrainer

            trainer: Any = RayTrainer(c, callbacks=callbacks, checkpoint_dir=checkpoint_dir, resume=resume,
                                      monitor="val_loss" if val is not None else "train_loss")
        else:
            trainer = Trainer(c, callbacks=callbacks, checkpoint_dir=checkpoint_dir, resume=resume,
                              monitor="val_loss" if val is not None else "train_loss")
        self.train_result_ = trainer.fit(body, (X, yt), val, loss_fn=loss_fn, metric_fn=metric, target_dtype=tdtype)
        self.history_ = self.train_result_.history
        # FLOPs: one forward+backward step counted by torch's FLOP counter, per sample, times samples seen
        epochs_run = len(self.history_) - (self.train_result_.resumed_from_epoch or 0) if self.history_ else 0
        self.training_flops_ = _step_flops_per_sample(body, X, yt, loss_fn, tdtype) * len(X) * max(epochs_run, 0)
        if val is not None:  # one validation forward per epoch
            self.training_flops_ += _forward_flops_per_sample(body, X) * len(X_val) * max(epochs_run, 0)
        self.module_ = InferenceHead(body.cpu(), self.task.kind, y_mean, y_std).eval()
        self.args_.update(y_mean=y_mean, y_std=y_std)
        return self

    def predict_output(self, X: np.ndarray) -> np.ndarray:
        if self.module_ is None:
            raise NotFittedError("This MLPAdapter is not fitted yet; call fit(X, y) before predicting.")
        with torch.inference_mode():
            return self.module_(torch.as_tensor(X, dtype=torch.float32)).numpy()

    def to_files(self) -> tuple[dict[str, Any], dict[str, bytes]]:
        from safetensors.torch import save

        self._check_fitted("module_")
        assert self.module_ is not None
        tensors = {k: v.contiguous() for k, v in self.module_.state_dict().items()}
        return {"family": self.family, "args": self.args_, "weights": "weights.safetensors"}, {
            "weights.safetensors": save(tensors)
        }

    @classmethod
    def from_files(cls, task: TaskSpec, meta: dict[str, Any], read: ReadFile) -> "MLPAdapter":
        from ._files import corrupt_file, read_safetensors

        args = dict(meta["args"])
        y_mean, y_std = args.pop("y_mean", 0.0), args.pop("y_std", 1.0)
        self = cls(task, TrainConfig())
        head = InferenceHead(MLP(**args), task.kind, y_mean, y_std)
        relpath = meta.get("weights", "weights.safetensors")
        state = read_safetensors(read, relpath, "torch")
        try:
            head.load_state_dict(state)
        except (RuntimeError, KeyError, ValueError) as exc:  # missing, extra or mis-shaped tensors
            raise corrupt_file(read, relpath, f"the weights of this MLP ({args.get('hidden_sizes')})", exc) from None
        self.module_ = head.eval()
        self.args_ = meta["args"]
        return self

    def torch_module(self) -> InferenceHead:
        self._check_fitted("module_")
        assert self.module_ is not None
        return self.module_

    def describe(self) -> dict[str, Any]:
        n = sum(p.numel() for p in self.module_.parameters()) if self.module_ is not None else 0
        return {"parameters": int(n), "hidden_sizes": self.args_.get("hidden_sizes")}


