"""The classic example: y = 2x. Coefficient 2.00, intercept 0.00, predicts 12, 14, 16."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import fulcrum
from fulcrum.cli import main

X = [[1], [2], [3], [4], [5]]
Y = [2, 4, 6, 8, 10]


def test_from_csv_via_cli(tmp_path, capsys):
    csv = tmp_path / "line.csv"
    pd.DataFrame({"x": [r[0] for r in X], "y": Y}).to_csv(csv, index=False)
    assert main(["train", str(csv), "--target", "y", "--model", "linear", "--task", "regression", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "coefficients: x=2.00  intercept=0.00" in out
    new = tmp_path / "new.csv"
    pd.DataFrame({"x": [6, 7, 8]}).to_csv(new, index=False)
    assert main(["predict", "line", str(new), "-o", str(tmp_path / "out.csv"), "--no-progress"]) == 0
    np.testing.assert_allclose(pd.read_csv(tmp_path / "out.csv")["y"], [12, 14, 16], atol=1e-6)


def test_from_python_train_and_load():
    df = pd.DataFrame({"x": [r[0] for r in X], "y": Y})
    pkg = fulcrum.train(df, target="y", model="linear", task="regression", name="line", progress=False)
    d = pkg.manifest["model"]["describe"]
    assert f"{d['coefficients']['x']:.2f}" == "2.00" and f"{d['intercept']:.2f}" in ("0.00", "-0.00")
    pred = fulcrum.load("line").predict(pd.DataFrame({"x": [6, 7, 8]}))
    np.testing.assert_allclose(pred["y"], [12, 14, 16], atol=1e-6)


def test_scikit_learn_style_estimator():
    est = fulcrum.FulcrumRegressor(model="linear")
    assert est.fit(X, Y) is est
    # features are float32 after preparation: equal to 2 and 0 within float32 rounding
    assert est.coef_ == pytest.approx([2.0], abs=1e-6) and est.intercept_ == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(est.predict([[6], [7], [8]]), [12, 14, 16], atol=1e-6)
    assert est.n_features_in_ == 1
