"""`fulcrum predict` and `fulcrum evaluate` as a new user meets them: output to stdout or JSON,
id columns passed through, a prediction column never mistaken for the truth, a labelled
confusion matrix and a count of the rows dropped for a missing target."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from fulcrum.cli import main


def cli(capsys, *argv):
    rc = main([str(a) for a in argv])
    return rc, capsys.readouterr()


@pytest.fixture
def trained(tmp_path, capsys):
    from fulcrum.data import read_table

    df = read_table("builtin:iris")
    df.insert(0, "flower_id", [f"f{i:03d}" for i in range(len(df))])
    path = tmp_path / "iris.csv"
    df.drop(columns=["flower_id"]).to_csv(path, index=False)
    rc, out = cli(capsys, "train", path, "--target", "target", "--model", "linear", "--no-progress",
                  "--set", "measure_inference=false")
    assert rc == 0, out.err
    rows = tmp_path / "rows.csv"
    df.to_csv(rows, index=False)  # with an id column and the truth, as users often have
    return df, rows


def test_predict_writes_csv_to_stdout_without_o(trained, capsys):
    df, rows = trained
    for extra in ([], ["-o", "-"]):
        rc, out = cli(capsys, "predict", "iris", rows, "--no-progress", *extra)
        assert rc == 0, out.err
        got = pd.read_csv(io.StringIO(out.out))
        assert len(got) == len(df) and "prediction" in got.columns
        assert "wrote 150 prediction(s)" in out.err  # messages go to stderr, stdout stays CSV


def test_prediction_column_is_never_the_target_name(trained, tmp_path, capsys):
    df, rows = trained
    rc, out = cli(capsys, "predict", "iris", rows, "-o", tmp_path / "p.csv", "--no-progress", "--keep", "target")
    assert rc == 0, out.err
    got = pd.read_csv(tmp_path / "p.csv")
    assert list(got.columns) == ["target", "prediction", "proba_setosa", "proba_versicolor", "proba_virginica"]
    assert got["target"].tolist() == df["target"].tolist()
    assert (got["prediction"] == got["target"]).mean() > 0.9


def test_json_output_and_keep_ids(trained, tmp_path, capsys):
    df, rows = trained
    out_path = tmp_path / "p.json"
    rc, out = cli(capsys, "predict", "iris", rows, "-o", out_path, "--keep", "flower_id", "--no-progress")
    assert rc == 0, out.err
    records = json.loads(out_path.read_text())
    assert [r["flower_id"] for r in records] == df["flower_id"].tolist()
    assert all(r["prediction"] in ("setosa", "versicolor", "virginica") for r in records)


def test_keep_unknown_or_clashing_column_is_one_clear_error(trained, tmp_path, capsys):
    _, rows = trained
    out_path = tmp_path / "p.csv"
    rc, out = cli(capsys, "predict", "iris", rows, "-o", out_path, "--keep", "flowr_id")
    assert rc == 1 and out.err.startswith("error: ") and "'flowr_id'" in out.err and "flower_id" in out.err
    assert not out_path.exists()
    clash = rows.with_name("clash.csv")
    pd.read_csv(rows).assign(prediction=1).to_csv(clash, index=False)
    rc, out = cli(capsys, "predict", "iris", clash, "-o", out_path, "--keep", "prediction")
    assert rc == 1 and "'prediction'" in out.err and not out_path.exists()


def test_evaluate_labels_the_confusion_matrix_and_counts_dropped_rows(trained, tmp_path, capsys):
    df, _ = trained
    labelled = df.drop(columns=["flower_id"]).astype({"target": object})
    labelled.loc[[3, 70, 140], "target"] = np.nan
    path = tmp_path / "eval.csv"
    labelled.to_csv(path, index=False)
    rc, out = cli(capsys, "evaluate", "iris", path)
    assert rc == 0, out.err
    text = out.out + out.err
    assert "dropped 3 row(s) with a missing target 'target'" in text
    assert "(147 rows)" in out.out
    lines = out.out.splitlines()
    head = next(i for i, line in enumerate(lines) if "confusion matrix" in line)
    assert lines[head + 1].split() == ["setosa", "versicolor", "virginica"]
    body = [lines[head + 2 + k].split() for k in range(3)]
    assert [r[0] for r in body] == ["setosa", "versicolor", "virginica"]
    assert sum(int(v) for r in body for v in r[1:]) == 147
    rc, out = cli(capsys, "evaluate", "iris", path, "--json")
    res = json.loads(out.out)
    assert res["n"] == 147 and res["dropped_missing_target"] == 3 and res["labels"] == ["setosa", "versicolor", "virginica"]
