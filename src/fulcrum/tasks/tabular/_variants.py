"""Optimized variants of a tabular package: which apply to which model family, and the ones that
need the model itself (retraining or cutting it), built here.

=================  ======================  =================================================================
kind               families                what it is
=================  ======================  =================================================================
onnx-fp32          mlp, linear, lightgbm   (graph) ONNX Runtime's offline graph optimization
int8-dynamic       mlp, linear             (graph) dynamic int8 of the model part, after ``features``
int8-static        mlp, linear             (graph) static int8 (QDQ) of the model part, calibrated on
                                           training rows
pruned [pruned-S]  mlp                     structured pruning: S% of each hidden layer's units removed,
                                           then a short fine-tune on the training split
distilled          mlp                     a 4x narrower MLP trained on the teacher's soft targets (T = 2)
trees [trees-P]    lightgbm                the first P% of the boosting rounds (truncated num_iteration)
shallow            lightgbm                retrained with num_leaves = 7 on the training split
=================  ======================  =================================================================

Linear models get only fp32 / int8: there is nothing to prune or distil in one matrix
product. Tree ensembles have no int8 kernels in ONNX Runtime, so they get fewer or
shallower trees instead. The int8 kinds quantize only the graph after the ``features`` edge
(the model part); the string/date preprocessing in front stays exact. A linear model's
double-precision part is computed in float32 first (the quantizers take float32 MatMuls).
"""

from __future__ import annotations

import copy
from typing import Any, Mapping, Sequence

import numpy as np

from ...errors import ConfigError
from .._base import VariantKind

__all__ = ["VARIANT_FAMILIES", "variant_kinds", "variant_ids", "variant_from_id", "build_variant"]

#: kind -> model families it applies to (in the order variants are planned)
VARIANT_FAMILIES: dict[str, tuple[str, ...]] = {
    "onnx-fp32": ("mlp", "linear", "lightgbm"),
    "int8-dynamic": ("mlp", "linear"),
    "int8-static": ("mlp", "linear"),
    "pruned": ("mlp",),
    "distilled": ("mlp",),
    "trees": ("lightgbm",),
    "shallow": ("lightgbm",),
}
_WHY_NOT = {
    "linear": "a linear model is one matrix product: nothing to prune or distil (only fp32 / int8 apply)",
    "lightgbm": "tree ensembles have no int8 kernels in ONNX Runtime, and pruning/distillation here are for MLPs; "
                "trees and shallow are the tree analogues",
    "mlp": "trees and shallow are for tree ensembles",
}
_INT8 = {"scope": "features", "op_types": ["MatMul", "Gemm"], "weight_type": "QInt8", "per_channel": False,
         "extra_options": {"MatMulConstBOnly": True}}
_DEFAULT_SPARSITIES = (0.5, 0.8)
_DEFAULT_FRACTIONS = (0.5, 0.25)


def variant_kinds(manifest: Mapping[str, Any]) -> tuple[list[VariantKind], dict[str, str]]:
    family = manifest["model"]["family"]
    kinds: list[VariantKind] = []
    why: dict[str, str] = {}
    for kind, families in VARIANT_FAMILIES.items():
        if family not in families:
            why[kind] = f"not for {family} models: {_WHY_NOT.get(family, 'not built for this model family')}"
        elif kind.startswith("int8"):
            kinds.append(VariantKind(kind, "graph", {**_INT8, "float32": family == "linear"}))
        elif kind == "onnx-fp32":
            kinds.append(VariantKind(kind, "graph", {}))
        else:
            kinds.append(VariantKind(kind, "task", {"method": "structured"} if kind == "pruned" else {}))
    return kinds, why


def variant_ids(kind: VariantKind, options: Any) -> list[tuple[str, dict[str, Any]]]:
    if kind.kind == "pruned":
        return [(f"pruned-{round(100 * float(s))}", {"sparsity": float(s), "method": "structured"})
                for s in getattr(options, "sparsities", _DEFAULT_SPARSITIES)]
    if kind.kind == "trees":
        return [(f"trees-{round(100 * float(f))}", {"fraction": float(f)})
                for f in getattr(options, "tree_fractions", _DEFAULT_FRACTIONS)]
    return [(kind.kind, dict(kind.params))]


def variant_from_id(vid: str, kinds: Sequence[VariantKind]) -> tuple[str, dict[str, Any]] | None:
    """``pruned-NN`` / ``trees-NN`` for another percentage (1..99)."""
    applicable = {k.kind for k in kinds}
    for prefix, kind, key in (("pruned-", "pruned", "sparsity"), ("trees-", "trees", "fraction")):
        num = vid[len(prefix):]
        if vid.startswith(prefix) and kind in applicable and num.isdigit() and 0 < int(num) < 100:
            return kind, {key: int(num) / 100, **({"method": "structured"} if kind == "pruned" else {})}
    return None


# ----------------------------------------------------------------------------- building


class _Parts:
    """The parent model and its data, prepared once per variant build."""

    def __init__(self, package: Any, context: Any) -> None:
        from ... import data as D
        from ...config import TrainConfig
        from ...models import TaskSpec, adapter_class

        m = package.manifest
        self.package = package
        self.kind = m["task"]["kind"]
        labels = m["task"].get("labels")
        self.family = m["model"]["family"]
        self.task = TaskSpec(self.kind, n_classes=len(labels)) if self.kind == "classification" else TaskSpec("regression")
        known = {f for f in TrainConfig.__dataclass_fields__}
        self.config = TrainConfig.from_dict({k: v for k, v in (m.get("config") or {}).items() if k in known})
        self.preprocess = package.read_json("preprocess.json")
        pre = D.Preprocessor.from_dict(self.preprocess)
        self.n_features = int(pre.n_features_)
        self.adapter = adapter_class(self.family).from_files(self.task, m["model"], package.read_bytes)
        target = m["task"]["target"]
        train, val = context.train, context.val
        if self.kind == "classification":
            codec = D.LabelCodec().fit(list(labels))
            self.y_tr, self.y_va = codec.encode(train[target]), codec.encode(val[target])
        else:
            self.y_tr, self.y_va = (s[target].to_numpy(dtype=np.float64) for s in (train, val))
        self.X_tr, self.X_va = pre.transform(train), pre.transform(val)

    def graph(self, adapter: Any) -> bytes:
        """The package graph with ``adapter`` as its model part."""
        from ._export import export_package_graph

        return export_package_graph(self.preprocess, adapter, self.task, self.n_features)

    def mlp_adapter(self, head: Any, widths: list[int]) -> Any:
        from ...models import MLPAdapter

        ad = MLPAdapter(self.task, self.config)
        ad.module_ = head
        args = dict(self.adapter.args_)
        args.update(hidden_sizes=list(widths), dropout=float(args.get("dropout", 0.0)))
        ad.args_ = args
        return ad


def _native(vid: str, adapter: Any) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The adapter's manifest section (file names under ``variants/<vid>/``) and its files."""
    meta, files = adapter.to_files()
    for key in ("weights", "model_file"):
        if key in meta:
            meta[key] = f"variants/{vid}/{meta[key]}"
    return meta, dict(files)


def build_variant(kind: str, params: Mapping[str, Any], package: Any, context: Any) -> tuple[bytes, dict[str, bytes], dict[str, Any]]:
    opts = context.options
    vid = context.vid or kind
    p = _Parts(package, context)
    if kind == "pruned":
        from ._prune import fine_tune, prune_mlp

        epochs = int(getattr(opts, "fine_tune_epochs", 10))
        head, widths = prune_mlp(copy.deepcopy(p.adapter.torch_module()), float(params["sparsity"]))
        head = fine_tune(head, p.X_tr, p.y_tr, p.X_va, p.y_va, p.config, epochs=epochs, lr=float(p.config.lr))
        ad = p.mlp_adapter(head, widths)
        notes = {"params": {**params, "hidden_sizes": widths, "parent_hidden_sizes": list(p.adapter.args_["hidden_sizes"]),
                            "fine_tune": {"epochs": epochs, "split": "train", "best_by": "val_loss"}}}
    elif kind == "distilled":
        from ._distill import distill_mlp, student_sizes

        temperature, alpha = float(getattr(opts, "temperature", 2.0)), float(getattr(opts, "alpha", 0.7))
        epochs = getattr(opts, "distill_epochs", None)
        sizes = student_sizes(p.adapter.args_["hidden_sizes"], int(getattr(opts, "student_shrink", 4)))
        head = distill_mlp(p.adapter.torch_module(), p.X_tr, p.y_tr, p.X_va, p.y_va, p.config,
                           hidden_sizes=sizes, temperature=temperature, alpha=alpha, epochs=epochs)
        ad = p.mlp_adapter(head, sizes)
        ad.args_["dropout"] = 0.0
        notes = {"params": {"hidden_sizes": sizes, "teacher_hidden_sizes": list(p.adapter.args_["hidden_sizes"]),
                            "temperature": temperature, "alpha": alpha, "split": "train", "best_by": "val_loss",
                            "epochs": epochs or int(p.config.epochs)}}
    elif kind == "trees":
        import lightgbm as lgb

        from ...models import LightGBMAdapter

        booster = p.adapter.booster_
        rounds = int(booster.current_iteration())
        keep = max(1, int(round(rounds * float(params["fraction"]))))
        ad = LightGBMAdapter(p.task, p.config)
        ad.booster_ = lgb.Booster(model_str=booster.model_to_string(num_iteration=keep))
        notes = {"params": {**params, "rounds": keep, "parent_rounds": rounds, "trees": int(ad.booster_.num_trees())}}
    elif kind == "shallow":
        from ...models import LightGBMAdapter

        leaves = int(getattr(opts, "shallow_leaves", 7))
        ad = LightGBMAdapter(p.task, p.config.replace(num_leaves=leaves)).fit(p.X_tr, p.y_tr, p.X_va, p.y_va)
        notes = {"params": {"num_leaves": leaves, "parent_num_leaves": int(p.config.num_leaves), "split": "train",
                            "early_stopping": "validation split", "trees": int(ad.booster_.num_trees())}}
    else:
        raise ConfigError(f"The tabular task builds no variant {kind!r} itself; it builds pruned, distilled, trees "
                          "and shallow (onnx-fp32 and int8 are graph transforms of fulcrum.optimize).")
    meta, files = _native(vid, ad)
    return p.graph(ad), files, {**notes, "model": meta}
