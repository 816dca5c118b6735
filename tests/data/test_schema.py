from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fulcrum.data import ColumnSpec, Schema, infer_schema
from fulcrum.errors import DataError, SchemaError

N = 30


@pytest.fixture
def mixed() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "user_id": rng.permutation(np.arange(1000, 1000 + N)),
            "row": np.arange(N),
            "uuid": [f"a1b2-{i:04x}" for i in range(N)],
            "age": rng.integers(18, 80, N).astype(float),
            "score": rng.permutation(np.arange(N)) * 3,  # unique ints, no id name, not monotone
            "subscribed": ["yes", "No"] * (N // 2),
            "active": [True, False, None] * (N // 3),
            "signup": pd.date_range("2020-01-01", periods=N, freq="7D").strftime("%Y-%m-%d").tolist(),
            "seen": pd.date_range("2021-01-01", periods=N, freq="D"),
            "color": ["red", "green", "blue", None, "red"] * (N // 5),
            "review": [f"this product was great value number {i}" for i in range(N)],
            "const": 7,
            "empty": [None] * N,
            "label": rng.integers(0, 2, N),
        }
    )


def test_infers_kinds_and_drops(mixed):
    s = infer_schema(mixed, target="label")
    kinds = {c.name: c.kind for c in s.columns}
    assert kinds == {
        "user_id": "identifier",
        "row": "identifier",
        "uuid": "identifier",
        "age": "numeric",
        "score": "numeric",
        "subscribed": "boolean",
        "active": "boolean",
        "signup": "datetime",
        "seen": "datetime",
        "color": "categorical",
        "review": "text",
        "const": "numeric",
        "empty": "categorical",
    }
    reasons = dict(s.dropped)
    assert set(reasons) == {"user_id", "row", "uuid", "const", "empty"}
    assert reasons["const"] == "constant: every value is 7"
    assert reasons["empty"] == "all values are missing"
    assert reasons["uuid"].startswith("identifier")
    assert s.feature_columns == ["age", "score", "subscribed", "active", "signup", "seen", "color", "review"]
    assert [c.name for c in s.features] == s.feature_columns
    assert s.target == "label" and "label" not in kinds
    assert s["age"].dtype == "float64" and s["seen"].dtype.startswith("datetime64")


def test_small_tables_keep_unique_strings_as_categories():
    df = pd.DataFrame({"name": ["ann", "bob", "cy", "dee", "eve"], "y": [0, 1, 0, 1, 0]})
    assert infer_schema(df, "y").features == [ColumnSpec("name", "categorical", df["name"].dtype.name)]


def test_numbers_stored_as_strings_are_numeric():
    df = pd.DataFrame({"x": pd.Series(["1.5", " 2", None, "3e2"], dtype=object), "y": [1, 2, 3, 4]})
    assert infer_schema(df, "y")["x"].kind == "numeric"


def test_zero_one_integers_stay_numeric():
    df = pd.DataFrame({"x": [0, 1, 1, 0], "z": [0.0, 1.0, 1.0, np.nan]})
    s = infer_schema(df, None)
    assert [c.kind for c in s.columns] == ["numeric", "numeric"] and s.target is None


def test_mixed_timezone_dates_are_datetime():
    df = pd.DataFrame({"t": ["2024-01-02T10:00:00+02:00", "2024-01-03T10:00:00Z", "2024-03-04", None]})
    assert infer_schema(df)["t"].kind == "datetime"


def test_unknown_target_suggests_and_lists_columns(mixed):
    with pytest.raises(DataError, match="Target column 'lable' is not in the data. Did you mean 'label'.*'age'"):
        infer_schema(mixed, target="lable")


def test_round_trip_through_json(mixed):
    s = infer_schema(mixed, target="label")
    again = Schema.from_dict(json.loads(json.dumps(s.to_dict())))
    assert again == s
    assert again.feature_columns == s.feature_columns


def test_from_dict_rejects_bad_input():
    with pytest.raises(SchemaError, match="unknown kind 'blob'"):
        Schema.from_dict({"columns": [{"name": "a", "kind": "blob", "dtype": "int64"}]})
    with pytest.raises(SchemaError, match="malformed"):
        Schema.from_dict({"cols": []})
