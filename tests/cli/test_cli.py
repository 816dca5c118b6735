"""The CLI driven as a user drives it: files in, files and messages out, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from fulcrum.cli import main


def fulcrum(*argv, capsys=None):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr() if capsys else None
    return rc, out


@pytest.fixture
def iris_csv(tmp_path):
    from fulcrum.data import read_table

    df = read_table("builtin:iris")
    path = tmp_path / "iris.csv"
    df.to_csv(path, index=False)
    return path


def test_datasets_lists_builtins(capsys):
    rc, out = fulcrum("datasets", capsys=capsys)
    assert rc == 0
    for name in ("iris", "wine", "breast_cancer", "diabetes", "digits", "penguins"):
        assert f"builtin:{name}" in out.out


def test_train_models_predict_evaluate_promote(iris_csv, tmp_path, capsys):
    rc, out = fulcrum("train", iris_csv, "--target", "target", "--model", "linear", "--no-progress", capsys=capsys)
    assert rc == 0, out.err
    assert "package iris@1" in out.out and "accuracy=" in out.out

    rc, out = fulcrum("models", capsys=capsys)
    assert rc == 0 and "iris" in out.out and "classification" in out.out and "accuracy=" in out.out

    rows = pd.read_csv(iris_csv).assign(notes="x")  # still holds the target, plus a column the model never saw
    rows.to_csv(tmp_path / "in.csv", index=False)
    rc, out = fulcrum("predict", "iris", tmp_path / "in.csv", "-o", tmp_path / "pred.csv", "--no-progress", capsys=capsys)
    assert rc == 0, out.err
    assert "ignored 1 column" in out.err and "notes" in out.err
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert len(pred) == len(rows)
    assert set(pred["prediction"]) <= {"setosa", "versicolor", "virginica"}
    probs = pred[[c for c in pred.columns if c.startswith("proba_")]]
    assert probs.shape[1] == 3 and (probs.sum(axis=1) - 1).abs().max() < 1e-5
    assert (pred["prediction"] == rows["target"]).mean() > 0.9

    rc, out = fulcrum("evaluate", "iris@1", iris_csv, "--json", capsys=capsys)
    assert rc == 0
    assert json.loads(out.out)["accuracy"] > 0.9

    rc, out = fulcrum("promote", "iris@1", "--alias", "production", capsys=capsys)
    assert rc == 0 and "iris@production -> version 1" in out.out
    rc, out = fulcrum("predict", "iris@production", tmp_path / "in.csv", "-o", tmp_path / "p.parquet", "--no-progress", capsys=capsys)
    assert rc == 0 and len(pd.read_parquet(tmp_path / "p.parquet")) == len(rows)


def test_config_file_and_set(iris_csv, tmp_path, capsys):
    cfg = tmp_path / "train.toml"
    cfg.write_text('target = "target"\nmodel = "mlp"\nepochs = 3\n')
    rc, out = fulcrum("train", iris_csv, "--config", cfg, "--set", "hidden_sizes=[8]", "--json", capsys=capsys)
    assert rc == 0, out.err
    res = json.loads(out.out)
    assert res["model"]["family"] == "mlp" and res["model"]["args"]["hidden_sizes"] == [8]


def test_builtin_without_target_uses_its_target(capsys):
    rc, out = fulcrum("train", "builtin:wine", "--model", "linear", "--json", capsys=capsys)
    assert rc == 0, out.err
    assert json.loads(out.out)["ref"] == "wine@1"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "nope.csv", "--target", "y"], "does not exist"),
        (["train", "{csv}", "--target", "species"], "species"),
        (["train", "{csv}", "--target", "target", "--set", "epoch=3"], "Did you mean 'epochs'"),
        (["train", "{csv}", "--target", "target", "--name", "../x"], "name"),
        (["predict", "ghost", "{csv}", "-o", "{tmp}/o.csv"], "ghost"),
        (["promote", "ghost@1", "--alias", "production"], "ghost"),
    ],
)
def test_bad_input_exits_nonzero_with_a_message(argv, message, iris_csv, tmp_path, capsys):
    argv = [a.format(csv=iris_csv, tmp=tmp_path) for a in argv]
    rc, out = fulcrum(*argv, capsys=capsys)
    assert rc == 1
    assert out.err.startswith("error: ") and message in out.err
    assert not (tmp_path / "o.csv").exists()


def test_console_entry_point_exit_code(tmp_path):
    env = {**os.environ, "FULCRUM_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "fulcrum", "models", "ghost"], capture_output=True, text=True, env=env)
    assert proc.returncode == 1 and "error:" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "fulcrum", "--version"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and proc.stdout.startswith("fulcrum ")
