"""Optimized variants of a text package.

=============  =======  ===========================================================================
kind           builder  what it is
=============  =======  ===========================================================================
onnx-fp32      graph    ONNX Runtime's offline graph optimization of model.onnx
int8-dynamic   graph    dynamic int8 of the fused encoder: each Attention becomes QAttention and each
                        other MatMul a MatMulInteger; int8 weights per channel with reduce_range (7-bit
                        weights, so the u8 x s8 products cannot saturate on AVX2 CPUs without VNNI).
                        Signed weights are what the VNNI / AMX integer kernels take: uint8 weights ran
                        ~2x slower here (1.3x fp32 against 2.4x). The n-gram branch stays float.
                        Activations are quantized per batch, so a text's probabilities can change a
                        little with its batch-mates.
distilled      task     a 3-layer student (the encoder's first 3 pretrained blocks) trained through
                        the shared Trainer on the package's own probabilities (soft labels)
ngram          task     the n-gram model alone, retrained on train + validation: the fast fallback
=============  =======  ===========================================================================

A task-built variant re-creates the training splits from the package's data source (checked against
the stored fingerprint), or takes them from ``context`` (``context.train`` / ``context.val`` tables, or
``context.data``: the training table itself).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ...errors import ConfigError
from .._base import VariantKind

__all__ = ["variant_kinds", "build_variant", "quantize_int8", "INT8_PARAMS", "training_frames", "recreate_splits"]

INT8_PARAMS: dict[str, Any] = {"weight_type": "QInt8", "per_channel": True, "reduce_range": True,
                               "op_types_to_quantize": ["MatMul", "Attention"], "exclude_prefix": "ng/"}
DISTILL_DEFAULTS: dict[str, Any] = {"layers": 3, "max_texts": 4000, "epochs": 2, "batch_size": 16, "lr": 5e-5}


def variant_kinds(manifest: Mapping[str, Any]) -> tuple[list[VariantKind], dict[str, str]]:
    family = manifest["model"]["family"]
    why = {"int8-static": "static int8 needs calibration batches of token ids inside a graph that tokenizes "
                          "strings itself; dynamic int8 applies without calibration",
           "pruned": "structured pruning is for the tabular MLP; the distilled student is the smaller encoder here",
           "trees": "for tree ensembles only", "shallow": "for tree ensembles only"}
    kinds = [VariantKind("onnx-fp32")]
    if family == "ngram":
        why["int8-dynamic"] = ("the n-gram graph's time goes to string ops and one MatMul over 0/1 features; "
                               "int8 would shrink the file but not the work")
        why["distilled"] = "the n-gram model is already the small, fast model"
        why["ngram"] = "the package is the n-gram model"
        return kinds, why
    kinds += [VariantKind("int8-dynamic", "graph", dict(INT8_PARAMS)),
              VariantKind("distilled", "task", dict(DISTILL_DEFAULTS)),
              VariantKind("ngram", "task", {})]
    return kinds, why


def quantize_int8(model_bytes: bytes, params: Mapping[str, Any] | None = None) -> bytes:
    """Dynamic int8 of a text graph (``INT8_PARAMS`` by default); nodes named ``exclude_prefix``... stay float."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    import logging

    p = {**INT8_PARAMS, **(params or {})}
    model = onnx.load_from_string(model_bytes)
    exclude = [n.name for n in model.graph.node if p.get("exclude_prefix") and n.name.startswith(p["exclude_prefix"])]
    with tempfile.TemporaryDirectory(prefix="fulcrum-int8-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(model_bytes)
        logging.disable(logging.WARNING)  # "consider pre-processing" advice on the root logger, every call
        try:
            quantize_dynamic(str(src), str(dst), weight_type=getattr(QuantType, p["weight_type"]),
                             per_channel=bool(p["per_channel"]), reduce_range=bool(p["reduce_range"]),
                             op_types_to_quantize=list(p["op_types_to_quantize"]), nodes_to_exclude=exclude,
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        finally:
            logging.disable(logging.NOTSET)
        return dst.read_bytes()


def _get(context: Any, name: str) -> Any:
    if context is None:
        return None
    if isinstance(context, Mapping):
        return context.get(name)
    return getattr(context, name, None)


def recreate_splits(package: Any, data: Any = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The run's (train, validation, test) tables, re-created from ``data`` (a table or a source) or the
    package's recorded source: the same clean-up (empty texts dropped, NUL removed) and the same seeded,
    stratified split, after checking the stored fingerprint of the table."""
    from ... import data as D
    from .._source import training_table
    from ._config import TextConfig
    from ._fit import prepare_splits

    m = package.manifest
    frame, _ = training_table(package, data, D.read_table, flag="FILE")
    _, _, splits, _, _ = prepare_splits(frame, TextConfig.coerce(m["config"]))
    return splits


def training_frames(package: Any, context: Any = None) -> tuple[pd.DataFrame, pd.DataFrame, str, str]:
    """(train, validation, text column, target) of the package's run: from ``context.train`` /
    ``context.val`` when given, else re-created from ``context.data`` or the recorded source."""
    m = package.manifest
    text_col, target = m["task"]["text_column"], m["task"]["target"]
    train, val = _get(context, "train"), _get(context, "val")
    if isinstance(train, pd.DataFrame) and isinstance(val, pd.DataFrame):
        return train, val, text_col, target
    data = context if isinstance(context, (pd.DataFrame, str)) else _get(context, "data")
    train, val, _ = recreate_splits(package, data)
    return train, val, text_col, target


def build_variant(kind: str, params: Mapping[str, Any], package: Any, context: Any) -> tuple[bytes, dict[str, bytes], dict[str, Any]]:
    m = package.manifest
    if kind == "int8-dynamic":
        return quantize_int8(package.read_bytes("model.onnx"), params), {}, {"quantization": {**INT8_PARAMS, **params}}
    if m["model"]["family"] == "ngram":
        raise ConfigError(f"{package.ref} is an n-gram model: variant {kind!r} does not apply to it.")
    train, val, text_col, target = training_frames(package, context)
    labels = list(m["task"]["labels"])
    index = {str(lab): i for i, lab in enumerate(labels)}
    y_tr = np.asarray([index[str(v)] for v in train[target]], dtype=np.int64)
    y_va = np.asarray([index[str(v)] for v in val[target]], dtype=np.int64)
    tr, va = list(train[text_col]), list(val[text_col])
    if kind == "ngram":
        return _ngram_variant(m, tr + va, np.concatenate([y_tr, y_va]), va, y_va, labels)
    if kind == "distilled":
        return _distilled(package, {**DISTILL_DEFAULTS, **params}, tr, va, labels)
    raise ConfigError(f"The text task builds no variant {kind!r}; it builds distilled and ngram.")


def _ngram_variant(m: Mapping[str, Any], texts: list[str], y: np.ndarray, va: list[str], y_va: np.ndarray,
                   labels: list[Any]) -> tuple[bytes, dict[str, bytes], dict[str, Any]]:
    from ._ngram import NgramModel

    C = float(((m["model"].get("describe") or {}).get("ngram") or {}).get("C") or 8.0)
    model = NgramModel(C=C, seed=int(m["config"].get("seed", 0))).fit(texts, y, len(labels))
    notes = {"family": "ngram", "ngram": model.describe(),
             "ood_score": "share of word tokens never seen in training (not the parent's embedding distance)"}
    return model.to_onnx([str(c) for c in labels]).SerializeToString(), {}, notes


class _SoftTargetLoss:
    """Cross-entropy against the teacher's probabilities (a torch module built lazily)."""

    @staticmethod
    def make() -> Any:
        import torch

        class SoftCE(torch.nn.Module):
            def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # (B, K), (B, K)
                return -(target * torch.log_softmax(logits, dim=-1)).sum(-1).mean()

        return SoftCE()


def _distilled(package: Any, p: Mapping[str, Any], tr: list[str], va: list[str], labels: list[Any]
               ) -> tuple[bytes, dict[str, bytes], dict[str, Any]]:
    import torch

    from ...training import Trainer
    from ._config import TextConfig
    from ._fit import MiniLMRun, _logistic, ood_scores
    from ._graph import minilm_graph, run_graph, session
    from ._minilm import TextClassifier, encode, model_dir

    m = package.manifest
    layers = int(p["layers"])
    if not 1 <= layers < 6:
        raise ConfigError(f"The distilled student has 1 to 5 layers (the teacher has 6), got {layers}.")
    rng = np.random.default_rng(int(m["config"].get("seed", 0)))
    if len(tr) > int(p["max_texts"]):
        tr = [tr[i] for i in np.sort(rng.choice(len(tr), int(p["max_texts"]), replace=False))]
    k = len(labels)
    teacher = session(package.read_bytes("model.onnx"), threads=max(1, os.cpu_count() or 1))
    soft_tr = run_graph(teacher, tr)["probabilities"]
    soft_va = run_graph(teacher, va)["probabilities"] if va else np.zeros((0, k), np.float32)
    cfg = TextConfig.coerce(m["config"]).replace(fine_tune=True, max_length=int(m["model"].get("max_length") or 128),
                                                 progress=False)
    student = MiniLMRun(cfg, n_layers=layers)
    E = student.embeddings(tr)
    W, b = _logistic(E, soft_tr.argmax(1), k, 2.0, cfg.seed)  # the head starts from the student's frozen features
    module = TextClassifier(student.encoder, k, W, b)
    ids_tr, _ = encode(student.tk, tr, length=student.max_length)
    ids_va, _ = encode(student.tk, va, length=student.max_length)
    tcfg = cfg.train_config(epochs=int(p["epochs"]), batch_size=int(p["batch_size"]), lr=float(p["lr"]), progress=False)
    result = Trainer(tcfg, monitor="val_loss").fit(
        module, (ids_tr, soft_tr), (ids_va, soft_va) if len(va) else None, loss_fn=_SoftTargetLoss.make(),
        target_dtype=torch.float32, input_dtype=torch.long)
    module.eval()
    student.encoder, student.fine_tuned = module.encoder, True
    W, b = module.head.weight.detach().numpy(), module.head.bias.detach().numpy()
    hard = soft_tr.argmax(1)
    centroids = student.centroids(student.embeddings(tr[:2000]), hard[:2000], k)
    vocab = (model_dir() / "vocab.txt").read_text(encoding="utf-8")
    graph = minilm_graph(student.export(W, b, centroids), vocab, [str(c) for c in labels], student.max_length)
    ood_val = ood_scores(student.embeddings(va), centroids) if va else np.zeros(0)
    notes = {"family": "minilm", "student_layers": layers, "teacher": f"{package.ref} (its probabilities)",
             "texts": len(tr), "epochs": len(result.history), "max_length": student.max_length,
             "ood_thresholds": {"p95": float(np.percentile(ood_val, 95)), "p99": float(np.percentile(ood_val, 99))}
             if len(ood_val) else {}}
    return graph.SerializeToString(), {}, notes
