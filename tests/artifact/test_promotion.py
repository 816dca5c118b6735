"""The promotion policy (fulcrum.artifact.promote): same held-out rows, the primary metric, a paired
interval, old -> new in every message, and no move to a worse version without force."""

from __future__ import annotations

import shutil

import pytest

import fulcrum
from fulcrum.artifact import Registry, compare_versions, promote
from fulcrum.data import read_table
from fulcrum.errors import ConstraintError


@pytest.fixture(scope="module")
def iris_src(tmp_path_factory):
    """iris@1 logistic regression (good), iris@2 a one-epoch 4-unit MLP (bad), iris@3 = iris@1 again."""
    root = tmp_path_factory.mktemp("promotion-src") / "registry"
    reg = Registry(root)
    common = {"registry": reg, "progress": False, "measure_inference": False}
    fulcrum.train("builtin:iris", model="linear", **common)
    fulcrum.train("builtin:iris", model="mlp", epochs=1, hidden_sizes=(4,), lr=1e-4, **common)
    fulcrum.train("builtin:iris", model="linear", **common)
    return root


@pytest.fixture
def reg(iris_src, fulcrum_home):
    shutil.copytree(iris_src, fulcrum_home / "registry")
    reg = Registry(fulcrum_home / "registry")
    reg.set_alias("iris@1", "production")
    return reg


def recorded(reg, ref):
    return reg.load(ref).manifest["metrics"]["test"]["accuracy"]


def test_same_rows_primary_metric_and_a_paired_interval(reg):
    c = compare_versions(reg, "iris@1", "iris@2")
    assert c["comparable"] and c["metric"] == "accuracy"
    assert c["rows"] == reg.load("iris@1").manifest["data"]["rows"]["test"]
    # both versions come from the same data and split: these are the rows each recorded its test metric on
    assert c["old_value"] == pytest.approx(recorded(reg, "iris@1"))
    assert c["new_value"] == pytest.approx(recorded(reg, "iris@2"))
    lo, hi = c["interval"]
    assert lo <= c["delta"] <= hi < 0 and c["worse"] and c["caveat"] is None
    same = compare_versions(reg, "iris@1", "iris@3")
    assert same["delta"] == 0 and same["interval"] == [0.0, 0.0] and same["verdict"] == "within noise"


def test_a_clearly_worse_version_is_refused_without_force(reg):
    lines = []
    with pytest.raises(ConstraintError, match=r"Refused to move iris@production from version 1 to version 2.*force"):
        promote(reg, "iris@2", "production", log=lines.append)
    assert reg.aliases("iris") == {"production": 1}
    assert lines and lines[0].startswith("iris@production stays at version 1, not moved to version 2: accuracy 0.9667 -> ")
    assert "95% CI" in lines[0]

    lines.clear()
    result = promote(reg, "iris@2", "production", force=True, log=lines.append)
    assert reg.aliases("iris") == {"production": 2}
    assert result["moved"] and result["forced"] and (result["old"], result["new"]) == (1, 2)
    assert lines[0].startswith("iris@production -> version 2 (was version 1): accuracy 0.9667 -> ") and "FORCED" in lines[0]


def test_not_worse_moves_and_says_old_to_new(reg):
    lines = []
    result = promote(reg, "iris@3", "production", log=lines.append)
    assert result["moved"] and not result["forced"] and reg.aliases("iris") == {"production": 3}
    assert lines == [result["line"]]
    assert result["line"].startswith("iris@production -> version 3 (was version 1): accuracy 0.9667 -> 0.9667 (+0.0000")
    again = promote(reg, "iris@3", "production", log=lines.append)
    assert not again["moved"] and "already points at version 3" in again["line"]


def test_the_allowed_drop_is_a_setting(reg):
    result = promote(reg, "iris@2", "production", max_drop=0.6, log=None)  # the user accepts a large drop
    assert result["moved"] and not result["forced"] and "within the allowed 0.6" in result["line"]
    with pytest.raises(ConstraintError, match="max_drop"):
        promote(reg, "iris@1", "production", max_drop=-1, log=None)


def test_a_new_alias_reports_the_metric_it_starts_from(reg):
    result = promote(reg, "iris@2", "staging", log=None)
    assert result["moved"] and result["old"] is None
    assert result["line"] == "iris@staging -> version 2 (new alias; accuracy 0.5000 on its held-out test split)"


def test_versions_not_comparable_on_the_same_rows_need_force_or_the_data(tmp_path, fulcrum_home):
    data = read_table("builtin:iris")
    first, kept = tmp_path / "flowers.csv", tmp_path / "kept.csv"
    data.to_csv(first, index=False)
    shutil.copy(first, kept)
    common = {"target": "target", "name": "flowers", "model": "linear", "progress": False, "measure_inference": False}
    fulcrum.train(str(first), **common)
    first.unlink()  # the first version's data is gone
    other = tmp_path / "shuffled.csv"
    data.sample(frac=1.0, random_state=7).to_csv(other, index=False)  # other data: another split
    fulcrum.train(str(other), **common)
    reg = Registry()
    reg.set_alias("flowers@1", "production")

    lines = []
    with pytest.raises(ConstraintError, match=r"could not be compared on the same rows.*--data FILE"):
        promote(reg, "flowers@2", "production", log=lines.append)
    assert "flowers.csv" in lines[0] and reg.aliases("flowers") == {"production": 1}

    result = promote(reg, "flowers@2", "production", data=str(kept), log=lines.append)
    c = result["comparison"]
    assert c["comparable"] and c["rows"] == 30 and "may have seen some of these rows" in c["caveat"]
    assert result["moved"] and "(note: flowers@2 was trained on other data" in result["line"]


@pytest.mark.parametrize("metric", ["accuracy", "balanced_accuracy", "f1", "log_loss"])
def test_per_row_metrics_agree_with_the_recorded_ones(reg, metric):
    from fulcrum.artifact._promotion import compare_on_rows, held_out_rows
    from fulcrum.runtime import Predictor

    old, new = reg.load("iris@1"), reg.load("iris@2")
    c = compare_on_rows(Predictor(old), Predictor(new), held_out_rows(old), metric=metric)
    assert c["old_value"] == pytest.approx(old.manifest["metrics"]["test"][metric], abs=1e-6)
    assert c["new_value"] == pytest.approx(new.manifest["metrics"]["test"][metric], abs=1e-6)
    lo, hi = c["interval"]
    assert lo <= c["delta"] <= hi
