"""``fulcrum tune`` / ``fulcrum.tune``: an Optuna search whose best trial becomes a normal registered package
carrying the study's summary and a plot of the search; pruning through intermediate reports; bad input."""

from __future__ import annotations

import json

import numpy as np
import optuna
import pytest

import fulcrum
from fulcrum.artifact import ModelPackage, Registry
from fulcrum.cli._main import main
from fulcrum.errors import ConfigError


def _png_ok(data: bytes) -> tuple[int, int]:
    """A PNG that decodes: (height, width)."""
    import io

    import matplotlib.image as mpimg

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    img = mpimg.imread(io.BytesIO(data), format="png")
    return img.shape[0], img.shape[1]


@pytest.fixture(scope="module")
def lgb_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("tune")
    reg = root / "reg"
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["tune", "builtin:diabetes", "--trials", "6", "--model", "lightgbm", "--time-limit", "60",
                   "--folds", "3", "--registry", str(reg), "--json"])
    assert rc == 0
    return {"reg": reg, "out": json.loads(out.getvalue())}


def test_lightgbm_tune_registers_a_verified_package_with_the_study(lgb_run: dict) -> None:
    pkg = Registry(lgb_run["reg"]).load("diabetes")  # the normal path: verified on load
    ModelPackage.load(pkg.path, verify=True)
    s = pkg.manifest["tuning"]
    assert s["family"] == "lightgbm" and s["metric"] == "r2" and s["backend"] == "local"
    assert s["trials"] == 6 and s["trials_requested"] == 6 and s["stopped_by"] == "trials"
    assert s["complete"] + s["pruned"] + s["failed"] == 6 == len(s["history"])
    done = [h for h in s["history"] if h["state"] == "complete"]
    best = max(done, key=lambda h: h["value"])
    assert s["best_trial"] == best["number"] and s["best_value"] == pytest.approx(best["value"])
    assert s["search_s"] > 0 and s["time_s"] >= s["search_s"]
    # trial 0 is the defaults (the baseline), clamped into the space
    assert s["baseline"]["trial"] == 0 and s["baseline"]["params"]["num_leaves"] == 31
    assert s["baseline"]["params"]["gbm_learning_rate"] == pytest.approx(0.05)
    # the package trained exactly the best trial's configuration
    cfg = pkg.manifest["config"]
    assert cfg["model"] == "lightgbm" and pkg.manifest["model"]["family"] == "lightgbm"
    for key, value in s["best_params"].items():
        assert cfg[key] == pytest.approx(value), key
    assert set(s["best_params"]) >= {"gbm_learning_rate", "num_leaves", "min_data_in_leaf", "feature_fraction",
                                     "bagging_fraction", "lambda_l2", "n_estimators"}
    # the plot of the search is a file of the package (checksummed like every other)
    assert "tuning/search.png" in pkg.files
    h, w = _png_ok(pkg.read_bytes("tuning/search.png"))
    assert h > 200 and w > 400
    # what the CLI printed is what the package holds
    assert lgb_run["out"]["ref"] == pkg.ref and lgb_run["out"]["tuning"]["best_params"] == s["best_params"]
    # it predicts like any package
    pred = fulcrum.load("diabetes", registry=lgb_run["reg"])
    assert np.isfinite(pred.predict_outputs(fulcrum.read_table("builtin:diabetes").head(3))["value"]).all()


class _PruneAfterFirst(optuna.pruners.BasePruner):
    """Prunes every trial but the first once it has reported 3 steps: pruning must happen."""

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        step = trial.last_step
        return trial.number > 0 and step is not None and step >= 3


def test_mlp_trials_are_pruned_per_epoch_and_counted(tmp_path) -> None:
    pkg = fulcrum.tune("builtin:iris", model="mlp", trials=3, epochs=8, pruner=_PruneAfterFirst(),
                       registry=tmp_path / "reg", progress=False)
    s = pkg.manifest["tuning"]
    assert s["pruned"] == 2 and s["complete"] == 1 and s["best_trial"] == 0
    pruned = [h for h in s["history"] if h["state"] == "pruned"]
    # reported after every epoch through the Trainer callback, and stopped at the epoch Optuna pruned it
    assert [h["steps"] for h in pruned] == [3, 3]
    assert all(h["value"] is None and 0 <= h["last_report"] <= 1 for h in pruned)
    assert s["history"][0]["steps"] >= 3  # the complete trial reported its epochs too
    cfg = pkg.manifest["config"]
    for key, value in s["best_params"].items():
        assert cfg[key] == (pytest.approx(value) if isinstance(value, float) else value), key
    assert pkg.manifest["model"]["family"] == "mlp"
    _png_ok(pkg.read_bytes("tuning/search.png"))


@pytest.mark.parametrize("args, words", [
    (["--trials", "0"], "trials must be a whole number >= 1"),
    (["--time-limit", "-5"], "time_limit must be a positive number of seconds"),
    (["--model", "xgboost"], "Unknown model 'xgboost' for tune"),
    (["--backend", "spark"], "Unknown backend 'spark'"),
    (["--pruner", "sometimes"], "Unknown pruner"),
])
def test_bad_input_is_refused_and_nothing_written(tmp_path, capsys, args, words) -> None:
    reg = tmp_path / "reg"
    rc = main(["tune", "builtin:iris", "--registry", str(reg), "--no-progress", *args])
    err = capsys.readouterr().err
    assert rc == 1 and words in err and err.startswith("error: ")
    assert not reg.exists()


def test_python_api_refuses_bad_input() -> None:
    with pytest.raises(ConfigError, match="trials must be"):
        fulcrum.tune("builtin:iris", trials=0)
    with pytest.raises(ConfigError, match="Unknown backend 'spark'"):
        fulcrum.tune("builtin:iris", backend="spark")
    with pytest.raises(ConfigError, match="time_limit"):
        fulcrum.tune("builtin:iris", time_limit=float("nan"))
    assert "tune" in fulcrum.__all__


def test_the_default_median_pruner_prunes_a_real_lightgbm_search(tmp_path) -> None:
    pkg = fulcrum.tune("builtin:diabetes", model="lightgbm", trials=12, registry=tmp_path / "reg", progress=False,
                       measure_inference=False)
    s = pkg.manifest["tuning"]
    assert s["pruner"] == "median" and s["pruned"] >= 1 and s["complete"] + s["pruned"] + s["failed"] == 12
    for h in s["history"]:
        if h["state"] == "pruned":  # stopped after the second fold or later, before the last of the 5
            assert 2 <= h["steps"] < 5 and h["value"] is None
        elif h["state"] == "complete":
            assert h["steps"] == 5


def test_a_spent_time_limit_stops_the_search_and_says_so(tmp_path) -> None:
    pkg = fulcrum.tune("builtin:iris", model="linear", trials=50, time_limit=0.001, registry=tmp_path / "reg",
                       progress=False, measure_inference=False)
    s = pkg.manifest["tuning"]
    assert s["trials"] == 1 < s["trials_requested"] and s["stopped_by"] == "time limit"
    assert s["best_trial"] == 0 and pkg.manifest["config"]["l2"] == pytest.approx(s["best_params"]["l2"])
