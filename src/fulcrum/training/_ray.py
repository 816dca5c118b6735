"""Data-parallel training on a Ray cluster: the shared :class:`Trainer` loop inside Ray Train workers.

``RayTrainer`` has :class:`Trainer`'s ``fit`` contract (same arguments, same :class:`TrainResult`, the
module ends with the best weights), so a model adapter switches backends with ``config.backend`` and
nothing downstream (export, package, registry) changes.

How a run goes (``config.workers`` = N, ``config.gpus_per_worker`` = G):

- a ``ray.train.torch.TorchTrainer`` starts N workers (1 CPU, G GPUs each) with a torch process group
  (gloo on CPU, NCCL on GPU); each worker receives the initialized module, the arrays and the loss
  through Ray's object store, wraps the module with ``ray.train.torch.prepare_model`` (DDP) and runs
  the ordinary ``Trainer.fit``, which shards each global batch by rank (see ``_trainer``): one step of
  N workers sees the rows of one single-process step, so metrics match a local run (the tolerance is in
  ``tests/distributed/test_ray_train.py``; dropout masks and float reduction order differ);
- after every epoch rank 0 writes the ordinary atomic checkpoint and hands it to
  ``ray.train.report(metrics, checkpoint=...)``, which copies it into the run's storage
  (``<run dir>/checkpoints/ray/``); the other ranks report the same metrics;
- a worker that dies (or raises) fails the attempt; with ``FailureConfig(max_failures=config.max_failures)``
  Ray starts a new worker group, and every worker continues from ``ray.train.get_checkpoint()``: model,
  optimizer, scheduler, RNG, sampler and early-stopping state, and the history, whose ``attempt`` field
  shows which epochs each attempt ran (none twice);
- at the end rank 0 reports the best weights and the result; the driver loads them into ``module``.

Callbacks run on every worker (a callback that stops a run must decide the same on every rank);
progress bars are not shipped. ``fulcrum train --resume`` of an interrupted Ray run continues from the
newest checkpoint in the run's storage.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..config import TrainConfig
from ..errors import TrainingError
from ._callbacks import Callback, ProgressBar
from ._checkpoint import CHECKPOINT_NAME
from ._trainer import TrainResult

__all__ = ["RayTrainer", "FINAL_NAME"]

FINAL_NAME = "final.pt"  # rank 0's last report: the best weights and the TrainResult
_FITS: dict[str, int] = {}  # storage -> fits started by this process


class _Report(Callback):
    """After each epoch: rank 0 reports the metrics with the checkpoint the Trainer just wrote; others the metrics."""

    def __init__(self, local: Path) -> None:
        self.local = local

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, Any]) -> None:
        import ray.train

        metrics = {k: v for k, v in logs.items() if isinstance(v, (int, float))}
        if trainer.rank == 0 and (self.local / CHECKPOINT_NAME).exists():
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(str(self.local)),
                             delete_local_checkpoint_after_upload=False)
        else:
            ray.train.report(metrics)


def _worker_loop(cfg: dict[str, Any]) -> None:
    """One Ray Train worker: restore the last checkpoint if the run has one, then the shared Trainer loop."""
    import ray
    import ray.train
    import ray.train.torch

    from ._trainer import Trainer

    job = ray.get(cfg["job"])
    # arrays from the object store are read-only views; the Trainer gets its own copies
    job["train"] = tuple(np.array(a) for a in job["train"])
    job["val"] = None if job["val"] is None else tuple(np.array(a) for a in job["val"])
    module: nn.Module = job["module"]
    local = Path(tempfile.mkdtemp(prefix="fulcrum-ray-ckpt-"))
    ckpt = ray.train.get_checkpoint()
    if ckpt is not None:  # a restarted worker group (or --resume): continue where the last report left off
        with ckpt.as_directory() as d:
            shutil.copy2(Path(d) / CHECKPOINT_NAME, local / CHECKPOINT_NAME)
    device = ray.train.torch.get_device()
    model = ray.train.torch.prepare_model(module, move_to_device=device)  # DDP when there are >= 2 workers
    config: TrainConfig = job["config"].replace(backend="local", progress=False, device=device.type)
    trainer = Trainer(config, callbacks=[*job["callbacks"], _Report(local)], checkpoint_dir=local,
                      resume=ckpt is not None, monitor=job["monitor"], device=device)
    result = trainer.fit(model, job["train"], job["val"], **job["kwargs"])
    core = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    last = {k: v for k, v in (result.history[-1] if result.history else {}).items() if isinstance(v, (int, float))}
    if trainer.rank == 0:
        torch.save({"model": {k: v.detach().cpu() for k, v in core.state_dict().items()},
                    "result": dataclasses.asdict(result)}, local / FINAL_NAME)
        ray.train.report({**last, "final": 1}, checkpoint=ray.train.Checkpoint.from_directory(str(local)),
                         delete_local_checkpoint_after_upload=False)
    else:
        ray.train.report({**last, "final": 1})
    shutil.rmtree(local, ignore_errors=True)


def _latest_checkpoint(storage: Path) -> Any:
    """The newest Ray checkpoint holding a training checkpoint under ``storage`` (for --resume), or None."""
    import ray.train

    found = sorted((p for p in storage.glob("checkpoint_*") if (p / CHECKPOINT_NAME).is_file()),
                   key=lambda p: p.stat().st_mtime)
    return ray.train.Checkpoint.from_directory(str(found[-1])) if found else None


class RayTrainer:
    """:class:`Trainer`'s ``fit`` on ``config.workers`` Ray Train workers (see the module docstring)."""

    def __init__(
        self,
        config: TrainConfig,
        *,
        callbacks: Sequence[Callback] = (),
        checkpoint_dir: str | os.PathLike[str] | None = None,
        resume: bool = False,
        monitor: str = "val_loss",
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.callbacks = [cb for cb in callbacks if not isinstance(cb, ProgressBar)]
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.resume = resume
        self.monitor = monitor
        self.log = log
        self.storage_: Path | None = None  # where Ray kept this run's checkpoints

    def fit(
        self,
        module: nn.Module,
        train: tuple[np.ndarray, np.ndarray],
        val: tuple[np.ndarray, np.ndarray] | None,
        *,
        loss_fn: nn.Module,
        metric_fn: Any = None,
        target_dtype: torch.dtype = torch.float32,
        input_dtype: torch.dtype = torch.float32,
        augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> TrainResult:
        from .._ray import connect

        c = self.config
        ray = connect(c.ray_address, log=self.log)
        import ray.train
        from ray.train.torch import TorchTrainer

        if len(train[0]) == 0:
            raise TrainingError("The training split is empty; provide more rows or lower test_size/val_size.")
        gpus = float(c.gpus_per_worker)
        if gpus > 0 and not ray.cluster_resources().get("GPU"):
            raise TrainingError(f"--gpus-per-worker {gpus:g} was asked for, but the Ray cluster has no GPU; drop "
                                "the option (or set it to 0) or join a cluster with GPUs (--address).")
        own_tmp = None
        if self.checkpoint_dir is not None:
            storage = (self.checkpoint_dir / "ray").resolve()
        else:
            own_tmp = tempfile.mkdtemp(prefix="fulcrum-ray-run-")
            storage = Path(own_tmp)
        storage.mkdir(parents=True, exist_ok=True)
        self.storage_ = storage
        job = ray.put({
            "module": module.cpu(), "train": train, "val": val, "config": c, "monitor": self.monitor,
            "callbacks": self.callbacks,
            "kwargs": {"loss_fn": loss_fn, "metric_fn": metric_fn, "target_dtype": target_dtype,
                       "input_dtype": input_dtype, "augment": augment},
        })
        # the k-th fit of this process under this storage (a pipeline fits, then refits): --resume meets
        # each stage's own checkpoints again, in the same order
        k = _FITS[str(storage)] = _FITS.get(str(storage), -1) + 1
        name = f"fit-{k}"
        start_from = _latest_checkpoint(storage / name) if self.resume else None
        trainer = TorchTrainer(
            _worker_loop,
            train_loop_config={"job": job},
            scaling_config=ray.train.ScalingConfig(num_workers=int(c.workers), use_gpu=gpus > 0,
                                                   resources_per_worker={"CPU": 1, **({"GPU": gpus} if gpus else {})}),
            run_config=ray.train.RunConfig(
                name=name, storage_path=str(storage),
                failure_config=ray.train.FailureConfig(max_failures=int(c.max_failures)),
                checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2)),
            resume_from_checkpoint=start_from,
        )
        if self.log:
            self.log(f"training on Ray: {c.workers} worker(s), {gpus:g} GPU(s) each, up to {c.max_failures} "
                     f"worker failure(s) resumed from the last checkpoint; checkpoints in {storage}")
        try:
            out = trainer.fit()
        except Exception as exc:  # ray.train.TrainingFailedError and friends: one line, the cause first
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
            cause = " ".join((lines[-1] if lines else type(exc).__name__).split())[:400]  # the root error's line
            raise TrainingError(f"Ray training failed ({cause}); up to {c.max_failures} worker failure(s) were "
                                "allowed. Fix the cause, then rerun with --resume to continue from the last "
                                "checkpoint (or raise max_failures).") from None
        if out.checkpoint is None:
            raise TrainingError("Ray training finished without a final checkpoint; rerun with --resume.")
        with out.checkpoint.as_directory() as d:
            final = torch.load(Path(d) / FINAL_NAME, map_location="cpu", weights_only=True)
        module.load_state_dict(final["model"])
        if own_tmp is not None:
            shutil.rmtree(own_tmp, ignore_errors=True)
        return TrainResult(**final["result"])
