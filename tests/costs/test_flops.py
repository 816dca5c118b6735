from __future__ import annotations

import pytest
import torch

from fulcrum.costs import count_flops, estimate_flops_classical
from fulcrum.errors import ConfigError


def test_linear_10_5_batch_1_is_100_flops():
    # y = x W^T: 10 x 5 multiply-adds, 2 FLOPs each -> 2 * 10 * 5 = 100 (bias not counted)
    assert count_flops(torch.nn.Linear(10, 5), torch.zeros(1, 10)) == 100


def test_flops_scale_with_batch():
    assert count_flops(torch.nn.Linear(10, 5), torch.zeros(4, 10)) == 400


def _mlp(width: int) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(20, width), torch.nn.ReLU(), torch.nn.Linear(width, 2))


def test_bigger_mlp_counts_more_flops_per_prediction():
    x = torch.zeros(8, 20)
    small = count_flops(_mlp(16), x) / 8
    big = count_flops(_mlp(256), x) / 8
    # by hand: 2*(20*16 + 16*2) = 704 and 2*(20*256 + 256*2) = 11264
    assert small == 704
    assert big == 11264


def test_count_flops_restores_training_mode():
    module = _mlp(4)
    module.train()
    count_flops(module, torch.zeros(1, 20))
    assert module.training


def test_classical_linear_formula():
    # 2 * n_features * n_outputs * n_rows = 2 * 10 * 3 * 5 = 300
    assert estimate_flops_classical("linear", n_features=10, n_outputs=3, n_rows=5) == 300
    assert estimate_flops_classical("logistic", n_features=10) == 20


def test_classical_gbm_formula():
    # n_trees * depth * n_rows = 100 * 6 * 2 = 1200
    assert estimate_flops_classical("gbm", n_trees=100, depth=6, n_rows=2) == 1200
    assert estimate_flops_classical("lightgbm", n_trees=100, depth=6) == 600


@pytest.mark.parametrize(
    ("kind", "shape", "match"),
    [
        ("forest", {"n_trees": 1}, "choose one of"),
        ("linear", {}, "n_features"),
        ("linear", {"n_features": 10, "width": 3}, "width"),
        ("gbm", {"n_trees": 0, "depth": 3}, "n_trees"),
    ],
)
def test_classical_errors(kind, shape, match):
    with pytest.raises(ConfigError, match=match):
        estimate_flops_classical(kind, **shape)
