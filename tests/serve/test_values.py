"""One value parser for every entry point: the friendly route, v2 and the CLI (through the
Preprocessor / ONNX input encoder) accept and refuse the same cells (fulcrum.data._coerce).

Numbers are JSON numbers or plain decimal strings; booleans are never numbers."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from .conftest import PENGUIN_ROW, v2_request

# cells a numeric column must refuse, on every route
BAD_NUMBERS = ["5_1", "0x10", "nan", "inf", "Infinity", "1,5", "5.1x", "１２", "true", True, False]
# cells it must accept, with the number they mean (None = missing)
GOOD_NUMBERS = [(45.1, 45.1), (45, 45.0), ("45.1", 45.1), (" -4.5e1 ", -45.0), ("+45", 45.0), (".5", 0.5), (None, None)]


def _friendly(c, value):
    return c.post("/v1/models/penguins/predict", json={"records": [{**PENGUIN_ROW, "bill_length_mm": value}]})


def _v2(c, value):
    body = v2_request(PENGUIN_ROW)
    for inp in body["inputs"]:
        if inp["name"] == "bill_length_mm":
            inp["data"] = [value]
    return c.post("/v2/models/penguins/infer", json=body)


@pytest.mark.parametrize("route", [_friendly, _v2], ids=["friendly", "v2"])
def test_numeric_cells_follow_one_rule_on_both_routes(serve, route):
    srv = serve()
    with srv.client() as c:
        for bad in BAD_NUMBERS:
            r = route(c, bad)
            assert r.status_code == 422, (bad, r.status_code, r.text)
        r = route(c, True)
        assert "boolean, not a number" in r.text
        r = route(c, "5_1")
        assert "'5_1' is not a number" in r.text
        reference = _friendly(c, 45.1).json()
        for good, number in GOOD_NUMBERS:
            r = route(c, good)
            assert r.status_code == 200, (good, r.text)
            same = _friendly(c, number)
            assert same.status_code == 200
            key = "probabilities" if route is _friendly else "outputs"
            assert r.json()[key] == (same.json()[key] if route is _friendly else _v2(c, number).json()[key])
        assert _friendly(c, "45.1").json()["probabilities"] == reference["probabilities"]


def test_friendly_route_refuses_5_1_and_true_but_takes_a_decimal_string(serve):
    srv = serve()
    with srv.client() as c:
        assert _friendly(c, "5_1").status_code == 422
        assert _friendly(c, True).status_code == 422
        assert _friendly(c, "5.1").status_code == 200
        assert _v2(c, "5_1").status_code == 422
        assert _v2(c, True).status_code == 422
        assert _v2(c, "5.1").status_code == 200


def test_openapi_documents_the_number_rule(serve):
    srv = serve()
    with srv.client() as c:
        doc = c.get("/openapi.json").json()
    record = next(v for k, v in doc["components"]["schemas"].items() if k.endswith("_Record"))
    prop = record["properties"]["bill_length_mm"]
    kinds = {alt.get("type") for alt in prop["anyOf"]}
    assert kinds == {"number", "string", "null"}
    pattern = next(alt["pattern"] for alt in prop["anyOf"] if alt.get("type") == "string")
    import re

    assert re.fullmatch(pattern, "-1.5e3") and not re.fullmatch(pattern, "5_1")


@pytest.fixture
def mixed(registry, tmp_path):
    """A small model with numeric, boolean and categorical inputs (linear: trains in a second)."""
    import fulcrum

    rng = np.random.default_rng(0)
    n = 120
    df = pd.DataFrame({"x": rng.normal(size=n).round(3), "flag": rng.integers(0, 2, n).astype(bool),
                       "color": rng.choice(["red", "blue", "3"], n)})
    df["y"] = np.where(df["x"] + 0.8 * df["flag"] > 0.3, "hi", "lo")
    fulcrum.train(df, target="y", name="mixed", model="linear", progress=False, registry=registry)
    return registry


ROW = {"x": 0.25, "flag": True, "color": "red"}
# (column, cell, accepted?) — one table for the CLI, the friendly route and v2
CASES = [
    ("x", 0.25, True), ("x", "0.25", True), ("x", " 1e-1 ", True), ("x", None, True), ("x", 3, True),
    ("x", "5_1", False), ("x", True, False), ("x", "0x10", False), ("x", "nan", False), ("x", "inf", False),
    ("flag", True, True), ("flag", False, True), ("flag", "yes", True), ("flag", 0, True), ("flag", None, True),
    ("flag", "maybe", False), ("flag", 2, False), ("flag", 0.5, False),
    ("color", "blue", True), ("color", 3, True), ("color", None, True),
]


def _cli_predict(registry, tmp_path, capsys, row, name):
    from fulcrum.cli import main

    path = tmp_path / f"{name}.jsonl"
    path.write_text(json.dumps(row) + "\n")
    out = tmp_path / f"{name}.out.csv"
    rc = main(["predict", "mixed", str(path), "-o", str(out), "--no-progress", "--registry", str(registry.root)])
    captured = capsys.readouterr()
    return rc, captured.err, (pd.read_csv(out) if rc == 0 else None)


def test_cli_friendly_and_v2_agree_cell_by_cell(mixed, serve, tmp_path, capsys):
    srv = serve(["mixed"])
    columns = srv.state.models.default("mixed").columns
    with srv.client() as c:
        for i, (col, cell, ok) in enumerate(CASES):
            row = {**ROW, col: cell}
            rc, err, frame = _cli_predict(mixed, tmp_path, capsys, row, f"case{i}")
            friendly = c.post("/v1/models/mixed/predict", json={"records": [row]})
            v2 = c.post("/v2/models/mixed/infer", json={"inputs": [
                {"name": k, "datatype": {"numeric": "FP64", "boolean": "BOOL"}.get(kind, "BYTES"), "shape": [1],
                 "data": [row[k]]} for k, kind in ((c_["name"], c_["kind"]) for c_ in columns)]})
            case = (col, cell)
            if ok:
                assert rc == 0, (case, err)
                assert friendly.status_code == 200, (case, friendly.text)
                assert v2.status_code == 200, (case, v2.text)
                probs = [p[k] for p in friendly.json()["probabilities"] for k in ("hi", "lo")]
                v2_probs = next(o["data"] for o in v2.json()["outputs"] if o["name"] == "probabilities")
                cli_probs = [frame.filter(like="hi").iloc[0, -1], frame.filter(like="lo").iloc[0, -1]]
                np.testing.assert_allclose(probs, v2_probs, atol=1e-6, err_msg=str(case))
                np.testing.assert_allclose(probs, cli_probs, atol=1e-5, err_msg=str(case))
            else:
                assert rc == 1 and err.startswith("error:") and f"'{col}'" in err, (case, err)
                assert len(err.strip().splitlines()) == 1, (case, err)
                assert friendly.status_code == 422, (case, friendly.text)
                assert v2.status_code == 422, (case, v2.text)


def test_cli_predict_csv_with_5_1_is_one_error_line(mixed, tmp_path, capsys):
    from fulcrum.cli import main

    path = tmp_path / "in.csv"
    path.write_text("x,flag,color\n0.5,true,red\n5_1,false,blue\n")
    out = tmp_path / "out.csv"
    rc = main(["predict", "mixed", str(path), "-o", str(out), "--no-progress", "--registry", str(mixed.root)])
    err = capsys.readouterr().err
    assert rc == 1 and not out.exists()
    assert err.startswith("error:") and "'x'" in err and "'5_1'" in err and "row 1" in err
    path.write_text("x,flag,color\ntrue,true,red\nfalse,false,blue\n")  # a true/false column is not numeric
    rc = main(["predict", "mixed", str(path), "-o", str(out), "--no-progress", "--registry", str(mixed.root)])
    err = capsys.readouterr().err
    assert rc == 1 and "'x'" in err and "True" in err and not out.exists()


@pytest.fixture
def with_na_tokens(registry):
    """A model whose numeric column 'x' held a few texts in training ('?', 'n/a'): they are its
    na_tokens, read as missing values at training and prediction time."""
    import fulcrum

    rng = np.random.default_rng(1)
    n = 200
    x = rng.normal(size=n).round(3).astype(object)
    x[[3, 50]] = "?"
    x[[90]] = "n/a"
    df = pd.DataFrame({"x": x, "z": rng.normal(size=n).round(3)})
    df["y"] = np.where(pd.to_numeric(df["x"], errors="coerce").fillna(0) + 0.3 * df["z"] > 0, "hi", "lo")
    pkg = fulcrum.train(df, target="y", name="natok", model="linear", progress=False, registry=registry)
    spec = next(c for c in pkg.manifest["schema"]["columns"] if c["name"] == "x")
    assert spec["kind"] == "numeric" and sorted(spec["na_tokens"]) == ["?", "n/a"]
    return registry


def test_na_tokens_are_missing_on_the_cli_and_both_routes(with_na_tokens, serve, tmp_path, capsys):
    """A cell holding one of a numeric column's na_tokens is a missing value for the CLI, the
    friendly route and v2 alike (one rule); other texts stay refused everywhere."""
    from fulcrum.cli import main

    srv = serve(["natok"])
    base = {"x": 0.4, "z": -0.2}

    def cli(row: dict, i: int) -> tuple[int, list[float] | None]:
        path = tmp_path / f"na{i}.jsonl"
        path.write_text(json.dumps(row) + "\n")
        out = tmp_path / f"na{i}.out.csv"
        rc = main(["predict", "natok", str(path), "-o", str(out), "--no-progress",
                   "--registry", str(with_na_tokens.root)])
        capsys.readouterr()
        if rc:
            return rc, None
        frame = pd.read_csv(out)
        return rc, [frame.filter(like="hi").iloc[0, -1], frame.filter(like="lo").iloc[0, -1]]

    with srv.client() as c:
        def friendly(row: dict) -> Any:
            return c.post("/v1/models/natok/predict", json={"records": [row]})

        def v2(row: dict) -> Any:
            return c.post("/v2/models/natok/infer", json={"inputs": [
                {"name": k, "datatype": "FP64", "shape": [1], "data": [v]} for k, v in row.items()]})

        missing = friendly({**base, "x": None}).json()["probabilities"][0]
        assert missing != friendly(base).json()["probabilities"][0]  # a missing x changes the answer
        for i, cell in enumerate(["?", "n/a", " n/a "]):
            row = {**base, "x": cell}
            rc, cli_probs = cli(row, i)
            f, g = friendly(row), v2(row)
            assert rc == 0 and f.status_code == 200 and g.status_code == 200, (cell, f.text, g.text)
            probs = [f.json()["probabilities"][0][k] for k in ("hi", "lo")]
            assert probs == [missing[k] for k in ("hi", "lo")], cell  # the token is a missing value
            v2_probs = next(o["data"] for o in g.json()["outputs"] if o["name"] == "probabilities")
            np.testing.assert_allclose(probs, v2_probs, atol=1e-6, err_msg=cell)
            np.testing.assert_allclose(probs, cli_probs, atol=1e-5, err_msg=cell)
        for i, cell in enumerate(["??", "na", "5_1"]):  # not a token, not a number: refused on every route
            row = {**base, "x": cell}
            assert cli(row, 10 + i)[0] == 1, cell
            assert friendly(row).status_code == 422 and v2(row).status_code == 422, cell
        doc = c.get("/openapi.json").json()
    record = next(v for k, v in doc["components"]["schemas"].items() if k.endswith("_Record"))
    texts = next(alt for alt in record["properties"]["x"]["anyOf"] if alt.get("type") == "string")
    assert any(alt.get("enum") == ["?", "n/a"] for alt in texts["anyOf"])  # documented
    with srv.client() as c:
        inputs = c.get("/v2/models/natok").json()["inputs"]
    assert next(i for i in inputs if i["name"] == "x")["parameters"]["na_tokens"] == ["?", "n/a"]
