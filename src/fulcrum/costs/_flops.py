"""Floating-point operation counts per forward pass.

Convention (PyTorch's ``FlopCounterMode`` and most papers): one multiply-add is
2 FLOPs, so a dense ``y = xW^T`` with ``x`` of shape ``(B, n_in)`` costs
``2 * B * n_in * n_out``. Bias adds, activations and other element-wise work are
not counted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = ["count_flops", "estimate_flops_classical"]


def count_flops(module: torch.nn.Module, example_input: torch.Tensor | tuple[torch.Tensor, ...]) -> int:
    """FLOPs of one forward pass of ``module`` on ``example_input`` (the whole given batch).

    Runs in eval mode under ``torch.no_grad()`` and restores the module's mode after.
    Divide by the batch size for FLOPs per prediction.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    args = example_input if isinstance(example_input, tuple) else (example_input,)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(*args)
    finally:
        module.train(was_training)
    return int(counter.get_total_flops())


_CLASSICAL: dict[str, tuple[str, ...]] = {
    "linear": ("n_features", "n_outputs"),
    "gbm": ("n_trees", "depth"),
}
_ALIASES = {"logistic": "linear", "lightgbm": "gbm", "gradient_boosting": "gbm"}


def estimate_flops_classical(kind: str, **shape: Any) -> int:
    """Estimated operations per batch for classical models (``n_rows`` defaults to 1).

    - ``linear`` (also ``logistic``): ``2 * n_features * n_outputs * n_rows``, one
      multiply-add per weight (link function and bias not counted); ``n_outputs``
      defaults to 1.
    - ``gbm`` (also ``lightgbm``): ``n_trees * depth * n_rows``, one comparison per
      tree level on the root-to-leaf path. An *estimate*: comparisons are not
      floating-point multiply-adds, ``depth`` should be the average path length
      (``log2(num_leaves)`` is a fair guess for leaf-wise trees), and ``n_trees`` is
      the total count, one per class per boosting round in multiclass models.
    """
    key = _ALIASES.get(kind, kind)
    if key not in _CLASSICAL:
        raise ConfigError(
            f"Unknown model kind {kind!r} for estimate_flops_classical; "
            f"choose one of {', '.join(map(repr, sorted([*_CLASSICAL, *_ALIASES])))}."
        )
    needed = _CLASSICAL[key]
    allowed = {*needed, "n_rows"}
    unknown = sorted(set(shape) - allowed)
    if unknown:
        raise ConfigError(f"Unknown shape key(s) {unknown} for {kind!r}; accepted: {sorted(allowed)}.")
    values = {"n_rows": 1, "n_outputs": 1, **shape}
    missing = [k for k in needed if k not in values]
    if missing:
        raise ConfigError(f"estimate_flops_classical({kind!r}) needs {', '.join(missing)}, e.g. n_features=10.")
    for k, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ConfigError(f"{k} must be a positive integer, got {v!r}.")
    if key == "linear":
        return 2 * values["n_features"] * values["n_outputs"] * values["n_rows"]
    return values["n_trees"] * values["depth"] * values["n_rows"]
