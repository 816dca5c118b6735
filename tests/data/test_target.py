from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fulcrum.data import LabelCodec, check_target, infer_task
from fulcrum.errors import DataError, NotFittedError


def test_label_codec_strings():
    codec = LabelCodec().fit(pd.Series(["dog", "cat", None, "dog", "bird"]))
    assert codec.classes_ == ["bird", "cat", "dog"] and codec.n_classes_ == 3
    codes = codec.encode(["dog", "bird", "cat"])
    assert codes.dtype == np.int64 and codes.tolist() == [2, 0, 1]
    assert codec.decode(np.array([1, 2])).tolist() == ["cat", "dog"]


def test_label_codec_numbers_are_plain_ints():
    codec = LabelCodec().fit(pd.Series([3.0, 1.0, np.nan, 2.0]))  # float column from a CSV with gaps
    assert codec.classes_ == [1, 2, 3] and all(type(c) is int for c in codec.classes_)
    assert codec.encode(pd.Series([2, 3.0])).tolist() == [1, 2]
    assert codec.decode([0, 2]).tolist() == [1, 3]
    assert json.loads(json.dumps(codec.to_dict())) == {"classes": [1, 2, 3]}


def test_label_codec_errors_and_round_trip():
    codec = LabelCodec()
    with pytest.raises(NotFittedError, match="call fit"):
        codec.encode(["a"])
    codec.fit(["no", "yes"])
    with pytest.raises(DataError, match=r"label\(s\) \['maybe'\] not seen"):
        codec.encode(["yes", "maybe"])
    with pytest.raises(DataError, match="missing label at row 1"):
        codec.encode(["yes", None])
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        codec.decode([2])
    again = LabelCodec.from_dict(json.loads(json.dumps(codec.to_dict())))
    assert again.classes_ == ["no", "yes"] and again.encode(["yes"]).tolist() == [1]
    with pytest.raises(DataError, match="non-empty 'classes'"):
        LabelCodec.from_dict({"classes": []})


@pytest.mark.parametrize(
    ("values", "task"),
    [
        (["a", "b", "a"], "classification"),
        ([True, False, True], "classification"),
        ([0, 1, 1, 0, 1, 0], "classification"),
        ([1.0, 2.0, 1.0, 2.0, np.nan], "classification"),
        ([0.5, 1.2, 3.3, 0.1], "regression"),
        (list(range(10)), "regression"),  # every value distinct: a count, not classes
        (list(range(30)) * 2, "regression"),  # more than 20 distinct values
    ],
)
def test_infer_task(values, task):
    assert infer_task(pd.Series(values)) == task


def test_check_target_drops_missing_rows():
    df = pd.DataFrame({"x": [1, 2, 3, 4], "y": ["a", None, "b", "a"]})
    clean, dropped = check_target(df, "y", "classification")
    assert dropped == 1 and clean["x"].tolist() == [1, 3, 4] and clean.index.tolist() == [0, 1, 2]


def test_check_target_regression_becomes_float():
    df = pd.DataFrame({"y": pd.Series(["1.5", "2", None], dtype=object)})
    clean, dropped = check_target(df, "y", "regression")
    assert dropped == 1 and clean["y"].dtype == np.float64 and clean["y"].tolist() == [1.5, 2.0]


def test_check_target_errors():
    df = pd.DataFrame({"price": [1.0, 2.0], "kind": ["x", "x"], "none": [None, None], "txt": ["a", "b"]})
    with pytest.raises(DataError, match="'prise' is not in the data. Did you mean 'price'.*'kind'"):
        check_target(df, "prise", "auto")
    with pytest.raises(DataError, match="needs at least two classes; found only 'x'"):
        check_target(df, "kind", "classification")
    with pytest.raises(DataError, match="all 2 are missing"):
        check_target(df, "none", "auto")
    with pytest.raises(DataError, match="non-numeric value 'a'"):
        check_target(df, "txt", "regression")
    with pytest.raises(DataError, match="infinite"):
        check_target(pd.DataFrame({"y": [1.0, np.inf]}), "y", "regression")
