"""fulcrum tune --backend ray: Ray Tune (OptunaSearch over the documented space + ASHA) finds a best trial that
becomes a registered package with the study's summary and the search plot, as the local backend does."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from fulcrum.artifact import ModelPackage, Registry
from fulcrum.cli._main import main
from fulcrum.tasks.tabular._tune import SPACES

pytestmark = pytest.mark.ray


def test_tune_on_ray_registers_the_best_trial_with_summary_and_plot(ray_cluster, blobs_csv, tmp_path):
    reg = tmp_path / "reg"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["tune", str(blobs_csv), "--target", "label", "--model", "linear", "--trials", "5", "--folds", "3",
                   "--backend", "ray", "--registry", str(reg), "--json"])
    assert rc == 0
    shown = json.loads(out.getvalue())
    pkg = Registry(reg).load("blobs")
    ModelPackage.load(pkg.path, verify=True)
    s = pkg.manifest["tuning"]
    assert s == shown["tuning"]
    assert s["backend"] == "ray" and s["pruner"] == "asha" and s["engine"].startswith("ray tune")
    assert s["trials"] == 5 == len(s["history"]) and s["complete"] + s["pruned"] + s["failed"] == 5
    # every trial drew from the documented space (l2 in [1e-4, 1e3]); trial 0 is the defaults (l2=1)
    lo, hi = SPACES["linear"]["l2"][1:3]
    assert all(lo <= h["params"]["l2"] <= hi for h in s["history"])
    assert s["baseline"]["params"]["l2"] == pytest.approx(1.0)
    done = [h for h in s["history"] if h["state"] == "complete"]
    best = max(done, key=lambda h: h["value"])
    assert s["best_trial"] == best["number"] and s["best_value"] == pytest.approx(best["value"])
    assert all(h["steps"] == 3 for h in done)  # one report per fold, the running CV mean
    # the package trained the best trial's configuration, and carries the plot of the search
    assert pkg.manifest["config"]["l2"] == pytest.approx(s["best_params"]["l2"])
    assert pkg.read_bytes("tuning/search.png")[:8] == b"\x89PNG\r\n\x1a\n"
