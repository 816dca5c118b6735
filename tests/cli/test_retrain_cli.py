"""`fulcrum retrain` decides on quality, not noise: feedback that invents a class is skipped, a label-set
change needs --allow-new-classes, the comparison is the primary metric on the champion's held-out rows
with an interval, and the alias only moves through the promotion policy (old -> new, never worse)."""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
from datetime import datetime, timezone

import pandas as pd
import pytest

import fulcrum
from fulcrum.artifact import Registry
from fulcrum.cli import main
from fulcrum.data import read_table
from fulcrum.serve import FeedbackStore

CLASSES = ["Adelie", "Chinstrap", "Gentoo"]


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def copy_registry(src, home):
    """A private copy of a registry trained once for the module (the test's own FULCRUM_HOME)."""
    shutil.copytree(src, home / "registry")
    return Registry(home / "registry")


@pytest.fixture(scope="module")
def penguins_src(tmp_path_factory):
    root = tmp_path_factory.mktemp("penguins-src") / "registry"
    fulcrum.train("builtin:penguins", model="linear", registry=Registry(root), progress=False, measure_inference=False)
    return root


@pytest.fixture
def penguins(penguins_src, fulcrum_home):
    """penguins@1 (logistic regression, 3 classes) with production -> 1, in this test's registry."""
    reg = copy_registry(penguins_src, fulcrum_home)
    reg.set_alias("penguins@1", "production")
    return reg


def served(reg, name, request_id, rows: pd.DataFrame, version=1):
    """Record a served request (inputs and predictions) as the server does."""
    X = rows.drop(columns=[reg.load(f"{name}@{version}").manifest["task"]["target"]])
    preds = fulcrum.load(f"{name}@{version}").predict(X)
    with FeedbackStore(reg) as store:
        store.record(name, version, request_id, X.to_dict("records"), preds.to_dict("records"))


def feedback(reg, name, request_id, truths):
    """Ground truth through the store's API."""
    with FeedbackStore(reg) as store:
        store.add_feedback(name, request_id, truths)


def old_store_feedback(reg, name, request_id, truths):
    """Feedback as a store of an older Fulcrum kept it: written without any check (today's store refuses
    an unknown label at the door, but rows stored before that fix are still there)."""
    with FeedbackStore(reg) as store:
        path = getattr(store, "path", reg.index_path)
    now = datetime.now(timezone.utc).isoformat()
    with contextlib.closing(sqlite3.connect(str(path))) as conn, conn:
        conn.executemany("INSERT OR REPLACE INTO feedback (model, request_id, row, truth_json, created) VALUES (?, ?, ?, ?, ?)",
                         [(name, request_id, i, json.dumps(t), now) for i, t in enumerate(truths)])


def penguin_rows(n, seed):
    return read_table("builtin:penguins").dropna().sample(n, random_state=seed).reset_index(drop=True)


def test_feedback_that_invents_a_class_is_skipped_and_production_stays(penguins, capsys):
    rows = penguin_rows(3, 0)
    served(penguins, "penguins", "emperor", rows)
    old_store_feedback(penguins, "penguins", "emperor", ["Emperor"] * 3)

    rc, out, err = run(capsys, "retrain", "penguins@production", "--alias", "production")
    assert rc == 1
    assert "3 feedback row(s)" in err and "'Emperor'" in err and "Adelie, Chinstrap, Gentoo" in err
    assert "--allow-new-classes" in err
    assert [r["version"] for r in Registry().list()] == [1]  # nothing trained
    assert Registry().aliases("penguins") == {"production": 1}


def test_unknown_labels_are_skipped_the_rest_is_learned_and_the_move_is_reported(penguins, capsys):
    bogus, good = penguin_rows(3, 0), penguin_rows(40, 1)
    served(penguins, "penguins", "emperor", bogus)
    old_store_feedback(penguins, "penguins", "emperor", ["Emperor"] * 3)
    served(penguins, "penguins", "good", good)
    feedback(penguins, "penguins", "good", good["species"].tolist())

    rc, out, err = run(capsys, "retrain", "penguins@production", "--alias", "production")
    assert rc == 0, err
    assert "skipped 3 feedback row(s)" in out and "'Emperor' x3" in out and "40 feedback row(s)" in out
    reg = Registry()
    assert reg.load("penguins@2").manifest["task"]["labels"] == CLASSES  # no invented class
    assert reg.load("penguins@production").manifest["task"]["labels"] == CLASSES
    # the decision: primary metric on the champion's held-out rows, with its interval, old -> new
    assert "accuracy" in out and "95% CI" in out and "held-out test rows of penguins@1" in out
    line = next(x for x in out.splitlines() if x.startswith("penguins@production"))
    assert "version 1" in line and "version 2" in line and "95% CI" in line


def test_allow_new_classes_trains_them_and_promote_still_needs_force(penguins, capsys):
    served(penguins, "penguins", "emperor", penguin_rows(3, 0))
    old_store_feedback(penguins, "penguins", "emperor", ["Emperor"] * 3)

    rc, out, err = run(capsys, "retrain", "penguins", "--allow-new-classes", "--json")
    assert rc == 0, err
    report = json.loads(out)
    assert report["labels_changed"] == {"added": ["Emperor"], "removed": []}
    assert "Emperor" in Registry().load("penguins@2").manifest["task"]["labels"]

    rc, out, err = run(capsys, "promote", "penguins@2", "--alias", "production")
    assert rc == 1 and "class labels change" in err and "'Emperor'" in err and "--force" in err
    assert "penguins@production stays at version 1, not moved to version 2" in out
    assert Registry().aliases("penguins") == {"production": 1}
    rc, out, err = run(capsys, "promote", "penguins@2", "--alias", "production", "--force")
    assert rc == 0, err
    assert "penguins@production -> version 2 (was version 1)" in out and "FORCED" in out
    assert Registry().aliases("penguins") == {"production": 2}


def test_a_new_class_in_the_data_source_is_refused(tmp_path, capsys):
    path = tmp_path / "birds.csv"
    data = read_table("builtin:penguins")
    data.to_csv(path, index=False)
    fulcrum.train(str(path), target="species", model="linear", progress=False, measure_inference=False)
    data.loc[data.index[:12], "species"] = "Emperor"  # the source gained a class since training
    data.to_csv(path, index=False)

    rc, out, err = run(capsys, "retrain", "birds", "--force")
    assert rc == 1
    assert "would change its classes" in err and "adds 'Emperor'" in err and "--allow-new-classes" in err
    assert [r["version"] for r in Registry().list()] == [1]


@pytest.fixture(scope="module")
def diabetes_src(tmp_path_factory):
    root = tmp_path_factory.mktemp("diabetes-src") / "registry"
    fulcrum.train("builtin:diabetes", model="linear", registry=Registry(root), progress=False, measure_inference=False)
    return root


def test_regression_decides_on_r2_with_an_interval_and_refuses_a_worse_version(diabetes_src, fulcrum_home, capsys):
    reg = copy_registry(diabetes_src, fulcrum_home)
    reg.set_alias("diabetes@1", "production")
    rows = pd.concat([read_table("builtin:diabetes")] * 2, ignore_index=True)
    served(reg, "diabetes", "wrong", rows)
    feedback(reg, "diabetes", "wrong", (600.0 - rows["target"]).tolist())  # confidently wrong truths teach it badly
    served(reg, "diabetes", "text", rows.iloc[:1])
    old_store_feedback(reg, "diabetes", "text", ["n/a"])  # not a number: skipped, counted

    rc, out, err = run(capsys, "retrain", "diabetes", "--alias", "production", "--json")
    assert rc == 0, err
    report = json.loads(out)
    assert report["skipped_feedback"]["rows"] == 1 and report["skipped_feedback"]["reason"] == "not a finite number"
    d = report["decision"]
    assert d["metric"] == "r2" and d["rows"] == report["comparison"]["test"]["rows"]
    lo, hi = d["interval"]
    assert lo <= d["delta"] <= hi < 0 and d["worse"] is True
    assert d["old_value"] == pytest.approx(Registry().load("diabetes@1").manifest["metrics"]["test"]["r2"], abs=1e-6)
    assert report["not_worse"]["test"] is False
    assert report["alias"]["moved"] is False and report["alias"]["refused"] is True
    assert Registry().aliases("diabetes") == {"production": 1}

    rc, out, err = run(capsys, "retrain", "diabetes", "--alias", "production")  # the text report says it too
    assert rc == 0, err
    assert "diabetes@production stays at version 1, not moved to version 3" in out
    assert "fulcrum promote diabetes@3 --alias production --force" in out


def test_a_bad_max_drop_fails_before_anything_is_trained(penguins, capsys):
    rc, out, err = run(capsys, "retrain", "penguins", "--force", "--alias", "production", "--max-drop", "-1")
    assert rc == 1 and err.startswith("error: --max-drop") and ">= 0" in err
    assert [r["version"] for r in Registry().list()] == [1]
