"""Training an image classifier, top to bottom.

1. find the image column (base64 images, or a column of paths read from inside the dataset root) and the
   label; decode every image once under the limits (a bad one is one DataError naming its row);
2. split train / validation / test, stratified (the shared splitter);
3. resize every image with the graph's own pre-processing (ONNX Resize, so training and serving see the same
   pixels), per-channel mean and std from the training split;
4. train the CNN through the shared Trainer (early stopping on validation accuracy, best weights kept), with
   kornia augmentation on training batches only;
5. export one graph from raw pixels (BatchNorm folded), check it against the torch model, score it on the
   test split; a logistic regression on the pixels is the baseline recorded beside it.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from ...errors import DataError, SchemaError
from .._base import Trained
from .. import _media as media
from .._media import OOD_BASIS, Prepared
from .._metrics import classification_metrics
from ._config import ImageConfig
from ._data import FILES, decode_image, image_columns, load_paths, path_columns
from ._graph import MONITORED, monitored_values

__all__ = ["fit_image", "prepare_splits", "decode_column", "Prepared"]

PARITY_ROWS = 200


def _say(log: Callable[[str], None] | None) -> Callable[[str], None]:
    return log or (lambda msg: None)


def _root(cfg: ImageConfig, source: str) -> Path:
    return media.dataset_root(cfg.image_root, source)


def resolve_columns(frame: pd.DataFrame, cfg: ImageConfig, source: str) -> tuple[pd.DataFrame, str, str]:
    """(table with an image column, its name, the target)."""
    return media.resolve_file_column(
        frame, cfg.target, cfg.image_column, FILES, encoded=image_columns, paths=path_columns,
        load=lambda f, c: load_paths(f, c, _root(cfg, source), max_bytes=cfg.max_bytes, max_pixels=cfg.max_pixels),
        missing="No column holds images (base64 PNG/JPEG/WebP) or image paths (names ending in .png/.jpg/.jpeg/.webp) "
                "besides the target; pass image_column=NAME, or train without --task image.")


def decode_column(values: Sequence[Any], mode: str, cfg: Any, column: str) -> list[np.ndarray]:
    out = []
    for i, v in enumerate(values):
        try:
            out.append(decode_image(v, mode, max_bytes=int(cfg.max_bytes), max_pixels=int(cfg.max_pixels),
                                    where=f"{column!r} at row {i} (0-based)"))
        except SchemaError as exc:
            raise DataError(str(exc)) from None
    return out


def prepare_splits(frame: pd.DataFrame, cfg: ImageConfig, source: str = "dataframe",
                   log: Callable[[str], None] | None = None) -> Prepared:
    from ... import data as D

    say = _say(log)
    frame, col, target = resolve_columns(frame, cfg, source)
    D.check_target(frame, target, "classification")  # one class -> DataError
    df, n_dropped = D.check_target(frame[[col, target]], target, "classification")
    if n_dropped:
        say(f"note: dropped {n_dropped} row(s) with a missing target {target!r}")
    df = df.reset_index(drop=True)
    rgb = decode_column(df[col].tolist(), "RGB", cfg, col)
    if cfg.color == "gray" or (cfg.color == "auto" and all(
            np.array_equal(a[:, :, 0], a[:, :, 1]) and np.array_equal(a[:, :, 0], a[:, :, 2]) for a in rgb)):
        mode, images = "L", [np.ascontiguousarray(a[:, :, :1]) for a in rgb]
    else:
        mode, images = "RGB", rgb
    df["__i"] = np.arange(len(df))
    train, val, test = D.train_val_test_split(df, target, task="classification", test_size=cfg.test_size,
                                              val_size=cfg.val_size, seed=cfg.seed)
    codec = D.LabelCodec().fit(df[target])
    parts = {}
    for name, part in (("train", train), ("val", val), ("test", test)):
        parts[name] = [images[i] for i in part["__i"].tolist()]
    strip = [s.drop(columns="__i").reset_index(drop=True) for s in (train, val, test)]
    sides = [max(a.shape[0], a.shape[1]) for a in parts["train"]]
    return Prepared(frame=frame, df=df.drop(columns="__i"), column=col, target=target, splits=tuple(strip), mode=mode,
                    images=parts, labels=list(codec.classes_), codec=codec, median_side=float(np.median(sides)))


def _augment(cfg: ImageConfig, channels: int, size: int) -> Any:
    if not cfg.augment:
        return None
    import kornia.augmentation as K
    import torch

    flip = cfg.flip if cfg.flip is not None else channels == 3
    ops: list[Any] = [K.RandomResizedCrop((size, size), scale=(0.85, 1.0), ratio=(0.9, 1.1), p=0.8)]
    if cfg.rotate_degrees:
        ops.append(K.RandomRotation(degrees=float(cfg.rotate_degrees), p=0.8))
    if flip:
        ops.append(K.RandomHorizontalFlip())
    if channels == 3:
        ops.append(K.ColorJitter(0.2, 0.2, 0.2, 0.02, p=0.8))
    seq = torch.nn.Sequential(*ops)

    def augment(x: Any) -> Any:
        with torch.no_grad():
            return seq(x).clamp_(0.0, 1.0)

    augment.describe = {"crop": "RandomResizedCrop scale 0.85-1", "rotate_degrees": cfg.rotate_degrees,  # type: ignore[attr-defined]
                        "hflip": bool(flip), "color_jitter": channels == 3, "library": "kornia"}
    return augment


def train_cnn(model: Any, X_tr: np.ndarray, y_tr: np.ndarray, X_va: np.ndarray, y_va: np.ndarray, cfg: ImageConfig,
              callbacks: Sequence[Any] = (), checkpoint_dir: Path | None = None, augment: Any = None,
              loss_fn: Any = None, target_dtype: Any = None, desc: str = "train cnn", monitor: str = "val_accuracy",
              **changes: Any) -> Any:
    """The shared Trainer on a classifier's logits (cross-entropy unless ``loss_fn``; hard or soft targets), early
    stopped on ``monitor`` over the validation split (the training loss when there is none); the batch size, when
    the config leaves it open, from the training rows (16-64)."""
    import torch

    from ...training import ProgressBar, Trainer
    from ._cnn import LogitsOnly

    def metric(out: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        t = target.argmax(1) if target.ndim == 2 else target
        return {"accuracy": float((out.argmax(1) == t).float().mean())}

    if cfg.batch_size is None and "batch_size" not in changes:
        changes["batch_size"] = int(min(64, max(16, len(y_tr) // 10)))
    tcfg = cfg.train_config(**changes)
    cbs = list(callbacks) + ([ProgressBar(desc=desc)] if cfg.progress else [])
    return Trainer(tcfg, callbacks=cbs, checkpoint_dir=checkpoint_dir, resume=cfg.resume,
                   monitor=monitor if len(y_va) else "train_loss").fit(
        LogitsOnly(model), (X_tr, y_tr), (X_va, y_va) if len(y_va) else None,
        loss_fn=loss_fn or torch.nn.CrossEntropyLoss(), metric_fn=metric,
        target_dtype=target_dtype or torch.long, augment=augment)


def export_package_graph(model: Any, size: int, channels: int, names: list[str], X_tr: np.ndarray, y_tr: np.ndarray,
                         X_va: np.ndarray, augment: Any = None,
                         features: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[bytes, np.ndarray, dict[str, float]]:
    """(graph bytes, centroids, OOD thresholds: quantiles of the scores of the training and validation images and
    of ``augment``-ed views of the training images; see _media.ood_thresholds). ``features``: the model's features
    of X_tr and X_va when already computed (a frozen backbone's)."""
    from .._media import augmented_views, ood_thresholds
    from ._cnn import SmallCNN, fused_copy, predict_torch
    from ._graph import export_cnn, full_graph

    fused = fused_copy(model) if isinstance(model, SmallCNN) else model.eval()
    F_tr = features[0] if features is not None else predict_torch(fused, X_tr)[1]
    centroids = class_centroids(F_tr, y_tr, len(names))
    graph = full_graph(export_cnn(fused, size, channels), size, channels, names, centroids)
    F_va = features[1] if features is not None else (predict_torch(fused, X_va)[1] if len(X_va) else None)
    va = ood_scores(F_va, centroids) if len(X_va) else np.zeros(0, np.float32)
    views = [ood_scores(predict_torch(fused, X)[1], centroids) for X in augmented_views(augment, X_tr)]
    thresholds = ood_thresholds(ood_scores(F_tr, centroids), va, *views)
    return graph.SerializeToString(), centroids, thresholds


def class_centroids(F: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    Fn = F / np.maximum(np.linalg.norm(F, axis=1, keepdims=True), 1e-12)
    cent = np.stack([Fn[y == c].mean(0) if (y == c).any() else np.zeros(Fn.shape[1]) for c in range(k)])
    return (cent / np.maximum(np.linalg.norm(cent, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def ood_scores(F: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    Fn = F / np.maximum(np.linalg.norm(F, axis=1, keepdims=True), 1e-12)
    return (1.0 - (Fn @ centroids.T).max(axis=1)).astype(np.float32)


def _baseline(X_tr: np.ndarray, y_tr: np.ndarray, X_te: np.ndarray, y_te: np.ndarray, seed: int) -> dict[str, Any]:
    """Logistic regression on the (at most 16 x 16) resized pixels: what a simple model gets."""
    import torch
    from sklearn.linear_model import LogisticRegression

    if not len(X_te) or len(set(y_tr.tolist())) < 2:
        return {}
    side = min(16, X_tr.shape[-1])

    def flat(X: np.ndarray) -> np.ndarray:
        return torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(X), side).flatten(1).numpy()

    t0 = time.perf_counter()
    clf = LogisticRegression(max_iter=1000, C=1.0, random_state=seed).fit(flat(X_tr), y_tr)
    acc = float((clf.predict(flat(X_te)) == y_te).mean())
    return {"model": f"logistic regression on {side}x{side} pixels", "test_accuracy": acc,
            "fit_s": round(time.perf_counter() - t0, 2)}


def fit_image(frame: pd.DataFrame, config: Any, *, source: str = "dataframe", callbacks: Sequence[Any] = (),
              checkpoint_dir: str | Path | None = None, log: Callable[[str], None] | None = None) -> Trained:
    import torch
    from safetensors.torch import save

    from ... import data as D
    from ..tabular import library_versions
    from ._cnn import build_cnn, conv_flops, predict_torch
    from ._graph import preprocess, run_graph, session

    say = _say(log)
    cfg = ImageConfig.coerce(config)
    ckpt_root = Path(checkpoint_dir) if checkpoint_dir is not None else (Path(cfg.checkpoint_dir) if cfg.checkpoint_dir else None)
    prep = prepare_splits(frame, cfg, source, say)
    train, val, test = prep.splits
    k = len(prep.labels)
    names = [str(c) for c in prep.labels]
    channels = 1 if prep.mode == "L" else 3
    pretrained = cfg.model == "efficientnet_lite0"
    size = cfg.image_size or (224 if pretrained else int(min(64, max(16, round(prep.median_side)))))
    stages = cfg.stages or (3 if size >= 16 else 2)
    y_tr, y_va, y_te = (np.asarray(prep.codec.encode(s[prep.target]), dtype=np.int64) for s in (train, val, test))
    say(f"image column {prep.column!r}, {k} classes, {'grey' if channels == 1 else 'colour'} images resized to "
        f"{size}x{size}; rows: train {len(y_tr)}, validation {len(y_va)}, test {len(y_te)}")

    t0 = time.perf_counter()
    X_tr, X_va, X_te = (preprocess(prep.images[s], size, channels) for s in ("train", "val", "test"))
    mean = X_tr.mean(axis=(0, 2, 3)).astype(float).tolist()
    std = np.maximum(X_tr.std(axis=(0, 2, 3)), 1e-3).astype(float).tolist()
    pre_s = time.perf_counter() - t0

    torch.manual_seed(cfg.seed)
    t0 = time.perf_counter()
    transfer: dict[str, Any] = {}
    if pretrained:
        from ._pretrained import train_transfer

        augment = None
        model, result, transfer = train_transfer(channels, k, X_tr, y_tr, X_va, y_va, cfg, callbacks,
                                                 ckpt_root / "image-head" if ckpt_root is not None else None, say)
        spec = model.spec()
    else:
        model = build_cnn(channels, k, cfg.width, cfg.depth, stages, mean, std)
        spec = model.spec()
        augment = _augment(cfg, channels, size)
        say(f"training a CNN (width {cfg.width}, depth {cfg.depth}, {stages} stages, "
            f"{sum(p.numel() for p in model.parameters())} parameters) for up to {cfg.epochs} epochs"
            + (f", augmentation: {augment.describe}" if augment is not None else ""))
        result = train_cnn(model, X_tr, y_tr, X_va, y_va, cfg, callbacks,
                           ckpt_root / "image-cnn" if ckpt_root is not None else None, augment)
    train_s = time.perf_counter() - t0
    model.eval()
    epochs_run = len(result.history)
    if pretrained:  # the head on the backbone's features (the same numbers as the whole model, computed once)
        p_va = torch.softmax(model.head(torch.from_numpy(transfer["features"]["val"])), 1).detach().numpy() \
            if len(y_va) else np.zeros((0, k), np.float32)
    else:
        p_va, _ = predict_torch(model, X_va)
    val_acc = float((p_va.argmax(1) == y_va).mean()) if len(y_va) else math.nan
    say(f"    {'efficientnet_lite0 + head' if pretrained else 'cnn'}: validation accuracy = {val_acc:.4f} ({epochs_run} epochs, best {result.best_epoch + 1}"
        f"{', stopped early' if result.stopped_early else ''})")

    t0 = time.perf_counter()
    model_bytes, centroids, thresholds = export_package_graph(
        model, size, channels, names, X_tr, y_tr, X_va, augment,
        (transfer["features"]["train"], transfer["features"]["val"]) if pretrained else None)
    export_s = time.perf_counter() - t0

    # ---- the graph on the test split, from the decoded pixels (pre-processing included); parity vs torch
    sess = session(model_bytes)
    out = run_graph(sess, prep.images["test"], channels) if len(y_te) else {
        "probabilities": np.zeros((0, k), np.float32), "ood_score": np.zeros(0, np.float32),
        "label": np.zeros(0, object)}
    test_metrics = classification_metrics(y_te, out["probabilities"], k)
    ref, _ = predict_torch(model, X_te[:PARITY_ROWS])
    parity = float(np.abs(out["probabilities"][:PARITY_ROWS] - ref).max()) if len(ref) else 0.0
    if parity > 1e-3:
        raise DataError(f"The exported image graph disagrees with the torch model on the test split (max |dp| "
                        f"{parity:.2e}); this is a bug, please report it.")
    baseline = _baseline(X_tr, y_tr, X_te, y_te, cfg.seed)
    say(f"test accuracy = {test_metrics['accuracy']:.4f} (the ONNX graph on {len(y_te)} held-out images; max |dp| vs "
        f"the torch model {parity:.1e})" + (f"; baseline {baseline['model']}: {baseline['test_accuracy']:.4f}"
                                            if baseline else ""))

    if pretrained:
        from ._pretrained import flops as lite_flops

        per_image = lite_flops(size, k)
        flops = per_image * (len(y_tr) + len(y_va)) + 3 * 2 * 1280 * k * len(y_tr) * max(1, epochs_run)
    else:
        per_image = conv_flops(spec, size)
        flops = 3 * per_image * len(y_tr) * max(1, epochs_run)
    sizes = np.asarray([[a.shape[0], a.shape[1]] for a in prep.images["train"]], dtype=np.float64)
    profile = {"n_rows": int(len(y_tr)), "image_column": prep.column, "columns": monitored_profile(X_tr, sizes),
               "images": {"height": media.quantiles(sizes[:, 0]), "width": media.quantiles(sizes[:, 1]), "mode": prep.mode},
               "ood": {"score": "1 - max cosine(CNN features, class centroid)", "thresholds": thresholds,
                       "thresholds_of": OOD_BASIS},
               "target": {"kind": "categorical", "top": {names[c]: float(np.mean(y_tr == c)) for c in range(k)}}}
    limits = {"max_bytes": int(cfg.max_bytes), "max_pixels": int(cfg.max_pixels), "formats": ["PNG", "JPEG", "WEBP"]}
    weights = save({**{f"model.{n}": t.detach().contiguous() for n, t in model.state_dict().items()},
                    "centroids": torch.from_numpy(centroids)})
    manifest: dict[str, Any] = {
        "libraries": library_versions("pillow", "kornia"),
        "task": {"workload": "image", "kind": "classification", "target": prep.target, "labels": prep.labels,
                 "image_column": prep.column},
        "inputs": [{"name": "image", "kind": "image", "dtype": "bytes", "column": prep.column, "limits": limits}],
        "outputs": [{"name": "label", "kind": "label"},
                    {"name": "probabilities", "kind": "probabilities", "labels": prep.labels},
                    {"name": "ood_score", "kind": "ood_score", "thresholds": thresholds,
                     "description": profile["ood"]["score"]},
                    *({"name": name, "kind": "monitored", "description": why} for name, why in MONITORED.items())],
        "model": {"family": "efficientnet_lite0" if pretrained else "cnn", "spec": spec,
                  **({"pretrained": _pretrained_note(model, transfer)} if pretrained else {}), "image_size": size, "mode": prep.mode, "channels": channels,
                  "normalize": ({"mean": [spec["normalize"]["mean"]] * 3, "std": [spec["normalize"]["std"]] * 3,
                                 "scale": "pixels / 255 first (the Lite models' (x - 127) / 128)"} if pretrained
                                else {"mean": mean, "std": std, "scale": "pixels / 255 first"}),
                  "resize": "ONNX Resize linear, antialias, half_pixel (opset 18), to image_size x image_size",
                  "augmentation": getattr(augment, "describe", None), "epochs": epochs_run,
                  "best_epoch": result.best_epoch + 1, "stopped_early": result.stopped_early,
                  "parameters": int(sum(p.numel() for p in model.parameters())),
                  "flops_per_image": per_image},
        "onnx": {"opset": 18, "input": "image uint8 (N, H, W, C) + image_size int64 (N, 2)",
                 "parity_max_abs_diff": parity, "parity_rows": int(len(ref)), "export_s": round(export_s, 2),
                 "quantize_scope": "pixels"},
        "config": cfg.to_dict(),
        "data": {"source": source, "fingerprint": D.fingerprint(frame.reset_index(drop=True)),
                 "rows": {"train": int(len(y_tr)), "validation": int(len(y_va)), "test": int(len(y_te))},
                 "dropped_rows": int(len(prep.frame) - len(prep.df))},
        "metrics": {"primary": {"name": "accuracy", "value": test_metrics.get("accuracy"), "split": "test"},
                    "validation": classification_metrics(y_va, p_va, k) if len(y_va) else None,
                    "test": test_metrics, "baseline": baseline or None,
                    "timing_s": {"preprocess": round(pre_s, 2), "train": round(train_s, 2)}},
        "lineage": {"parent": None, "data_source": source},
    }
    files = {"model.onnx": model_bytes, "profile.json": json.dumps(profile, sort_keys=True).encode(),
             "history.json": json.dumps(result.history).encode(), "weights.safetensors": weights}
    test_frame = test[[prep.column, prep.target]].rename(columns={prep.column: "image"}) if prep.column != "image" \
        else test[["image", prep.target]]
    return Trained(manifest, files, test_frame=test_frame.reset_index(drop=True), training_flops=int(flops),
                   flops_methods={"efficientnet_lite0": "one backbone pass per training and validation image (its "
                                                        "convolutions counted as 2 x k x k x C_in x C_out x H x W), "
                                                        "then 3 x 2 x 1280 x K per head step"} if pretrained else
                   {"cnn": "2 x 9 x C_in x C_out x H x W per convolution, x3 for a training step, x images x epochs"},
                   extra={"model": model, "pixels": {"train": X_tr, "val": X_va, "test": X_te},
                          "y": {"train": y_tr, "val": y_va, "test": y_te}, "test_outputs": out, "prepared": prep})


def monitored_profile(pixels: np.ndarray, sizes: np.ndarray) -> dict[str, Any]:
    """The training images' statistics of the graph's monitored outputs, as numeric columns of ``profile.json``
    (the input monitor's drift of each). A quantity every training image shares (e.g. one size) gets three bins,
    below / at / above it, so a change either way still shows as drift."""
    from ...data._profile import _numeric_stats

    out = {}
    for name, x in monitored_values(pixels, sizes).items():
        stats = _numeric_stats(np.asarray(x, dtype=np.float64))
        edges = (stats.get("histogram") or {}).get("edges") or []
        if len(edges) == 2 and edges[0] == edges[1]:
            c = float(edges[0])
            d = max(0.5, abs(c) * 1e-3)
            stats["histogram"] = {"edges": [c - 2 * d, c - d, c + d, c + 2 * d], "fractions": [0.0, 1.0, 0.0]}
        out[name] = {"kind": "numeric", "count": int(len(x)), "missing": 0.0, **stats}
    return out


def _pretrained_note(model: Any, transfer: dict[str, Any]) -> dict[str, Any]:
    import importlib.metadata as md

    from ._pretrained import WEIGHTS_PACKAGE

    try:
        version = md.version(WEIGHTS_PACKAGE)
    except md.PackageNotFoundError:
        version = None
    return {"weights": "ImageNet-1k", "package": WEIGHTS_PACKAGE, "package_version": version, "frozen": "backbone",
            "trained": "a linear head (1280 -> classes) on the frozen backbone's pooled features, no augmentation",
            "trainable_parameters": int(sum(p.numel() for p in model.head.parameters())),
            "embed_s": transfer.get("embed_s")}
