"""Which way a primary metric improves comes from one table for every task: the promotion guard, the optimizer's
selection and the dashboard's Pareto front must treat MASE or WER as lower-is-better (a worse forecast must not move
an alias as if it were better), and an unknown metric name is refused rather than guessed."""

from __future__ import annotations

import pytest

from fulcrum.artifact import compare_versions
from fulcrum.cli import main
from fulcrum.errors import ConfigError
from fulcrum.tasks import greater_is_better


@pytest.mark.parametrize("name,greater", [
    ("accuracy", True), ("r2", True), ("ndcg@10", True), ("recall@5", True), ("map@10", True), ("coverage", True),
    ("mase", False), ("smape", False), ("rmse", False), ("mae", False), ("wer", False), ("cer", False),
    ("log_loss", False),
])
def test_direction_of_every_primary_metric(name, greater):
    assert greater_is_better(name) is greater


def test_an_unknown_metric_is_refused_not_guessed():
    with pytest.raises(ConfigError, match="higher or lower"):
        greater_is_better("banana")


@pytest.fixture(scope="module")
def forecasts(tmp_path_factory):
    reg = tmp_path_factory.mktemp("reg")
    # the same real series and split: seasonal naive (v1) and the ridge model (v2), which beats it on backtest MASE
    for model in ("seasonal_naive", "linear"):
        assert main(["train", "builtin:elnino", "--name", "sst", "--registry", str(reg), "--no-progress",
                     "--set", f"model={model}"]) == 0
    from fulcrum.artifact import Registry
    return Registry(reg)


def test_a_forecast_with_higher_mase_is_worse(forecasts):
    m1 = forecasts.load("sst@1").manifest["metrics"]["primary"]
    m2 = forecasts.load("sst@2").manifest["metrics"]["primary"]
    assert m1["name"] == m2["name"] == "mase" and m2["value"] < m1["value"]
    better = compare_versions(forecasts, "sst@1", "sst@2")
    assert better["comparable"] and better["greater_is_better"] is False and not better["worse"]
    worse = compare_versions(forecasts, "sst@2", "sst@1")
    assert worse["comparable"] and worse["worse"], worse


def test_the_dashboard_pareto_front_knows_mase_is_lower_is_better(forecasts):
    from fulcrum.ui._data import variants_detail

    assert variants_detail(forecasts, "sst@2")["greater_is_better"] is False


def test_promotion_refuses_the_worse_forecast_and_moves_the_better(forecasts):
    from fulcrum.artifact import promote
    from fulcrum.errors import ConstraintError

    promote(forecasts, "sst@2", "production", log=None)  # the first alias: nothing to compare with
    with pytest.raises(ConstraintError, match="Refused to move sst@production from version 2 to version 1"):
        promote(forecasts, "sst@1", "production", log=None)  # seasonal naive: higher MASE
    assert forecasts.aliases("sst") == {"production": 2}
