"""The training loop: one loop for every gradient-descent model.

The trainer owns device, batching, optimizer, schedule, early stopping,
checkpoints and progress; a task supplies the module, the loss and a cheap
per-epoch metric. Read it top to bottom: ``fit`` is the whole story.

Data-parallel: when ``torch.distributed`` is initialized (a Ray Train worker, see
``fulcrum.distributed``) and the module is wrapped in ``DistributedDataParallel``, every rank
draws the same seeded permutation and takes rank ``r``'s strided share (``r::world``) of each
global batch, so one step of N ranks sees exactly the rows one single-process step sees; DDP
averages the gradients; the logged train loss is all-reduced; only rank 0 writes checkpoints.
On CUDA: bf16 autocast where the device supports it, data copied once from pinned memory with
non-blocking transfers.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..config import TrainConfig
from ..errors import ConfigError, TrainingError
from ._callbacks import Callback
from ._checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint, unusable_checkpoint

__all__ = ["Trainer", "TrainResult", "resolve_device"]

# metric_fn(outputs (N, K) on device, targets (N,)) -> {"accuracy": 0.93, ...}; must be cheap.
MetricFn = Callable[[torch.Tensor, torch.Tensor], dict[str, float]]


@dataclass
class TrainResult:
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_score: float = math.nan
    monitor: str = "val_loss"
    stopped_early: bool = False
    # the first epoch this process ran after loading a checkpoint (None: the run started fresh)
    resumed_from_epoch: int | None = None
    # 1 for a run's first process, +1 for each resume (also recorded in every epoch's log)
    attempt: int = 1


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' was asked for but no CUDA device is available; use device='cpu' or 'auto'.")
    return torch.device(name)


def _world() -> tuple[int, int]:
    """(rank, world size) of an initialized torch.distributed group, else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _to_device(a: Any, dtype: torch.dtype, dev: torch.device) -> torch.Tensor:
    """Host array -> tensor on ``dev``; to CUDA through pinned memory with a non-blocking copy."""
    t = torch.as_tensor(a, dtype=dtype)
    if dev.type == "cuda":
        return t.pin_memory().to(dev, non_blocking=True)
    return t.to(dev)


def autocast_dtype(dev: torch.device) -> torch.dtype | None:
    """bf16 autocast on a CUDA device that supports it (Ampere and newer), else None (full precision)."""
    if dev.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def _check_state(state: dict[str, Any], module: nn.Module) -> None:
    """The checkpoint's best weights must fit ``module`` (they are loaded only at the end)."""
    own = module.state_dict()
    if set(state) != set(own):
        raise KeyError(f"best_state has keys {sorted(set(state) ^ set(own))[:5]} that the model does not share")
    for k, v in own.items():
        if not isinstance(state[k], torch.Tensor) or state[k].shape != v.shape:
            raise ValueError(f"best_state[{k!r}] does not have the shape {tuple(v.shape)}")


class Trainer:
    """Train ``module`` on in-memory tensors with early stopping and atomic checkpoints.

    Parameters
    ----------
    config: the run's :class:`~fulcrum.config.TrainConfig` (epochs, batch size, lr, ...).
    callbacks: observers such as :class:`ProgressBar`.
    checkpoint_dir: where ``checkpoint.pt`` is written after every epoch (None: no checkpoints).
    resume: continue from the checkpoint in ``checkpoint_dir`` if one exists.
    device: overrides ``config.device`` (a Ray Train worker passes the device Ray gave it, e.g. cuda:1).
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        callbacks: Sequence[Callback] = (),
        checkpoint_dir: str | os.PathLike[str] | None = None,
        resume: bool = False,
        monitor: str = "val_loss",
        device: torch.device | None = None,
    ) -> None:
        self.config = config
        self.callbacks = list(callbacks)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.resume = resume
        self.monitor = monitor
        self.device = device if device is not None else resolve_device(config.device)
        self.rank, self.world_size = 0, 1  # set by fit: this process's rank in a data-parallel group
        self.start_epoch = 0
        self.stop_training = False

    # ------------------------------------------------------------------ pieces

    def _optimizer(self, module: nn.Module) -> torch.optim.Optimizer:
        c = self.config
        if c.optimizer == "adamw":
            return torch.optim.AdamW(module.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        if c.optimizer == "adam":
            return torch.optim.Adam(module.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        return torch.optim.SGD(module.parameters(), lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)

    def _scheduler(self, opt: torch.optim.Optimizer, steps_per_epoch: int = 1) -> Any:
        c = self.config
        if c.lr_schedule == "warmup_cosine":  # stepped after every optimizer step
            total, warm = max(1, c.epochs * steps_per_epoch), max(1, c.warmup_steps)
            return torch.optim.lr_scheduler.LambdaLR(
                opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, s / total))))
        if c.lr_schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=c.epochs)
        if c.lr_schedule == "step":
            return torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, c.epochs // 3), gamma=0.1)
        if c.lr_schedule == "plateau":
            return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=max(1, c.patience // 2))
        return None

    def _emit(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)

    # ------------------------------------------------------------------ the loop

    def fit(
        self,
        module: nn.Module,
        train: tuple[np.ndarray, np.ndarray],
        val: tuple[np.ndarray, np.ndarray] | None,
        *,
        loss_fn: nn.Module,
        metric_fn: MetricFn | None = None,
        target_dtype: torch.dtype = torch.float32,
        input_dtype: torch.dtype = torch.float32,
        augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> TrainResult:
        """Run the loop. ``input_dtype`` lets token ids (long) through for text models;
        ``augment`` transforms each training batch on the device (e.g. kornia for images)."""
        c = self.config
        dev = self.device
        greater = self.monitor not in ("val_loss", "train_loss") and self.monitor not in ("val_rmse", "val_mae")
        # Data lives on the device once; batches are index views, not DataLoader copies.
        X = _to_device(train[0], input_dtype, dev)  # (N, D) or (N, C, H, W), (N, T)
        y = _to_device(train[1], target_dtype, dev)  # (N,) or (N, 1)
        if val is not None and len(val[0]) > 0:
            Xv = _to_device(val[0], input_dtype, dev)
            yv = _to_device(val[1], target_dtype, dev)
        else:
            Xv = yv = None
        if X.shape[0] == 0:
            raise TrainingError("The training split is empty; provide more rows or lower test_size/val_size.")
        n, bs = X.shape[0], c.batch_size
        rank, world = self.rank, self.world_size = _world()
        # the module itself (DDP wraps it): its state is what checkpoints and best weights hold
        core: nn.Module = module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module
        amp = autocast_dtype(dev)
        autocast = (lambda: torch.autocast(dev.type, dtype=amp)) if amp is not None else contextlib.nullcontext

        torch.manual_seed(c.seed)
        module.to(dev)
        loss_fn.to(dev)
        gen = torch.Generator(device="cpu").manual_seed(c.seed)  # the sampler's own RNG
        opt = self._optimizer(module)
        per_step = c.lr_schedule == "warmup_cosine"
        sched = self._scheduler(opt, -(-n // bs))
        result = TrainResult(monitor=self.monitor)
        best = -math.inf if greater else math.inf
        best_state = copy.deepcopy(core.state_dict())
        bad_epochs = 0

        if self.resume and self.checkpoint_dir is not None:
            ckpt = load_checkpoint(self.checkpoint_dir)
            if ckpt is not None:
                try:
                    core.load_state_dict(ckpt["model"])
                    opt.load_state_dict(ckpt["optimizer"])
                    if sched is not None and ckpt.get("scheduler") is not None:
                        sched.load_state_dict(ckpt["scheduler"])
                    torch.set_rng_state(ckpt["torch_rng"])
                    gen.set_state(ckpt["sampler_rng"])
                    _check_state(ckpt["best_state"], core)
                except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as exc:
                    raise unusable_checkpoint(
                        self.checkpoint_dir / CHECKPOINT_NAME,
                        f"it does not fit this model or optimizer ({type(exc).__name__}: {' '.join(str(exc).split())[:240]})",
                    ) from None
                best, bad_epochs = float(ckpt["best"]), int(ckpt["bad_epochs"])
                best_state = ckpt["best_state"]
                result.history = list(ckpt["history"])
                result.best_epoch = int(ckpt["best_epoch"])
                self.start_epoch = int(ckpt["epoch"]) + 1
                result.resumed_from_epoch = self.start_epoch
                # the process that wrote the checkpoint was attempt N; this one is N + 1
                result.attempt = int(ckpt.get("attempt", 1)) + 1
                self.stop_training = bool(ckpt.get("stopped", False))

        self._emit("on_train_begin")
        for epoch in range(self.start_epoch, c.epochs):
            if self.stop_training:
                break
            # ---- one pass over the training split in a fresh random order
            module.train()
            perm = torch.randperm(n, generator=gen).to(dev)
            total = torch.zeros((), device=dev)
            seen = torch.zeros((), device=dev)
            for start in range(0, n, bs):
                idx = perm[start : start + bs]
                if world > 1:  # this rank's share of the global batch; a tail shorter than world borrows rows
                    if len(idx) < world:
                        idx = torch.cat([idx, perm[: world - len(idx)]])
                    idx = idx[rank::world]
                xb, yb = X[idx], y[idx]  # (B, D), (B,)
                if augment is not None:
                    xb = augment(xb)
                with autocast():
                    out = module(xb)  # (B, K)
                    loss = loss_fn(out.float() if amp is not None else out, yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if c.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(module.parameters(), c.grad_clip)
                opt.step()
                if per_step:
                    sched.step()
                total += loss.detach() * xb.shape[0]
                seen += xb.shape[0]
            if world > 1:
                import torch.distributed as dist

                both = torch.stack([total, seen])
                dist.all_reduce(both)
                total, seen = both[0], both[1]
            # attempt: which process computed this epoch (1 = the first; +1 per resume), so a history
            # shows where a run was resumed and that the epochs before it were not run again
            logs: dict[str, Any] = {"epoch": epoch, "train_loss": float(total) / (n if world == 1 else float(seen)), "lr": opt.param_groups[0]["lr"],
                                    "attempt": result.attempt}

            # ---- validation: loss plus the task's cheap metric
            if Xv is not None:  # every rank scores the whole validation split with the same weights
                module.eval()
                with torch.inference_mode(), autocast():
                    vout = core(Xv)
                    vout = vout.float() if amp is not None else vout
                    logs["val_loss"] = float(loss_fn(vout, yv))
                    if metric_fn is not None:
                        logs.update({f"val_{k}": float(v) for k, v in metric_fn(vout, yv).items()})
            if not math.isfinite(logs["train_loss"]):
                raise TrainingError(
                    f"Training diverged at epoch {epoch + 1} (loss is {logs['train_loss']}); lower lr (now {c.lr:g})."
                )

            # ---- schedule, early stopping, best weights
            score = logs.get(self.monitor, logs["train_loss"])
            if sched is not None and not per_step:
                sched.step(score) if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau) else sched.step()
            improved = score > best + c.min_delta if greater else score < best - c.min_delta
            if improved:
                best, bad_epochs, result.best_epoch = score, 0, epoch
                best_state = copy.deepcopy(core.state_dict())
            else:
                bad_epochs += 1
            result.history.append(logs)
            if c.early_stopping and bad_epochs >= c.patience:
                self.stop_training = True
                result.stopped_early = True

            if self.checkpoint_dir is not None and rank == 0:
                save_checkpoint(
                    self.checkpoint_dir,
                    {
                        "epoch": epoch,
                        "model": core.state_dict(),
                        "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict() if sched is not None else None,
                        "torch_rng": torch.get_rng_state(),
                        "sampler_rng": gen.get_state(),
                        "best": best,
                        "bad_epochs": bad_epochs,
                        "best_epoch": result.best_epoch,
                        "best_state": best_state,
                        "history": result.history,
                        "stopped": self.stop_training,
                        "attempt": result.attempt,
                    },
                )
            self._emit("on_epoch_end", epoch, logs)

        # ---- best weights restore (with no validation split, the last weights are the result)
        if Xv is not None:
            core.load_state_dict(best_state)
        result.best_score = float(best)
        result.stopped_early = result.stopped_early or self.stop_training and len(result.history) < c.epochs
        self._emit("on_train_end")
        return result
