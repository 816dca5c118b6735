"""A numeric column with a few unparsable cells stays numeric; those cells are missing, with a notice,
at training and at prediction time alike (Python preprocessor, ONNX input encoder, profile)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fulcrum.data import Preprocessor, Schema, infer_schema, profile_frame
from fulcrum.errors import SchemaError
from fulcrum.tasks.tabular._codec import InputEncoder

N = 344


def _dirty(n: int = N, bad: dict[int, str] | None = None) -> pd.DataFrame:
    """What read_csv gives for a numeric column holding a few non-numbers: an object column of strings."""
    rng = np.random.default_rng(0)
    x = [f"{v:.1f}" for v in rng.normal(44, 5, n)]
    for i, token in (bad if bad is not None else {10: "n/a", 20: "42,1"}).items():
        x[i] = token
    x[5] = None  # a genuinely empty cell
    return pd.DataFrame({"bill": pd.Series(x, dtype=object), "y": rng.integers(0, 2, n)})


def test_two_unparsable_cells_keep_the_column_numeric_with_a_notice():
    s = infer_schema(_dirty(), target="y")
    spec = s["bill"]
    assert spec.kind == "numeric"
    assert spec.na_tokens == ["42,1", "n/a"]
    assert len(s.notices) == 1
    msg = s.notices[0]
    assert "'bill'" in msg and "2 cell(s)" in msg and "'n/a'" in msg and "'42,1'" in msg and "missing" in msg


def test_too_many_unparsable_cells_stay_categorical():
    bad = {i: "n/a" for i in range(0, N, 10)}  # 35 of 344 cells, about 10 %
    s = infer_schema(_dirty(bad=bad), target="y")
    assert s["bill"].kind == "categorical" and s["bill"].na_tokens == []
    assert any("'bill'" in n and "categorical" in n for n in s.notices)  # not silent either


def test_unique_codes_with_a_few_letters_are_not_made_numeric():
    codes = [str(1000 + i) for i in range(N)]
    codes[3], codes[7] = "A-17", "B-2"
    df = pd.DataFrame({"code": codes, "y": np.arange(N) % 2})
    s = infer_schema(df, target="y")
    assert s["code"].kind == "identifier" and s["code"].na_tokens == []


def test_clean_columns_have_no_tokens_and_no_notices():
    df = pd.DataFrame({"x": ["1.5", "2", None, "3e2"] * 10, "y": [0, 1] * 20})
    s = infer_schema(df, "y")
    assert s["x"].kind == "numeric" and s["x"].na_tokens == [] and s.notices == []
    assert "na_tokens" not in json.dumps(s.to_dict())  # the stored form is unchanged for clean columns


def test_tokens_round_trip_through_the_schema_dict():
    s = infer_schema(_dirty(), target="y")
    again = Schema.from_dict(json.loads(json.dumps(s.to_dict())))
    assert again == s and again["bill"].na_tokens == ["42,1", "n/a"]


def test_preprocessor_reads_the_tokens_as_missing_at_fit_and_transform():
    df = _dirty()
    pre = Preprocessor(infer_schema(df, target="y")).fit(df)
    assert pre.feature_names_ == ["bill", "bill__missing"]
    X = pre.transform(df)
    assert X[[5, 10, 20], 1].tolist() == [1.0, 1.0, 1.0]  # the empty cell and both tokens: missing
    assert X[:, 1].sum() == 3
    new = pd.DataFrame({"bill": [" n/a ", "42,1", "41.0", None]})
    Xn = pre.transform(new)
    assert Xn[:, 1].tolist() == [1.0, 1.0, 0.0, 1.0]
    # a value the training data never held is still an error, as for any numeric column
    with pytest.raises(SchemaError, match="'bill'.*'unknown'"):
        pre.transform(pd.DataFrame({"bill": ["unknown"]}))
    # and the rule survives preprocess.json
    again = Preprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    np.testing.assert_array_equal(again.transform(new), Xn)


def test_onnx_input_encoder_agrees_with_the_preprocessor():
    df = _dirty()
    pre = Preprocessor(infer_schema(df, target="y")).fit(df)
    enc = InputEncoder(pre.to_dict())
    new = pd.DataFrame({"bill": ["n/a", "42,1", "41.0", None]})
    got = enc.encode_frame(new)["bill"][:, 0]
    assert np.isnan(got[[0, 1, 3]]).all() and got[2] == 41.0
    assert np.isnan(enc.encode_row({"bill": "n/a"})["bill"][0, 0])
    cols = enc.encode_columns({"bill": np.array(["42,1", "3"], dtype=object)})["bill"][:, 0]
    assert np.isnan(cols[0]) and cols[1] == 3.0
    with pytest.raises(SchemaError, match="'bill'.*'unknown'"):
        enc.encode_frame(pd.DataFrame({"bill": ["unknown"]}))


def test_profile_counts_the_tokens_as_missing():
    df = _dirty()
    prof = profile_frame(df, infer_schema(df, target="y"))
    assert prof["columns"]["bill"]["kind"] == "numeric"
    assert prof["columns"]["bill"]["count"] == N - 3
