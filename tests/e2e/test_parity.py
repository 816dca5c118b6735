"""The classic example: y = 2x. Coefficient 2.00, intercept 0.00, predicts 12, 14, 16."""

from __future__ import annotations

from pathlib import Path

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
    np.testing.assert_allclose(pd.read_csv(tmp_path / "out.csv")["prediction"], [12, 14, 16], atol=1e-6)


def test_from_python_train_and_load():
    df = pd.DataFrame({"x": [r[0] for r in X], "y": Y})
    pkg = fulcrum.train(df, target="y", model="linear", task="regression", name="line", progress=False)
    d = pkg.manifest["model"]["describe"]
    assert f"{d['coefficients']['x']:.2f}" == "2.00" and f"{d['intercept']:.2f}" in ("0.00", "-0.00")
    pred = fulcrum.load("line").predict(pd.DataFrame({"x": [6, 7, 8]}))
    np.testing.assert_allclose(pred["prediction"], [12, 14, 16], atol=1e-6)


def test_scikit_learn_style_estimator():
    est = fulcrum.FulcrumRegressor(model="linear")
    assert est.fit(X, Y) is est
    # linear models are fitted and applied in float64: exact up to double rounding
    assert est.coef_ == pytest.approx([2.0], abs=1e-9) and est.intercept_ == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(est.predict([[6], [7], [8]]), [12, 14, 16], atol=1e-9)
    assert est.n_features_in_ == 1


def _readme_estimator_lines() -> list[tuple[str, str | None]]:
    """(code, expected repr from its trailing comment) for the README's scikit-learn style lines."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    out = []
    for line in readme.splitlines():
        if not (line.startswith("est = ") or line.startswith("est.")) or "save(" in line:
            continue
        code, _, comment = line.partition("#")
        expected = comment.strip() if comment.strip().startswith(("(", "array")) else None
        out.append((code.strip(), expected))
    return out


def test_readme_estimator_example_prints_what_the_readme_says():
    lines = _readme_estimator_lines()
    assert len([e for _, e in lines if e]) >= 2, lines
    env: dict = {"fulcrum": fulcrum}
    for code, expected in lines:
        if expected is None:
            exec(code, env)
        else:
            assert repr(eval(code, env)) == expected, code


def test_saved_estimator_predicts_lists_like_the_estimator(tmp_path):
    est = fulcrum.FulcrumRegressor(model="linear").fit(X, Y)
    reg = fulcrum.Registry(tmp_path / "reg")
    est.save("line", registry=reg)
    pred = fulcrum.load("line", registry=reg)
    want = est.predict([[6], [7], [8]])
    for rows in ([[6], [7], [8]], np.array([[6], [7], [8]]), [(6,), (7,), (8,)], np.array([6, 7, 8])):
        got = pred.predict(rows)
        assert list(got.columns) == ["prediction"]
        np.testing.assert_allclose(got["prediction"], want, rtol=1e-6)
    np.testing.assert_allclose(pred.predict_output([[6]]), want[:1], rtol=1e-6)
