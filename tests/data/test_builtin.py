from __future__ import annotations

import pandas as pd
import pytest

from fulcrum.data import BuiltinDataset, builtin_info, infer_task, list_builtin, load_builtin
from fulcrum.errors import DataError

NAMES = ["bbc_news", "breast_cancer", "co2", "diabetes", "digits", "digits_images", "elnino", "interactions", "iris",
         "lfw_faces", "nile", "penguins", "rotten_tomatoes",
         "speech_commands", "speech_phrases", "sunspots", "tweets", "wine"]
# speech_commands / speech_phrases are synthesized with espeak-ng on first load: the speech task tests load them
LOADED = [n for n in NAMES if not n.startswith("speech_")]


def test_list_builtin():
    infos = list_builtin()
    assert [d.name for d in infos] == NAMES
    assert all(isinstance(d, BuiltinDataset) and d.description for d in infos)


@pytest.mark.parametrize("name", LOADED)
def test_every_builtin_loads_with_its_target(name):
    info = builtin_info(name)
    df = load_builtin(name)
    assert df.shape == (info.rows, info.columns)
    assert info.target in df.columns
    if name == "co2":  # statsmodels' weekly co2 has 59 missing weeks; the forecast task fills and reports them
        assert df[info.target].isna().sum() == 59
    else:
        assert df[info.target].notna().all()
    if info.task != "ranking":  # interactions: the item column is what a recommender ranks, not a label
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
    with pytest.raises(DataError, match="Did you mean 'penguins'.*" + ", ".join(NAMES)):
        builtin_info("penguin")
    with pytest.raises(DataError, match="Known builtin datasets"):
        load_builtin("california")
