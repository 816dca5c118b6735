from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fulcrum.data import kfold_indices, train_val_test_split
from fulcrum.errors import ConfigError, DataError


@pytest.fixture
def frame() -> pd.DataFrame:
    n = 200
    return pd.DataFrame({"i": np.arange(n), "y": ["a"] * 160 + ["b"] * 40})


def test_sizes_cover_all_rows_once(frame):
    train, val, test = train_val_test_split(frame, "y", task="classification", test_size=0.2, val_size=0.1, seed=0)
    assert (len(train), len(val), len(test)) == (140, 20, 40)
    ids = pd.concat([train["i"], val["i"], test["i"]])
    assert sorted(ids) == list(range(200))
    assert all(part.index.tolist() == list(range(len(part))) for part in (train, val, test))


def test_deterministic_for_a_seed(frame):
    a = train_val_test_split(frame, "y", task="classification", seed=3)
    b = train_val_test_split(frame, "y", task="classification", seed=3)
    c = train_val_test_split(frame, "y", task="classification", seed=4)
    for x, y in zip(a, b):
        pd.testing.assert_frame_equal(x, y)
    assert a[2]["i"].tolist() != c[2]["i"].tolist()


def test_stratified(frame):
    for seed in range(3):
        train, val, test = train_val_test_split(frame, "y", task="classification", test_size=0.2, val_size=0.2, seed=seed)
        assert (test["y"] == "b").sum() == 8 and (val["y"] == "b").sum() == 8 and (train["y"] == "b").sum() == 24


def test_tiny_data_gets_one_row_per_split():
    df = pd.DataFrame({"x": range(5), "y": [0.1, 0.2, 0.3, 0.4, 0.5]})
    train, val, test = train_val_test_split(df, "y", task="regression", test_size=0.1, val_size=0.1, seed=0)
    assert (len(train), len(val), len(test)) == (3, 1, 1)
    train, val, test = train_val_test_split(df, "y", task="regression", test_size=0.45, val_size=0.44, seed=0)
    assert len(train) >= 1 and len(val) >= 1 and len(test) >= 1 and len(train) + len(val) + len(test) == 5


def test_falls_back_when_a_class_is_too_small():
    df = pd.DataFrame({"x": range(12), "y": ["a"] * 11 + ["b"]})  # one 'b': cannot stratify
    train, val, test = train_val_test_split(df, "y", task="classification", seed=0)
    assert len(train) + len(val) + len(test) == 12


def test_too_few_rows_after_dropping_missing_targets():
    df = pd.DataFrame({"x": range(6), "y": [1, 2, None, 4, 5, None]})
    with pytest.raises(DataError, match="needs at least 5 rows with a target, got 4"):
        train_val_test_split(df, "y", task="regression", seed=0)


def test_bad_sizes_and_target(frame):
    with pytest.raises(ConfigError, match="leaves no rows"):
        train_val_test_split(frame, "y", task="classification", test_size=0.5, val_size=0.5)
    with pytest.raises(ConfigError, match="test_size"):
        train_val_test_split(frame, "y", task="classification", test_size=0)
    with pytest.raises(DataError, match="Did you mean 'y'"):
        train_val_test_split(frame, "Y", task="classification")


def test_kfold_stratified_partition():
    y = np.array(["a"] * 30 + ["b"] * 10)
    folds = kfold_indices(y, 5, task="classification", seed=0)
    assert len(folds) == 5
    vals = np.concatenate([v for _, v in folds])
    assert sorted(vals.tolist()) == list(range(40))
    for tr, va in folds:
        assert set(tr).isdisjoint(va) and len(tr) + len(va) == 40
        assert (y[va] == "b").sum() == 2
    again = kfold_indices(y, 5, task="classification", seed=0)
    assert all((a[1] == b[1]).all() for a, b in zip(folds, again))


def test_kfold_falls_back_without_warning_and_validates():
    y = pd.Series(["a"] * 9 + ["b"])  # 'b' has fewer rows than folds
    folds = kfold_indices(y, 3, task="classification", seed=0)
    assert sorted(np.concatenate([v for _, v in folds]).tolist()) == list(range(10))
    assert len(kfold_indices(np.linspace(0, 1, 10), 2, task="regression", seed=0)) == 2
    with pytest.raises(ConfigError, match=">= 2"):
        kfold_indices(y, 1, task="classification")
    with pytest.raises(DataError, match="at least 20 rows, got 10"):
        kfold_indices(y, 20, task="classification")
