"""Optimized variants of an image package.

=============  =======  ===========================================================================
kind           builder  what it is
=============  =======  ===========================================================================
onnx-fp32      graph    ONNX Runtime's offline graph optimization of model.onnx
int8-static    graph    static int8 (QDQ) of the CNN's Conv / Gemm, weights per channel, activations
                        calibrated on training images (``Task.calibration_feeds``); the pre-processing
                        in front of ``pixels`` (crop, resize, / 255) stays float
pruned         task     structured channel pruning: each convolution keeps its ``keep`` share of output
                        channels with the largest BN-scaled L1 norm, then a short fine-tune (shared Trainer)
distilled      task     a CNN of half the width trained on the package's probabilities (soft labels); for a
                        pretrained EfficientNet-Lite0 package, a small CNN (``width``, at the training
                        images' median side) trained on the packaged graph's probabilities
=============  =======  ===========================================================================
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from ...errors import ConfigError
from .._base import VariantKind

__all__ = ["variant_kinds", "build_variant", "recreate_prepared", "recreate_splits", "INT8_PARAMS"]

INT8_PARAMS: dict[str, Any] = {"scope": "pixels", "op_types_to_quantize": ["Conv", "Gemm", "MatMul"],
                               "per_channel": True, "weight_type": "QInt8"}
PRUNE_DEFAULTS: dict[str, Any] = {"keep": 0.5, "epochs": 8, "lr": 1e-3}
DISTILL_DEFAULTS: dict[str, Any] = {"width_factor": 0.5, "epochs": 30, "lr": 3e-3}
#: distilling a pretrained model: a CNN trained from scratch on the teacher's probabilities
PRETRAINED_DISTILL: dict[str, Any] = {"width": 16, "epochs": 40, "lr": 3e-3}


def variant_kinds(manifest: Mapping[str, Any]) -> tuple[list[VariantKind], dict[str, str]]:
    why = {"int8-dynamic": "dynamic int8 quantizes MatMuls only; a CNN's work is in its convolutions, which static "
                           "int8 (calibrated on training images) covers",
           "trees": "for tree ensembles only", "shallow": "for tree ensembles only"}
    if (manifest.get("model") or {}).get("family") == "efficientnet_lite0":
        why["pruned"] = ("for the CNN trained from scratch; this model is a frozen pretrained EfficientNet-Lite0 with "
                         "a trained head (its backbone's channels are ImageNet's)")
        return [VariantKind("int8-static", "graph", dict(INT8_PARAMS)), VariantKind("onnx-fp32"),
                VariantKind("distilled", "task", dict(PRETRAINED_DISTILL))], why
    return [VariantKind("int8-static", "graph", dict(INT8_PARAMS)), VariantKind("onnx-fp32"),
            VariantKind("pruned", "task", dict(PRUNE_DEFAULTS)),
            VariantKind("distilled", "task", dict(DISTILL_DEFAULTS))], why


def recreate_prepared(package: Any, data: Any = None) -> Any:
    from .._source import training_table
    from ._config import ImageConfig
    from ._fit import prepare_splits
    from ._task import ImageTask

    m = package.manifest
    frame, source = training_table(package, data, ImageTask().read, what="images")
    return prepare_splits(frame, ImageConfig.coerce({**m["config"], "progress": False}), str(source))


def recreate_splits(package: Any, data: Any = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return recreate_prepared(package, data).splits


def load_model(package: Any) -> Any:
    from safetensors.torch import load

    from ._cnn import from_spec

    m = package.manifest
    weights = load(package.read_bytes("weights.safetensors"))
    model = from_spec(m["model"]["spec"])
    model.load_state_dict({k[len("model."):]: v for k, v in weights.items() if k.startswith("model.")})
    return model.eval()


def build_variant(kind: str, params: Mapping[str, Any], package: Any, context: Any) -> tuple[bytes, dict[str, bytes], dict[str, Any]]:
    import torch

    from ._cnn import build_cnn, predict_torch, prune_channels
    from ._config import ImageConfig
    from ._fit import _augment, export_package_graph, train_cnn
    from ._graph import preprocess

    if kind not in ("pruned", "distilled"):
        raise ConfigError(f"The image task builds the variants pruned and distilled itself, not {kind!r}.")
    m = package.manifest
    data = getattr(context, "data", None)
    prep = recreate_prepared(package, data)
    train, val, _ = prep.splits
    size, channels = int(m["model"]["image_size"]), int(m["model"]["channels"])
    X_tr, X_va = preprocess(prep.images["train"], size, channels), preprocess(prep.images["val"], size, channels)
    index = {str(lab): i for i, lab in enumerate(m["task"]["labels"])}
    y_tr = np.asarray([index[str(v)] for v in train[prep.target]], np.int64)
    y_va = np.asarray([index[str(v)] for v in val[prep.target]], np.int64)
    cfg = ImageConfig.coerce({**m["config"], "progress": False, "resume": False})
    names = [str(c) for c in m["task"]["labels"]]
    torch.manual_seed(cfg.seed)
    if kind == "distilled" and m["model"].get("family") == "efficientnet_lite0":
        return _distil_pretrained(package, prep, cfg, names, {**PRETRAINED_DISTILL, **params}, channels, y_tr)
    teacher = load_model(package)
    if kind == "pruned":
        p = {**PRUNE_DEFAULTS, **params}
        keep = float(p["keep"])
        if not 0 < keep < 1:
            raise ConfigError(f"pruned keeps a share of channels between 0 and 1 (exclusive), got {keep}.")
        model = prune_channels(teacher, keep)
        result = train_cnn(model, X_tr, y_tr, X_va, y_va, cfg, augment=_augment(cfg, channels, size),
                           epochs=int(p["epochs"]), lr=float(p["lr"]), patience=max(2, int(p["epochs"]) // 2),
                           desc="fine-tune pruned")
        notes = {"keep": keep, "widths": model.widths, "fine_tune_epochs": len(result.history)}
    else:
        p = {**DISTILL_DEFAULTS, **params}
        spec = m["model"]["spec"]
        width = max(4, int(round(spec["widths"][0][0] * float(p["width_factor"]))))
        model = build_cnn(channels, len(names), width, 1, len(spec["widths"]), spec["mean"], spec["std"])
        soft_tr, _ = predict_torch(teacher, X_tr)
        soft_va, _ = predict_torch(teacher, X_va)
        result = train_cnn(model, X_tr, soft_tr, X_va, soft_va, cfg, loss_fn=_soft_ce(), target_dtype=torch.float32,
                           epochs=int(p["epochs"]), lr=float(p["lr"]), desc="distil")
        notes = {"widths": model.widths, "teacher": f"{package.ref} (its probabilities)", "epochs": len(result.history)}
    model.eval()
    graph, _, thresholds = export_package_graph(model, size, channels, names, X_tr, y_tr, X_va,
                                                _augment(cfg, channels, size))
    notes["parameters"] = int(sum(t.numel() for t in model.parameters()))
    notes["ood_thresholds"] = thresholds
    return graph, {}, {"params": {**{k: v for k, v in p.items()}, **notes}}


def _soft_ce() -> Any:
    """Cross-entropy against soft labels (a teacher's probabilities), as a loss module for the Trainer."""
    import torch

    class SoftCE(torch.nn.Module):
        def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return -(target * torch.log_softmax(logits, dim=-1)).sum(-1).mean()

    return SoftCE()


def _distil_pretrained(package: Any, prep: Any, cfg: Any, names: list[str], p: Mapping[str, Any],
                       channels: int, y_tr: np.ndarray) -> tuple[bytes, dict[str, bytes], dict[str, Any]]:
    """A small CNN trained from scratch on a pretrained package's probabilities: the teacher is the packaged graph
    itself (ONNX Runtime on the raw training and validation images, so the student learns what is served); the
    student sees the images at the training images' median side (16 to 64, the from-scratch CNN's rule), not 224,
    with the from-scratch CNN's augmentation (the teacher's probabilities of an image are its views' targets)."""
    import torch

    from ._cnn import build_cnn
    from ._fit import _augment, export_package_graph, train_cnn
    from ._graph import preprocess, run_graph, session

    width, epochs, lr = int(p["width"]), int(p["epochs"]), float(p["lr"])
    if width < 1 or epochs < 1 or not lr > 0:
        raise ConfigError(f"distilled needs width >= 1, epochs >= 1 and lr > 0; got {width}, {epochs}, {lr}.")
    size = int(min(64, max(16, round(prep.median_side))))
    sess = session(package.read_bytes("model.onnx"))
    soft_tr = run_graph(sess, prep.images["train"], channels)["probabilities"].astype(np.float32)
    soft_va = run_graph(sess, prep.images["val"], channels)["probabilities"].astype(np.float32)
    X_tr, X_va = preprocess(prep.images["train"], size, channels), preprocess(prep.images["val"], size, channels)
    mean = X_tr.mean(axis=(0, 2, 3)).astype(float).tolist()
    std = np.maximum(X_tr.std(axis=(0, 2, 3)), 1e-3).astype(float).tolist()
    model = build_cnn(channels, len(names), width, 1, 3, mean, std)
    augment = _augment(cfg, channels, size)  # crops and small rotations keep the teacher's answer
    result = train_cnn(model, X_tr, soft_tr, X_va, soft_va, cfg, augment=augment, loss_fn=_soft_ce(),
                       target_dtype=torch.float32, epochs=epochs, lr=lr, desc="distil")
    model.eval()
    graph, _, thresholds = export_package_graph(model, size, channels, names, X_tr, y_tr, X_va, augment)
    notes = {"widths": model.widths, "image_size": size, "epochs": len(result.history),
             "teacher": f"{package.ref} (its graph's probabilities on the training and validation images)",
             "parameters": int(sum(t.numel() for t in model.parameters())), "ood_thresholds": thresholds}
    return graph, {}, {"params": {**dict(p), **notes}}
