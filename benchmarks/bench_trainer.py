"""Trainer overhead: Fulcrum's Trainer vs a hand-written PyTorch loop, side by side.

Same MLP, same data, same batch size, epochs, optimizer, schedule and seed; both
evaluate the validation loss once per epoch. Runs alternate (A B A B ...) so
machine noise hits both; the median wall time of each is compared.

    python benchmarks/bench_trainer.py [--rows 20000] [--epochs 15] [--repeats 5]

Target (issue 2): time ratio trainer/hand <= 1.05, same final losses to 5 decimals.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from torch import nn

from fulcrum.config import TrainConfig
from fulcrum.models import MLP
from fulcrum.training import Trainer


def make_data(rows: int, features: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, features)).astype(np.float32)
    w = rng.normal(size=(features, 4))
    y = (X @ w + 0.5 * rng.normal(size=(rows, 4))).argmax(axis=1).astype(np.int64)
    cut = int(rows * 0.8)
    return (X[:cut], y[:cut]), (X[cut:], y[cut:])


def hand_loop(cfg: TrainConfig, train, val, in_f: int):
    """What a careful user writes by hand: tensors in memory, randperm batches, AdamW, cosine."""
    torch.manual_seed(cfg.seed)
    model = MLP(in_f, 4, cfg.hidden_sizes, cfg.dropout)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    X, y = torch.as_tensor(train[0]), torch.as_tensor(train[1])
    Xv, yv = torch.as_tensor(val[0]), torch.as_tensor(val[1])
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    loss_fn = nn.CrossEntropyLoss()
    n = X.shape[0]
    for _ in range(cfg.epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for s in range(0, n, cfg.batch_size):
            idx = perm[s : s + cfg.batch_size]
            out = model(X[idx])
            loss = loss_fn(out, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        model.eval()
        with torch.inference_mode():
            val_loss = float(loss_fn(model(Xv), yv))
    return total / n, val_loss


def fulcrum_loop(cfg: TrainConfig, train, val, in_f: int):
    torch.manual_seed(cfg.seed)
    model = MLP(in_f, 4, cfg.hidden_sizes, cfg.dropout)
    res = Trainer(cfg).fit(model, train, val, loss_fn=nn.CrossEntropyLoss(), target_dtype=torch.long)
    last = res.history[-1]
    return last["train_loss"], last["val_loss"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--features", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    train, val = make_data(args.rows, args.features)
    cfg = TrainConfig(epochs=args.epochs, batch_size=64, lr=1e-3, hidden_sizes=(128, 64), dropout=0.1,
                      early_stopping=False, lr_schedule="cosine", optimizer="adamw", progress=False, device="cpu")
    times = {"hand": [], "fulcrum": []}
    losses = {}
    for r in range(args.repeats + 1):  # first round is warm-up, not counted
        for name, fn in (("hand", hand_loop), ("fulcrum", fulcrum_loop)) if r % 2 == 0 else (("fulcrum", fulcrum_loop), ("hand", hand_loop)):
            t0 = time.perf_counter()
            losses[name] = fn(cfg, train, val, args.features)
            if r:
                times[name].append(time.perf_counter() - t0)
    h, f = statistics.median(times["hand"]), statistics.median(times["fulcrum"])
    print(f"data: {len(train[0])} train rows x {args.features} features, batch 64, {args.epochs} epochs, MLP (128, 64)")
    print(f"hand-written loop : median {h:.3f} s  train_loss={losses['hand'][0]:.6f} val_loss={losses['hand'][1]:.6f}")
    print(f"fulcrum Trainer   : median {f:.3f} s  train_loss={losses['fulcrum'][0]:.6f} val_loss={losses['fulcrum'][1]:.6f}")
    same = all(round(a, 5) == round(b, 5) for a, b in zip(losses["hand"], losses["fulcrum"]))
    print(f"time ratio fulcrum/hand = {f / h:.3f}  (target <= 1.05)   same losses to 5 decimals: {same}")


if __name__ == "__main__":
    main()
