from __future__ import annotations

import pandas as pd
import pytest

from fulcrum.data import BuiltinDataset, builtin_info, infer_task, list_builtin, load_builtin
from fulcrum.errors import DataError

NAMES = ["bbc_news", "breast_cancer", "diabetes", "digits", "digits_images", "iris", "penguins", "tweets", "wine"]


def test_list_builtin():
    infos = list_builtin()
    assert [d.name for d in infos] == NAMES
    assert all(isinstance(d, BuiltinDataset) and d.description for d in infos)


@pytest.mark.parametrize("name", NAMES)
def test_every_builtin_loads_with_its_target(name):
    info = builtin_info(name)
    df = load_builtin(name)
    assert df.shape == (info.rows, info.columns)
    assert info.target in df.columns
    assert df[info.target].notna().all()
    assert infer_task(df[info.target]) == info.task
    assert list(df.columns).count(info.target) == 1


def test_readable_class_names():
    assert sorted(load_builtin("iris")["target"].unique()) == ["setosa", "versicolor", "virginica"]
    bc = load_builtin("breast_cancer")["target"]
    assert bc.value_counts().to_dict() == {"benign": 357, "malignant": 212}
    assert sorted(load_builtin("wine")["target"].unique()) == ["class_0", "class_1", "class_2"]
    assert sorted(load_builtin("digits")["target"].unique().tolist()) == list(range(10))
    assert load_builtin("diabetes")["target"].dtype.kind == "f"


def test_penguins_keeps_missing_values_and_strings():
    df = load_builtin("penguins")
    assert builtin_info("penguins").target == "species"
    assert df["sex"].isna().sum() == 11 and df["bill_length_mm"].isna().sum() == 2
    assert set(df["island"].unique()) == {"Biscoe", "Dream", "Torgersen"}
    assert pd.api.types.is_string_dtype(df["species"].dtype)


def test_loads_are_independent_copies():
    a = load_builtin("iris")
    a.loc[0, "target"] = "changed"
    assert load_builtin("iris").loc[0, "target"] == "setosa"


def test_unknown_builtin():
    with pytest.raises(DataError, match="Did you mean 'penguins'.*bbc_news, breast_cancer, diabetes, digits, digits_images, iris, penguins, tweets, wine"):
        builtin_info("penguin")
    with pytest.raises(DataError, match="Known builtin datasets"):
        load_builtin("california")
