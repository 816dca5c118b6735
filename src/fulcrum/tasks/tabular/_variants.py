"""Optimized variants of a tabular package: which apply to which model family, and the ones that
need the model itself (retraining or cutting it), built here.

=================  ======================  =================================================================
kind               families                what it is
=================  ======================  =================================================================
onnx-fp32          mlp, linear, lightgbm,  (graph) ONNX Runtime's offline graph optimization
                   ensemble
int8-dynamic       mlp, linear, ensemble*  (graph) dynamic int8 of the model part, after ``features``
int8-static        mlp, linear, ensemble*  (graph) static int8 (QDQ) of the model part, calibrated on
                                           training rows
pruned [pruned-S]  mlp                     structured pruning: S% of each hidden layer's units removed,
                                           then a short fine-tune on the training split
distilled          mlp, ensemble           an MLP trained on the teacher's soft targets (T = 2): 4x narrower
                                           than an MLP teacher; for an ensemble, one MLP of the MLP member's
                                           (else the configured) size in place of every member
trees [trees-P]    lightgbm                the first P% of the boosting rounds (truncated num_iteration)
shallow            lightgbm                retrained with num_leaves = 7 on the training split
=================  ======================  =================================================================

Linear models get only fp32 / int8: there is nothing to prune or distil in one matrix
product. Tree ensembles have no int8 kernels in ONNX Runtime, so they get fewer or
shallower trees instead. The int8 kinds quantize only the graph after the ``features`` edge
(the model part); the string/date preprocessing in front stays exact. A linear model's
double-precision part is computed in float32 first (the quantizers take float32 MatMuls).
(*) A weighted ensemble gets int8 only when every member is linear or an MLP: with a LightGBM
member, the trees would stay float and int8 would change only part of the graph. Its members are
not pruned or cut one by one; distilling the whole ensemble into one MLP is its compression.
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
    "onnx-fp32": ("mlp", "linear", "lightgbm", "ensemble"),
    "int8-dynamic": ("mlp", "linear", "ensemble"),
    "int8-static": ("mlp", "linear", "ensemble"),
    "pruned": ("mlp",),
    "distilled": ("mlp", "ensemble"),
    "trees": ("lightgbm",),
    "shallow": ("lightgbm",),
}
_WHY_NOT = {
    "linear": "a linear model is one matrix product: nothing to prune or distil (only fp32 / int8 apply)",
    "lightgbm": "tree ensembles have no int8 kernels in ONNX Runtime, and pruning/distillation here are for MLPs; "
                "trees and shallow are the tree analogues",
    "mlp": "trees and shallow are for tree ensembles",
    "ensemble": "a weighted ensemble's members are kept whole (pruning is for one MLP, trees and shallow for one "
                "LightGBM model); distilled compresses the whole ensemble into one MLP",
}
_WHY_NOT_INT8_ENSEMBLE = ("not for this ensemble: its LightGBM member(s) have no int8 kernels in ONNX Runtime, so int8 "
                          "would quantize only part of the graph; onnx-fp32 and distilled apply")
_INT8 = {"scope": "features", "op_types": ["MatMul", "Gemm"], "weight_type": "QInt8", "per_channel": False,
         "extra_options": {"MatMulConstBOnly": True}}
_DEFAULT_SPARSITIES = (0.5, 0.8)
_DEFAULT_FRACTIONS = (0.5, 0.25)


def variant_kinds(manifest: Mapping[str, Any]) -> tuple[list[VariantKind], dict[str, str]]:
    family = manifest["model"]["family"]
    members = {e.get("family") for e in manifest["model"].get("members") or []} if family == "ensemble" else {family}
    kinds: list[VariantKind] = []
    why: dict[str, str] = {}
    for kind, families in VARIANT_FAMILIES.items():
        if family not in families:
            why[kind] = f"not for {family} models: {_WHY_NOT.get(family, 'not built for this model family')}"
        elif kind.startswith("int8") and not members <= {"linear", "mlp"}:
            why[kind] = _WHY_NOT_INT8_ENSEMBLE
        elif kind.startswith("int8"):
            kinds.append(VariantKind(kind, "graph", {**_INT8, "float32": "linear" in members}))
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
        self.n_outputs = len(labels) if self.kind == "classification" else 1

    def teacher(self) -> Any:
        """The teacher to distil: the MLP's head, or an ensemble known by its outputs."""
        if self.family == "mlp":
            return self.adapter.torch_module()
        from ._distill import OutputTeacher

        y_mean = float(np.mean(self.y_tr)) if self.kind == "regression" else 0.0
        y_std = float(np.std(self.y_tr)) if self.kind == "regression" else 1.0
        return OutputTeacher(self.adapter.predict_output, self.kind, self.n_features, self.n_outputs, y_mean, y_std)

    def student_sizes(self, shrink: int) -> list[int]:
        """An MLP teacher's layers ``shrink`` times narrower; for an ensemble, its MLP member's layers (else the
        configured ones) as they are: one MLP in place of every member is the compression."""
        from ._distill import student_sizes

        if self.family == "mlp":
            return student_sizes(self.adapter.args_["hidden_sizes"], shrink)
        mlps = [m for _, m, _ in self.adapter.members if m.family == "mlp"]
        return [int(h) for h in (mlps[0].args_["hidden_sizes"] if mlps else self.config.hidden_sizes)]

    def graph(self, adapter: Any) -> bytes:
        """The package graph with ``adapter`` as its model part."""
        from ._export import export_package_graph

        return export_package_graph(self.preprocess, adapter, self.task, self.n_features)

    def mlp_adapter(self, head: Any, widths: list[int]) -> Any:
        from ...models import MLPAdapter

        ad = MLPAdapter(self.task, self.config)
        ad.module_ = head
        if self.family == "mlp":
            args = dict(self.adapter.args_)
        else:  # a student of another teacher (an ensemble): its shape and target scale from the head
            args = {"in_features": self.n_features, "out_features": self.n_outputs,
                    "y_mean": float(head.y_mean), "y_std": float(head.y_std)}
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
        from ._distill import distill_mlp

        temperature, alpha = float(getattr(opts, "temperature", 2.0)), float(getattr(opts, "alpha", 0.7))
        epochs = getattr(opts, "distill_epochs", None)
        sizes = p.student_sizes(int(getattr(opts, "student_shrink", 4)))
        head = distill_mlp(p.teacher(), p.X_tr, p.y_tr, p.X_va, p.y_va, p.config,
                           hidden_sizes=sizes, temperature=temperature, alpha=alpha, epochs=epochs)
        ad = p.mlp_adapter(head, sizes)
        ad.args_["dropout"] = 0.0
        if p.family == "mlp":
            teacher: dict[str, Any] = {"teacher_hidden_sizes": list(p.adapter.args_["hidden_sizes"])}
        else:
            teacher = {"teacher": "ensemble", "teacher_members": {n: w for n, _, w in p.adapter.members}}
        notes = {"params": {"hidden_sizes": sizes, **teacher,
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
