"""Issue 8, item 13 end to end: penguins with unparsable cells (`n/a`, `42,1`, `?`) in bill_length_mm,
saved as a semicolon-separated `.csv`. Training reads it right, says what it did, keeps the column
numeric; prediction reads those tokens as missing on both engines. (`n/a` is one of the CSV
reader's own missing-value markers, so only `42,1` and `?` are left for the numeric rule.)"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import fulcrum
from fulcrum.cli import main


@pytest.fixture
def dirty_penguins(tmp_path):
    from fulcrum.data import read_table

    df = read_table("builtin:penguins")
    df["bill_length_mm"] = df["bill_length_mm"].astype(object)
    df.loc[10, "bill_length_mm"] = "n/a"
    df.loc[20, "bill_length_mm"] = "42,1"
    df.loc[30, "bill_length_mm"] = "?"
    path = tmp_path / "penguins.csv"
    df.to_csv(path, sep=";", index=False)
    return df, path


def test_dirty_numeric_column_and_semicolons(dirty_penguins, tmp_path, capsys, fulcrum_home):
    df, path = dirty_penguins
    rc = main(["train", str(path), "--target", "species", "--model", "linear", "--no-progress",
               "--set", "measure_inference=false"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "separated by ';' (semicolon)" in out.err
    notice = [line for line in out.err.splitlines() if "bill_length_mm" in line]
    assert notice and "2 cell(s)" in notice[0] and "'?'" in notice[0] and "'42,1'" in notice[0]
    pkg = fulcrum.Registry().load("penguins@1")
    kinds = {c["name"]: c["kind"] for c in pkg.manifest["inputs"]}
    assert kinds["bill_length_mm"] == "numeric"
    assert pkg.manifest["metrics"]["test"]["accuracy"] > 0.95

    rows = df.drop(columns=["species"]).iloc[5:35]
    new = tmp_path / "new.csv"
    rows.to_csv(new, index=False)
    assert main(["predict", "penguins", str(new), "-o", str(tmp_path / "p.csv"), "--no-progress"]) == 0
    capsys.readouterr()
    got = pd.read_csv(tmp_path / "p.csv")
    onnx, native = fulcrum.load("penguins"), fulcrum.load("penguins", engine="native")
    rows = pd.read_csv(new)  # as the file reads: 'n/a' is already missing, '42,1' and '?' are text
    assert {"42,1", "?"} <= set(rows["bill_length_mm"].dropna())
    clean = rows.replace({"42,1": np.nan, "?": np.nan})
    np.testing.assert_allclose(onnx.predict_output(rows), native.predict_output(rows), atol=1e-5)
    np.testing.assert_allclose(onnx.predict_output(rows), onnx.predict_output(clean), atol=1e-6)
    assert got["prediction"].tolist() == onnx.predict(clean)["prediction"].tolist()
    prep = json.loads((pkg.path / "preprocess.json").read_text())
    step = next(s for s in prep["columns"] if s["name"] == "bill_length_mm")
    assert step["na_tokens"] == ["42,1", "?"] and step["missing_indicator"] is True
