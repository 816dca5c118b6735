"""The small CNN family: ``stages`` stages of ``depth`` x (Conv 3x3 -> BatchNorm -> ReLU), ``width`` channels in
the first stage and twice as many in each next one, 2x2 max-pooling between stages, global average pooling
and a linear head. The module takes pixels in [0, 1] and normalizes them itself (per-channel mean and std of
the training set as buffers), so the exported graph holds the normalization.

``forward`` returns (logits, features): features (the pooled last stage) feed the OOD score.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["SmallCNN", "build_cnn", "fused_copy", "prune_channels", "conv_flops"]


class SmallCNN(nn.Module):
    def __init__(self, channels: int, classes: int, widths: Sequence[Sequence[int]], mean: Sequence[float],
                 std: Sequence[float], dropout: float = 0.1) -> None:
        super().__init__()
        self.widths = [list(map(int, w)) for w in widths]  # per stage, each conv's output channels
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))
        layers: list[nn.Module] = []
        cin = channels
        for s, stage in enumerate(self.widths):
            if s > 0:
                layers.append(nn.MaxPool2d(2))
            for cout in stage:
                layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
                cin = cout
        self.body = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(cin, classes)
        self.channels, self.classes = channels, classes

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.body((x - self.mean) / self.std)
        f = torch.flatten(self.pool(z), 1)
        return self.head(self.drop(f)), f

    def spec(self) -> dict[str, Any]:
        return {"channels": self.channels, "classes": self.classes, "widths": self.widths,
                "mean": self.mean.flatten().tolist(), "std": self.std.flatten().tolist()}


class LogitsOnly(nn.Module):
    """For the Trainer (its loss takes one output)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)[0]


def build_cnn(channels: int, classes: int, width: int, depth: int, stages: int, mean: Sequence[float],
              std: Sequence[float]) -> SmallCNN:
    widths = [[width * 2 ** s] * depth for s in range(stages)]
    return SmallCNN(channels, classes, widths, mean, std)


def from_spec(spec: dict[str, Any]) -> SmallCNN:
    return SmallCNN(int(spec["channels"]), int(spec["classes"]), spec["widths"], spec["mean"], spec["std"])


def fused_copy(model: SmallCNN) -> nn.Module:
    """An eval copy with each BatchNorm folded into its convolution (what the graph runs and int8 quantizes)."""
    import copy

    from torch.nn.utils.fusion import fuse_conv_bn_eval

    m = copy.deepcopy(model).eval()
    layers = list(m.body)
    out: list[nn.Module] = []
    i = 0
    while i < len(layers):
        if isinstance(layers[i], nn.Conv2d) and i + 1 < len(layers) and isinstance(layers[i + 1], nn.BatchNorm2d):
            out.append(fuse_conv_bn_eval(layers[i], layers[i + 1]))
            i += 2
        else:
            out.append(layers[i])
            i += 1
    m.body = nn.Sequential(*out)
    return m


def _convs(model: SmallCNN) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    layers = list(model.body)
    return [(layers[i], layers[i + 1]) for i in range(len(layers) - 1)
            if isinstance(layers[i], nn.Conv2d) and isinstance(layers[i + 1], nn.BatchNorm2d)]


def prune_channels(model: SmallCNN, keep: float) -> SmallCNN:
    """Structured pruning: each convolution keeps the ``keep`` share of its output channels with the largest
    L1 norm (BN scale-weighted); the next convolution (or the head) loses the matching input channels."""
    pairs = _convs(model)
    new_widths = [[max(1, int(round(c * keep))) for c in stage] for stage in model.widths]
    flat = [c for stage in new_widths for c in stage]
    pruned = SmallCNN(model.channels, model.classes, new_widths, model.mean.flatten().tolist(),
                      model.std.flatten().tolist())
    new_pairs = _convs(pruned)
    prev_keep = torch.arange(model.channels)
    with torch.no_grad():
        for (conv, bn), (nconv, nbn), n in zip(pairs, new_pairs, flat):
            score = conv.weight.abs().sum(dim=(1, 2, 3)) * (bn.weight.abs() / torch.sqrt(bn.running_var + bn.eps))
            idx = torch.sort(torch.argsort(score, descending=True)[:n]).values
            nconv.weight.copy_(conv.weight[idx][:, prev_keep])
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(nbn, name).copy_(getattr(bn, name)[idx])
            prev_keep = idx
        pruned.head.weight.copy_(model.head.weight[:, prev_keep])
        pruned.head.bias.copy_(model.head.bias)
    return pruned


def conv_flops(spec: dict[str, Any], size: int) -> int:
    """Multiply-adds x 2 of one forward pass at ``size`` x ``size`` (convolutions and the head)."""
    total, cin, s = 0, int(spec["channels"]), int(size)
    for i, stage in enumerate(spec["widths"]):
        if i > 0:
            s = max(1, s // 2)
        for cout in stage:
            total += 2 * 9 * cin * int(cout) * s * s
            cin = int(cout)
    return int(total + 2 * cin * int(spec["classes"]))


def predict_torch(model: nn.Module, pixels: np.ndarray, batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, features) of ``pixels`` (N, C, S, S) from the torch model."""
    model.eval()
    probs, feats = [], []
    with torch.inference_mode():
        for s in range(0, len(pixels), batch):
            logits, f = model(torch.from_numpy(pixels[s: s + batch]))
            probs.append(torch.softmax(logits, 1).numpy())
            feats.append(f.numpy())
    if not probs:
        return np.zeros((0, getattr(model, "classes", 0)), np.float32), np.zeros((0, 0), np.float32)
    return np.concatenate(probs), np.concatenate(feats)
