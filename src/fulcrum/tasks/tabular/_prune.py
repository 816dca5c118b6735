"""Structured pruning of the tabular MLP: drop whole hidden units, then fine-tune briefly.

Pruning whole units (rows of one Linear and the matching columns of the next) makes every
hidden layer narrower, so the exported graph does fewer multiply-adds with ordinary dense
kernels. Unstructured magnitude pruning (zeroing single weights) would keep the same
shapes and, without sparse kernels, run no faster in ONNX Runtime; it is not offered.

Unit importance: the L2 norm of the unit's incoming weights and bias times the L2 norm
of its outgoing weights (a unit whose output is never used, or that never activates
strongly, matters little). The lowest-scoring ``sparsity`` fraction of each hidden layer
is removed (at least one unit is kept).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["prune_mlp", "linear_layers", "fine_tune"]


def linear_layers(body: Any) -> list[Any]:
    from torch import nn

    return [m for m in body.net if isinstance(m, nn.Linear)]


def prune_mlp(head: Any, sparsity: float) -> tuple[Any, list[int]]:
    """A new, narrower InferenceHead with ``sparsity`` of each hidden layer's units removed."""
    import torch

    from ...models import MLP, InferenceHead

    if not 0 < sparsity < 1:
        raise ValueError(f"sparsity must be in (0, 1), got {sparsity!r}")
    body = head.body
    layers = linear_layers(body)
    dropout = next((float(m.p) for m in body.net if isinstance(m, torch.nn.Dropout)), 0.0)
    keep_idx: list[torch.Tensor] = []
    with torch.no_grad():
        for i, layer in enumerate(layers[:-1]):  # every hidden layer; the output layer keeps its K units
            nxt = layers[i + 1]
            w_in = torch.cat([layer.weight, layer.bias[:, None]], dim=1)  # (H, D+1)
            score = w_in.norm(dim=1) * nxt.weight.norm(dim=0)  # (H,)
            h = layer.out_features
            keep = max(1, int(round(h * (1 - sparsity))))
            keep_idx.append(torch.sort(torch.topk(score, keep).indices).values)
        widths = [int(k.numel()) for k in keep_idx]
        new_body = MLP(layers[0].in_features, layers[-1].out_features, widths, dropout)
        new_layers = linear_layers(new_body)
        prev: torch.Tensor | None = None
        for i, (old, new) in enumerate(zip(layers, new_layers)):
            w = old.weight
            b = old.bias
            if i < len(keep_idx):
                w, b = w[keep_idx[i]], b[keep_idx[i]]
            if prev is not None:
                w = w[:, prev]
            new.weight.copy_(w)
            new.bias.copy_(b)
            prev = keep_idx[i] if i < len(keep_idx) else None
    out = InferenceHead(new_body, head.kind, float(head.y_mean), float(head.y_std)).eval()
    return out, widths


def fine_tune(head: Any, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None, y_val: np.ndarray | None,
              config: Any, *, epochs: int, lr: float) -> Any:
    """A few epochs of the package's own loss on the training split (fulcrum.training.Trainer),
    best weights by validation loss. ``y``: class indices, or targets in model units for regression."""
    import torch
    from torch import nn

    from ...training import Trainer

    kind = head.kind
    if kind == "classification":
        loss_fn: nn.Module = nn.CrossEntropyLoss()
        yt, yv, tdtype = y, y_val, torch.long
    else:
        m, s = float(head.y_mean), float(head.y_std)
        yt = ((y - m) / s)[:, None]
        yv = ((y_val - m) / s)[:, None] if y_val is not None else None
        loss_fn, tdtype = nn.MSELoss(), torch.float32
    cfg = config.replace(epochs=epochs, lr=lr, lr_schedule="cosine", early_stopping=False, progress=False,
                         resume=False, checkpoint_dir=None, device="cpu")
    val = (X_val, yv) if X_val is not None and len(X_val) else None
    Trainer(cfg, monitor="val_loss" if val is not None else "train_loss").fit(
        head.body, (X, yt), val, loss_fn=loss_fn, target_dtype=tdtype)
    head.body.cpu()
    return head.eval()
