"""Popularity and matrix factorization (torch, through the shared Trainer), and the ranking metrics.

Every model ends as two matrices the graph multiplies: a user row ``A`` (n_users + 1, D) (the last row: a user the
model has never seen) and an item matrix ``B`` (n_items, D), with D = factors + 3::

    A[u] = [U_u, 1, 0, mu + b_u]     B[i] = [V_i, b_i, p_i, 1]     score(u, i) = A[u] . B[i]
    A[unknown] = [0, 0, 1, 0]        -> score = p_i, the item's popularity (the cold-start fallback)

(implicit feedback has no mu + b_u; popularity is A = [0, 0, 1, 0] for every user.)
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["MF", "RecLoss", "fit_mf", "fit_als", "factor_matrices", "bias_baseline", "popularity", "ranking_metrics",
           "top_k", "scores_of"]


class MF(nn.Module):
    """score(u, i) = U_u . V_i + b_i (+ mu + b_u for explicit ratings).

    Training (implicit): x = (B, 2) [user, positive item] -> (B,) score(u, pos) - score(u, neg) with one negative
    drawn uniformly per row (BPR); eval: (B, n_items) scores of every item. Explicit: (B,) predicted ratings."""

    def __init__(self, n_users: int, n_items: int, factors: int, explicit: bool, mu: float = 0.0) -> None:
        super().__init__()
        self.n_items, self.explicit = n_items, explicit
        self.U = nn.Embedding(n_users, factors)
        self.V = nn.Embedding(n_items, factors)
        self.bi = nn.Embedding(n_items, 1)
        self.bu = nn.Embedding(n_users, 1)
        std = 0.1
        for e in (self.U, self.V):
            nn.init.normal_(e.weight, std=std)
        nn.init.zeros_(self.bi.weight)
        nn.init.zeros_(self.bu.weight)
        self.register_buffer("mu", torch.tensor(float(mu)))
        self.penalty: torch.Tensor | None = None

    def init_biases(self, bu: np.ndarray, bi: np.ndarray) -> None:
        """Start from the bias baseline (ratings): the factors then learn what the biases leave."""
        with torch.no_grad():
            self.bu.weight[:, 0] = torch.as_tensor(bu, dtype=self.bu.weight.dtype)
            self.bi.weight[:, 0] = torch.as_tensor(bi, dtype=self.bi.weight.dtype)

    def pair(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        pu, qi, bi = self.U(u), self.V(i), self.bi(i).squeeze(1)
        s = (pu * qi).sum(1) + bi
        if self.explicit:
            bu = self.bu(u).squeeze(1)
            if self.training:  # the L2 penalty of the rows this batch used (RecLoss adds reg x it)
                self.penalty = ((pu * pu).sum(1) + (qi * qi).sum(1) + bu * bu + bi * bi).mean()
            return s + self.mu + bu
        return s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, i = x[:, 0], x[:, 1]
        if self.explicit:
            return self.pair(u, i)  # (B,)
        if self.training:
            j = torch.randint(0, self.n_items, i.shape, device=i.device)  # sampled negatives (torch's seeded RNG)
            return self.pair(u, i) - self.pair(u, j)  # (B,)
        return self.U(u) @ self.V.weight.T + self.bi.weight.T  # (B, n_items)

    def matrices(self, pop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(A (n_users + 1, D), B (n_items, D)) float32 for the graph."""
        U = self.U.weight.detach().cpu().numpy().astype(np.float64)
        V = self.V.weight.detach().cpu().numpy().astype(np.float64)
        bi = self.bi.weight.detach().cpu().numpy()[:, 0].astype(np.float64)
        bu = self.bu.weight.detach().cpu().numpy()[:, 0].astype(np.float64)
        n_users = U.shape[0]
        off = (float(self.mu) + bu) if self.explicit else np.zeros(n_users)
        A = np.concatenate([U, np.ones((n_users, 1)), np.zeros((n_users, 1)), off[:, None]], axis=1)
        unknown = np.zeros((1, A.shape[1]))
        unknown[0, -2] = 1.0
        B = np.concatenate([V, bi[:, None], pop[:, None], np.ones((len(V), 1))], axis=1)
        return np.concatenate([A, unknown]).astype(np.float32), B.astype(np.float32)


class RecLoss(nn.Module):
    """BPR (-log sigmoid of score differences) or squared error in training; on the validation pass of an
    implicit model (full score rows) the softmax cross-entropy of the held-out item."""

    def __init__(self, explicit: bool, module: MF | None = None, reg: float = 0.0) -> None:
        super().__init__()
        self.explicit, self.reg = explicit, reg
        self._module = [module]  # not a submodule: its parameters are the model's

    def forward(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.explicit:
            m = self._module[0]
            pen = m.penalty if m is not None and m.training and m.penalty is not None and self.reg > 0 else None
            return F.mse_loss(out, y) + (self.reg * pen if pen is not None else 0.0)
        if out.dim() == 1:
            return -F.logsigmoid(out).mean()
        return F.cross_entropy(out, y.long())


def popularity(item_codes: np.ndarray, n_items: int) -> np.ndarray:
    """(n_items,) interaction counts scaled to [0, 1] (the top item 1)."""
    counts = np.bincount(item_codes, minlength=n_items).astype(np.float64)
    return counts / max(counts.max(), 1.0)


def scores_of(A: np.ndarray, B: np.ndarray, users: np.ndarray) -> np.ndarray:
    return A[users].astype(np.float64) @ B.T.astype(np.float64)


def top_k(scores: np.ndarray, seen: Sequence[np.ndarray], k: int) -> np.ndarray:
    """(N, k) item codes, best first, seen items excluded (the numpy reference of the graph)."""
    s = np.array(scores, dtype=np.float64, copy=True)
    for r, items in enumerate(seen):
        s[r, items] = -np.inf
    k = min(k, s.shape[1])
    part = np.argpartition(-s, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(s, part, 1), axis=1, kind="stable")
    return np.take_along_axis(part, order, 1)


def ranking_metrics(top: np.ndarray, truth: np.ndarray, n_items: int, k: int = 10) -> dict[str, float]:
    """recall@k, NDCG@k, MAP@k (one held-out item per row: hit, 1/log2(rank + 1), 1/rank) and catalogue coverage@k
    (the share of the catalogue in anyone's top k). ``truth``: item codes, -1 for an item outside the catalogue."""
    top = np.asarray(top)[:, :k]
    hits = top == np.asarray(truth)[:, None]
    rank = np.where(hits.any(1), hits.argmax(1) + 1, 0)
    found = rank > 0
    n = max(len(top), 1)
    return {f"recall@{k}": float(found.sum() / n),
            f"ndcg@{k}": float((1.0 / np.log2(rank[found] + 1)).sum() / n),
            f"map@{k}": float((1.0 / rank[found]).sum() / n),
            f"coverage@{k}": float(len(np.unique(top[top >= 0])) / max(n_items, 1)),
            "users": int(len(top))}


def fit_mf(X_tr: np.ndarray, y_tr: np.ndarray, X_va: np.ndarray, y_va: np.ndarray, n_users: int, n_items: int,
           explicit: bool, cfg: Any, seen_va: Sequence[np.ndarray], callbacks: Sequence[Any],
           checkpoint_dir: Any, say: Callable[[str], None]) -> tuple[MF, dict[str, Any]]:
    """Train MF through the shared Trainer: early stopping on validation RMSE (explicit) or NDCG@10 of the
    held-out item with each user's seen items excluded (implicit)."""
    from ...training import ProgressBar, Trainer

    mu = float(y_tr.mean()) if explicit else 0.0
    module = MF(n_users, n_items, cfg.factors, explicit, mu)
    if explicit:
        _, bu, bi = bias_baseline(X_tr[:, 0], X_tr[:, 1], y_tr.astype(np.float64), n_users, n_items)
        module.init_biases(bu, bi)
    tcfg = cfg.train_config()
    if explicit:
        def metric(out: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
            return {"rmse": float(torch.sqrt(F.mse_loss(out, y)))}
        monitor = "val_rmse"
    else:
        rows = torch.as_tensor(np.concatenate([np.full(len(s), r) for r, s in enumerate(seen_va)]).astype(np.int64))
        cols = torch.as_tensor(np.concatenate(list(seen_va)).astype(np.int64))

        def metric(out: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
            s = out.detach().clone()
            s[rows, cols] = -math.inf
            top = torch.topk(s, min(10, s.shape[1]), dim=1).indices.cpu().numpy()
            return {"ndcg": ranking_metrics(top, y.long().cpu().numpy(), n_items)["ndcg@10"]}
        monitor = "val_ndcg"
    cbs = list(callbacks) + ([ProgressBar(desc="mf")] if cfg.progress else [])
    ckpt = checkpoint_dir / "mf" if checkpoint_dir is not None else None
    result = Trainer(tcfg, callbacks=cbs, checkpoint_dir=ckpt, resume=cfg.resume, monitor=monitor).fit(
        module, (X_tr, y_tr), (X_va, y_va) if len(X_va) else None, loss_fn=RecLoss(explicit, module, cfg.reg), metric_fn=metric,
        input_dtype=torch.long, target_dtype=torch.float32)
    module.eval()
    epochs = len(result.history)
    d = cfg.factors
    flops = int(epochs * len(X_tr) * (6 * (d + 1)) * (2 if not explicit else 1)
                + epochs * len(X_va) * 2 * d * n_items)
    return module, {"epochs": epochs, "best_epoch": result.best_epoch, "monitor": monitor,
                    "best": result.best_score, "flops": flops}


ALS_ALPHAS = (1.0, 3.0, 10.0)
ALS_REGULARIZATIONS = (0.3, 3.0, 30.0)


def factor_matrices(U: np.ndarray, V: np.ndarray, pop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The graph's (A, B) for plain factors, score = U_u . V_i: A = [U, 0, 0, 0] (+ the unknown-user row
    [0, 0, 1, 0]: popularity), B = [V, 0, p, 1]; the same layout as MF.matrices."""
    n_users, d = U.shape
    A = np.zeros((n_users + 1, d + 3), np.float64)
    A[:n_users, :d] = U
    A[n_users, d + 1] = 1.0
    B = np.concatenate([V, np.zeros((len(V), 1)), pop[:, None], np.ones((len(V), 1))], axis=1)
    return A.astype(np.float32), B.astype(np.float32)


def fit_als(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int, cfg: Any,
            evaluate: Callable[[np.ndarray, np.ndarray], float], say: Callable[[str], None]
            ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Implicit-feedback ALS (Hu, Koren & Volinsky 2008) from the ``implicit`` library: confidence 1 + alpha per
    interaction. ``cfg.als_alpha`` / ``cfg.als_regularization`` when given, else each value of the grid is fitted
    and the one with the best ``evaluate(U, V)`` (validation NDCG@10) kept. Returns (U, V, info)."""
    import scipy.sparse as sp
    from threadpoolctl import threadpool_limits

    try:
        from implicit.cpu.als import AlternatingLeastSquares
    except ImportError as exc:  # a dependency: only a broken install lacks it
        from ...errors import ConfigError

        raise ConfigError(f"model='als' needs the 'implicit' package ({exc}); run `make install` "
                          "(or pip install implicit).") from None
    alphas = (cfg.als_alpha,) if cfg.als_alpha is not None else ALS_ALPHAS
    regs = (cfg.als_regularization,) if cfg.als_regularization is not None else ALS_REGULARIZATIONS
    ones = np.ones(len(users), np.float32)
    best: tuple[float, float, float, np.ndarray, np.ndarray] | None = None
    grid = []
    for alpha in alphas:
        C = sp.csr_matrix((ones, (users, items)), shape=(n_users, n_items))
        for reg in regs:
            with threadpool_limits(1, "blas"):  # implicit's own threads do the work; BLAS threads only fight them
                m = AlternatingLeastSquares(factors=cfg.factors, regularization=float(reg), alpha=float(alpha),
                                            iterations=cfg.als_iterations, random_state=cfg.seed, num_threads=0)
                m.fit(C, show_progress=False)
            U, V = np.asarray(m.user_factors, np.float64), np.asarray(m.item_factors, np.float64)
            score = float(evaluate(U, V))
            grid.append({"alpha": float(alpha), "regularization": float(reg), "validation_ndcg@10": score})
            if best is None or score > best[0]:
                best = (score, float(alpha), float(reg), U, V)
    assert best is not None
    score, alpha, reg, U, V = best
    if len(grid) > 1:
        say(f"  als: alpha {alpha:g}, regularization {reg:g} (best validation NDCG@10 {score:.4f} of {len(grid)})")
    d, nnz = cfg.factors, len(users)
    # per iteration and fit: each user and item row solves a d x d system built from its interactions
    flops = int(len(grid) * cfg.als_iterations * (2 * nnz * d * d * 2 + (n_users + n_items) * (d ** 3 + 2 * d * d)))
    return U, V, {"library": "implicit", "iterations": cfg.als_iterations, "alpha": alpha, "regularization": reg,
                  "grid": grid, "flops": flops}


def bias_baseline(u: np.ndarray, i: np.ndarray, r: np.ndarray, n_users: int, n_items: int,
                  reg: float = 5.0, sweeps: int = 10) -> tuple[float, np.ndarray, np.ndarray]:
    """The rating baseline mu + b_u + b_i (regularized, alternating closed form): (mu, b_u, b_i)."""
    mu = float(r.mean())
    bu, bi = np.zeros(n_users), np.zeros(n_items)
    for _ in range(sweeps):
        bi = np.bincount(i, r - mu - bu[u], n_items) / (np.bincount(i, minlength=n_items) + reg)
        bu = np.bincount(u, r - mu - bi[i], n_users) / (np.bincount(u, minlength=n_users) + reg)
    return mu, bu, bi
