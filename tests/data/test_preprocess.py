from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fulcrum.data import ColumnSpec, Preprocessor, Schema, infer_schema
from fulcrum.errors import ConfigError, DataError, NotFittedError, SchemaError


def schema_of(**kinds: str) -> Schema:
    return Schema(columns=[ColumnSpec(n, k, "object") for n, k in kinds.items()], target="y")  # type: ignore[arg-type]


def test_numeric_impute_indicator_and_standardize():
    train = pd.DataFrame({"a": [1.0, 2.0, np.nan, 5.0], "b": [1, 2, 3, 4]})
    pre = Preprocessor(schema_of(a="numeric", b="numeric")).fit(train)
    assert pre.feature_names_ == ["a", "a__missing", "b"]  # b had no missing values: no indicator
    assert pre.n_features_ == 3
    # a: median 2 -> [1, 2, 2, 5]; mean 2.5, population std 1.5
    x = pre.transform(pd.DataFrame({"a": [np.nan, 4.0], "b": [2.5, 0]}))
    assert x.dtype == np.float32 and x.shape == (2, 3)
    b_std = np.std([1, 2, 3, 4])
    np.testing.assert_allclose(x, [[(2 - 2.5) / 1.5, 1, 0], [(4 - 2.5) / 1.5, 0, (0 - 2.5) / b_std]], rtol=1e-6)


def test_constant_numeric_std_becomes_one():
    pre = Preprocessor(schema_of(a="numeric")).fit(pd.DataFrame({"a": [3, 3, 3]}))
    np.testing.assert_allclose(pre.transform(pd.DataFrame({"a": [5]})), [[2.0]])


def test_clip_outliers_uses_training_quantiles():
    train = pd.DataFrame({"a": np.arange(101, dtype=float)})
    pre = Preprocessor(schema_of(a="numeric"), clip_outliers=0.1).fit(train)
    step = pre.to_dict()["columns"][0]
    assert step["clip"] == [10.0, 90.0]
    assert step["mean"] == pytest.approx(50.0)
    x = pre.transform(pd.DataFrame({"a": [-1000.0, 1000.0]}))
    assert x[0, 0] == pytest.approx((10 - 50) / step["std"]) and x[1, 0] == pytest.approx((90 - 50) / step["std"])
    with pytest.raises(ConfigError, match=r"\(0, 0.5\)"):
        Preprocessor(schema_of(a="numeric"), clip_outliers=0.7)


def test_categorical_one_hot_missing_and_unknown():
    train = pd.DataFrame({"c": ["b", "a", "b", None, "c"]})
    pre = Preprocessor(schema_of(c="categorical")).fit(train)
    # most frequent first, ties by name
    assert pre.feature_names_ == ["c=b", "c=<missing>", "c=a", "c=c"]
    x = pre.transform(pd.DataFrame({"c": ["a", None, "zzz", "qq", "zzz"]}))
    np.testing.assert_array_equal(x, [[0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    assert pre.last_unknown_ == {"c": ["zzz", "qq"]}
    assert pre.last_unknown_counts_ == {"c": 3}
    pre.transform(pd.DataFrame({"c": ["a"]}))
    assert pre.last_unknown_ == {} and pre.last_unknown_counts_ == {}
    with pytest.raises(SchemaError, match=r"Column 'c' holds categories not seen in training: \['zzz'\].*on_unknown='ignore'"):
        pre.transform(pd.DataFrame({"c": ["zzz"]}), on_unknown="error")
    with pytest.raises(ConfigError, match="on_unknown"):
        pre.transform(pd.DataFrame({"c": ["a"]}), on_unknown="warn")  # type: ignore[arg-type]


def test_missing_category_unseen_in_training_is_all_zeros_not_unknown():
    pre = Preprocessor(schema_of(c="categorical")).fit(pd.DataFrame({"c": ["a", "b"]}))
    x = pre.transform(pd.DataFrame({"c": [None]}), on_unknown="error")
    np.testing.assert_array_equal(x, [[0, 0]])


def test_max_categories_keeps_most_frequent():
    train = pd.DataFrame({"c": ["x"] * 3 + ["y"] * 2 + ["z"]})
    pre = Preprocessor(schema_of(c="categorical"), max_categories=2).fit(train)
    assert pre.feature_names_ == ["c=x", "c=y"]
    np.testing.assert_array_equal(pre.transform(pd.DataFrame({"c": ["z"]})), [[0, 0]])
    with pytest.raises(ConfigError, match="max_categories"):
        Preprocessor(schema_of(c="categorical"), max_categories=0)


def test_boolean_and_mode_imputation():
    train = pd.DataFrame({"f": ["yes", "no", "Yes", None], "g": [True, False, False, None]})
    pre = Preprocessor(schema_of(f="boolean", g="boolean")).fit(train)
    x = pre.transform(pd.DataFrame({"f": [None, "n", "TRUE"], "g": [None, True, 0]}))
    np.testing.assert_array_equal(x, [[1, 0], [0, 1], [1, 0]])
    with pytest.raises(SchemaError, match="Column 'f' holds non-boolean value 'maybe' at row 1"):
        pre.transform(pd.DataFrame({"f": ["yes", "maybe"], "g": [True, True]}))


def test_datetime_parts():
    train = pd.DataFrame({"t": ["2024-01-01", "2024-03-01", None]})  # Mon, Fri
    pre = Preprocessor(schema_of(t="datetime")).fit(train)
    assert pre.feature_names_ == ["t__year", "t__month", "t__day_of_week", "t__day_of_year"]
    parts = pre.to_dict()["columns"][0]["parts"]
    # month: [1, 3] -> median 2 imputed -> [1, 3, 2]: mean 2
    assert parts["month"]["median"] == 2.0 and parts["month"]["mean"] == pytest.approx(2.0)
    assert parts["year"]["std"] == 1.0  # constant -> 1
    assert parts["day_of_year"]["median"] == pytest.approx((1 + 61) / 2)
    x = pre.transform(pd.DataFrame({"t": ["2024-01-03"]}))
    assert x[0, 1] == pytest.approx((1 - 2) / parts["month"]["std"])
    assert x[0, 2] == pytest.approx((2 - parts["day_of_week"]["mean"]) / parts["day_of_week"]["std"])
    with pytest.raises(SchemaError, match="non-datetime value 'soon' at row 0"):
        pre.transform(pd.DataFrame({"t": ["soon"]}))


def test_text_binary_bag_of_words():
    train = pd.DataFrame({"d": ["Good movie, GOOD fun", "bad movie", "fun times 2", None, "a 2"]})
    pre = Preprocessor(schema_of(d="text")).fit(train)
    # document frequency >= 2: movie 2, fun 2, 2 -> 2 ; ordered by df then token
    assert pre.feature_names_ == ["d__2", "d__fun", "d__movie"]
    x = pre.transform(pd.DataFrame({"d": ["Movie night 2", None]}))
    np.testing.assert_array_equal(x, [[1, 0, 1], [0, 0, 0]])


def test_missing_columns_named_and_extra_reported():
    pre = Preprocessor(schema_of(a="numeric", b="numeric", c="categorical")).fit(
        pd.DataFrame({"a": [1, 2], "b": [3, 4], "c": ["x", "y"]})
    )
    with pytest.raises(SchemaError, match=r"missing required column\(s\) \['a', 'c'\].*all of \['a', 'b', 'c'\]"):
        pre.transform(pd.DataFrame({"b": [1]}))
    pre.transform(pd.DataFrame({"a": [1], "b": [1], "c": ["x"], "y": [0], "note": ["hi"]}))
    assert pre.last_extra_ == ["note"]  # the target is expected, not extra


def test_bad_numeric_value_names_column_value_and_row():
    pre = Preprocessor(schema_of(age="numeric")).fit(pd.DataFrame({"age": [1, 2]}))
    bad = pd.DataFrame({"age": pd.Series([30, "", "abc"], dtype=object)})
    with pytest.raises(SchemaError, match=r"Column 'age' holds non-numeric value 'abc' at row 2 \(0-based\); numeric columns accept numbers"):
        pre.transform(bad)
    ok = pre.transform(pd.DataFrame({"age": pd.Series(["3", None, " 4.5 "], dtype=object)}))
    np.testing.assert_allclose(ok[:, 0], (np.array([3, 1.5, 4.5]) - 1.5) / 0.5)


def test_infinite_value_rejected():
    pre = Preprocessor(schema_of(a="numeric")).fit(pd.DataFrame({"a": [1.0, 2.0]}))
    with pytest.raises(DataError, match="Column 'a' holds an infinite value at row 1.*finite number.*empty"):
        pre.transform(pd.DataFrame({"a": [1.0, -np.inf]}))
    with pytest.raises(DataError, match="infinite"):
        Preprocessor(schema_of(a="numeric")).fit(pd.DataFrame({"a": [1.0, np.inf]}))


def test_not_fitted():
    pre = Preprocessor(schema_of(a="numeric"))
    for use in (lambda: pre.transform(pd.DataFrame({"a": [1]})), lambda: pre.feature_names_, pre.to_dict):
        with pytest.raises(NotFittedError, match="call fit"):
            use()


def test_identifier_cannot_be_a_feature():
    with pytest.raises(SchemaError, match="identifier"):
        Preprocessor(schema_of(a="identifier"))


def test_round_trip_gives_identical_transform():
    rng = np.random.default_rng(1)
    n = 40
    frame = pd.DataFrame(
        {
            "x": np.where(rng.random(n) < 0.2, np.nan, rng.normal(size=n)),
            "c": rng.choice(["a", "b", "c", None], n),
            "f": rng.choice(["yes", "no"], n),
            "t": pd.date_range("2023-01-01", periods=n, freq="5D").astype(str),
            "d": [" ".join(rng.choice(["red", "blue", "green", "fast", "slow"], 4)) for _ in range(n)],
            "id": np.arange(n),
            "y": rng.integers(0, 2, n),
        }
    )
    schema = infer_schema(frame, "y")
    assert {c.name: c.kind for c in schema.features} == {"x": "numeric", "c": "categorical", "f": "boolean", "t": "datetime", "d": "text"}
    pre = Preprocessor(schema, clip_outliers=0.05, max_categories=3).fit(frame)
    blob = json.dumps(pre.to_dict())
    again = Preprocessor.from_dict(json.loads(blob))
    assert again.feature_names_ == pre.feature_names_
    assert again.clip_outliers == 0.05 and again.max_categories == 3
    np.testing.assert_array_equal(again.transform(frame), pre.transform(frame))
    assert json.dumps(again.to_dict()) == blob


def test_from_dict_rejects_other_versions():
    with pytest.raises(SchemaError, match="format_version 99"):
        Preprocessor.from_dict({"format_version": 99})
