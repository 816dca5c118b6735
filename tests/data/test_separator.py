"""A ``.csv`` that is really ``;`` or tab separated is read with its own separator, with a notice."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fulcrum.data import read_table
from fulcrum.data._readers import sniff_separator
from fulcrum.runtime import iter_chunks


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 40
    return pd.DataFrame({
        "length": rng.normal(40, 5, n).round(2),
        "island": rng.choice(["Biscoe", "Dream", "Torgersen"], n),
        "note": ["a, b; c"] * n,  # separators inside a quoted field change nothing
        "y": rng.integers(0, 2, n),
    })


@pytest.mark.parametrize("sep, name", [(";", "semicolon"), ("\t", "tab"), ("|", "pipe")])
def test_other_separators_are_detected_with_a_notice(tmp_path, frame, sep, name):
    path = tmp_path / "data.csv"
    frame.to_csv(path, sep=sep, index=False)
    notes: list[str] = []
    got = read_table(path, log=notes.append)
    assert list(got.columns) == list(frame.columns)
    np.testing.assert_allclose(got["length"], frame["length"])
    assert got["note"].tolist() == frame["note"].tolist()
    assert len(notes) == 1 and "data.csv" in notes[0] and name in notes[0]
    assert sniff_separator(path) == sep
    # batch prediction reads it the same way
    chunks = list(iter_chunks(path, chunk_rows=15))
    assert sum(len(c) for c in chunks) == len(frame) and list(chunks[0].columns) == list(frame.columns)


def test_comma_files_are_read_as_before_and_quietly(tmp_path, frame):
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    notes: list[str] = []
    got = read_table(path, log=notes.append)
    assert list(got.columns) == list(frame.columns) and notes == []
    assert sniff_separator(path) == ","


def test_single_column_file_stays_comma(tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("x\n1\n2\n3\n")
    assert sniff_separator(path) == ","
    assert read_table(path)["x"].tolist() == [1, 2, 3]


def test_semicolon_file_with_decimal_commas_is_split_on_semicolons(tmp_path):
    path = tmp_path / "eu.csv"
    path.write_text("a;b;y\n1,5;x;0\n2,5;z;1\n3,0;x;0\n")
    assert sniff_separator(path) == ";"
    assert list(read_table(path).columns) == ["a", "b", "y"]
