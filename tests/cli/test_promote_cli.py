"""Every command that moves an alias (`promote`, `optimize --alias`) prints old -> new with the metric
change, and refuses a move to a version worse than the alias's current target unless --force."""

from __future__ import annotations

import json
import shutil

import pytest

import fulcrum
from fulcrum.artifact import Registry
from fulcrum.cli import main


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture(scope="module")
def iris_src(tmp_path_factory):
    """iris@1 logistic regression (accuracy 0.97) and iris@2 a one-epoch 4-unit MLP (0.50)."""
    root = tmp_path_factory.mktemp("promote-cli-src") / "registry"
    common = {"registry": Registry(root), "progress": False, "measure_inference": False}
    fulcrum.train("builtin:iris", model="linear", **common)
    fulcrum.train("builtin:iris", model="mlp", epochs=1, hidden_sizes=(4,), lr=1e-4, **common)
    return root


@pytest.fixture
def iris(iris_src, fulcrum_home):
    shutil.copytree(iris_src, fulcrum_home / "registry")
    return Registry(fulcrum_home / "registry")


def test_promote_to_a_worse_version_needs_force(iris, capsys):
    rc, out, err = run(capsys, "promote", "iris@1", "--alias", "production")
    assert rc == 0 and "iris@production -> version 1 (new alias; accuracy 0.9667" in out

    rc, out, err = run(capsys, "promote", "iris@2", "--alias", "production")
    assert rc == 1
    assert "iris@production stays at version 1, not moved to version 2: accuracy 0.9667 -> 0.5000 (-0.4667" in out
    assert err.startswith("error: Refused to move iris@production") and "--force" in err
    assert Registry().aliases("iris") == {"production": 1}

    rc, out, err = run(capsys, "promote", "iris@2", "--alias", "production", "--force")
    assert rc == 0, err
    assert "iris@production -> version 2 (was version 1): accuracy 0.9667 -> 0.5000 (-0.4667, 95% CI" in out
    assert "FORCED" in out
    assert Registry().aliases("iris") == {"production": 2}

    rc, out, err = run(capsys, "promote", "iris@1", "--alias", "production", "--json")
    assert rc == 0, err
    result = json.loads(out)
    assert result["moved"] and (result["old"], result["new"]) == (2, 1) and not result["forced"]
    c = result["comparison"]
    assert c["metric"] == "accuracy" and c["verdict"] == "better beyond noise" and c["interval"][0] > 0
    assert "iris@production -> version 1 (was version 2)" in err  # the line goes to stderr with --json


def test_optimize_alias_refuses_a_version_worse_than_production(iris, capsys):
    iris.set_alias("iris@1", "production")  # the better model serves; iris@2 is then optimized (the cars case)
    argv = ["optimize", "iris@2", "--variants", "onnx-fp32", "--constraints", "metric_drop<=0.01",
            "--alias", "production"]
    rc, out, err = run(capsys, *argv)
    assert rc == 1
    line = next(x for x in out.splitlines() if x.startswith("iris@production"))
    assert line.startswith("iris@production stays at version 1, not moved to version ") and "accuracy 0.9667 -> 0.5000" in line
    assert "Refused to move iris@production" in err and "--force" in err
    assert Registry().aliases("iris") == {"production": 1}

    rc, out, err = run(capsys, *argv, "--force")
    assert rc == 0, err
    assert "(was version 1): accuracy 0.9667 -> 0.5000" in out and "FORCED" in out
    assert Registry().aliases("iris")["production"] != 1
