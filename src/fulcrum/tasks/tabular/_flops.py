"""FLOPs per prediction of a tabular package, from its manifest's model description.

Counted by torch's FLOP counter for the MLP; a stated estimate for linear and tree models
(see :func:`fulcrum.costs._flops.estimate_flops_classical`). An ensemble runs every member for every
row, so its count is the sum of its members' (the weighted sum itself, K multiply-adds per member,
is left out as the single models leave out their softmax).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

__all__ = ["tabular_flops"]


def tabular_flops(manifest: Mapping[str, Any]) -> tuple[int | None, str]:
    """(FLOPs for one row, how they were obtained); (None, "unknown") for a model it cannot count."""
    from ...costs._flops import count_flops, estimate_flops_classical

    model = manifest.get("model", {})
    family = model.get("family")
    if family == "ensemble":
        return _ensemble_flops(manifest)
    if family == "mlp":
        import torch

        from ...models import MLP

        args = {k: v for k, v in model["args"].items() if k not in ("y_mean", "y_std")}
        return count_flops(MLP(**args).eval(), torch.zeros(1, args["in_features"])), "counted: torch FlopCounterMode, forward"
    n_features = int(model.get("n_features") or 0)
    if family == "linear" and n_features:
        labels = manifest.get("task", {}).get("labels") or []
        outputs = 1 if len(labels) <= 2 else len(labels)
        return (estimate_flops_classical("linear", n_features=n_features, n_outputs=outputs),
                "estimate: 2 x features x outputs multiply-adds")
    if family == "lightgbm":
        trees = int(model.get("num_trees") or 0)
        leaves = int(manifest.get("config", {}).get("num_leaves", 31))
        if trees:
            depth = max(1, math.ceil(math.log2(max(2, leaves))))
            return (estimate_flops_classical("gbm", n_trees=trees, depth=depth),
                    f"estimate: {trees} trees x depth {depth} comparisons")
    return None, "unknown"


def _ensemble_flops(manifest: Mapping[str, Any]) -> tuple[int | None, str]:
    model = manifest["model"]
    total, methods = 0, []
    for e in model.get("members") or []:
        config = dict(manifest.get("config") or {})
        if e.get("num_leaves"):  # a tree member's own leaf count, not the run's configured one
            config["num_leaves"] = e["num_leaves"]
        single = {**manifest, "model": {**(e.get("meta") or {}), "n_features": model.get("n_features")}, "config": config}
        flops, method = tabular_flops(single)
        if flops is None:
            return None, f"unknown: ensemble member {e.get('name')!r} ({e.get('family')}) cannot be counted"
        total += flops
        methods.append(f"{e.get('name')}: {method}")
    if not methods:
        return None, "unknown"
    return total, f"sum over {len(methods)} ensemble members ({'; '.join(methods)})"
