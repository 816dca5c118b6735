from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fulcrum.data import SUPPORTED_EXTENSIONS, read_table
from fulcrum.errors import DataError


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [31.0, np.nan, 45.5],
            "city": ["Paris", "Oslo", None],
            "n": [1, 2, 3],
        }
    )


def _check(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.columns) == list(want.columns)
    assert got["n"].tolist() == [1, 2, 3]
    assert got["age"].iloc[0] == 31.0 and np.isnan(got["age"].iloc[1]) and got["age"].iloc[2] == 45.5
    assert got["city"].iloc[:2].tolist() == ["Paris", "Oslo"] and pd.isna(got["city"].iloc[2])


@pytest.mark.parametrize("ext", [".csv", ".tsv", ".parquet", ".pq", ".jsonl", ".ndjson", ".json"])
def test_reads_every_format(tmp_path, frame, ext):
    path = tmp_path / f"data{ext}"
    if ext in (".csv", ".tsv"):
        frame.to_csv(path, sep="\t" if ext == ".tsv" else ",", index=False)
    elif ext in (".parquet", ".pq"):
        frame.to_parquet(path, index=False)
    else:
        records = [{k: (None if pd.isna(v) else v) for k, v in r.items()} for r in frame.to_dict("records")]
        if ext == ".json":
            path.write_text(json.dumps(records))
        else:
            path.write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    _check(read_table(path), frame)
    _check(read_table(str(path)), frame)


def test_dataframe_is_copied(frame):
    got = read_table(frame)
    got.loc[0, "n"] = 99
    assert frame.loc[0, "n"] == 1


def test_column_names_become_strings():
    got = read_table(pd.DataFrame({0: [1], 1: [2]}))
    assert list(got.columns) == ["0", "1"]


def test_builtin_source():
    df = read_table("builtin:iris")
    assert df.shape == (150, 5) and "target" in df


def test_missing_file_names_path(tmp_path):
    path = tmp_path / "nope.csv"
    with pytest.raises(DataError, match="does not exist") as exc:
        read_table(path)
    assert str(path) in str(exc.value)


def test_unknown_extension_lists_supported(tmp_path):
    path = tmp_path / "data.xlsx"
    path.write_text("x")
    with pytest.raises(DataError, match="unsupported extension '.xlsx'") as exc:
        read_table(path)
    for ext in SUPPORTED_EXTENSIONS:
        assert ext in str(exc.value)


def test_corrupt_parquet_names_file_and_parser_message(tmp_path):
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"this is not parquet at all")
    with pytest.raises(DataError, match=r"Cannot read .*bad\.parquet.* as PARQUET: .+") as exc:
        read_table(path)
    assert exc.value.__cause__ is not None


def test_corrupt_jsonl_names_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(DataError, match="line 2 is not valid JSON"):
        read_table(path)


def test_jsonl_line_not_object(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(DataError, match="line 2 is a list"):
        read_table(path)


def test_json_must_be_list_of_records(tmp_path):
    path = tmp_path / "obj.json"
    path.write_text('{"a": [1, 2]}')
    with pytest.raises(DataError, match="must hold a list of records"):
        read_table(path)
    path.write_text("[{]")
    with pytest.raises(DataError, match="Cannot read .* as JSON"):
        read_table(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(DataError, match="is empty"):
        read_table(path)


def test_header_only_has_zero_rows(tmp_path):
    path = tmp_path / "head.csv"
    path.write_text("a,b\n")
    with pytest.raises(DataError, match="zero rows"):
        read_table(path)
    with pytest.raises(DataError, match="zero rows"):
        read_table(pd.DataFrame({"a": []}))


def test_blank_jsonl_has_no_records(tmp_path):
    path = tmp_path / "blank.jsonl"
    path.write_text("\n\n")
    with pytest.raises(DataError, match="no records"):
        read_table(path)


def test_unknown_builtin_lists_known():
    with pytest.raises(DataError, match="Unknown builtin dataset 'irs'. Did you mean 'iris'.*penguins"):
        read_table("builtin:irs")


def test_duplicate_columns_rejected():
    df = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(DataError, match=r"duplicate column names \['a'\]"):
        read_table(df)


def test_directory_and_bad_type(tmp_path):
    d = tmp_path / "dir.csv"
    d.mkdir()
    with pytest.raises(DataError, match="not a file"):
        read_table(d)
    with pytest.raises(DataError, match="Cannot read data from a int"):
        read_table(3)  # type: ignore[arg-type]
