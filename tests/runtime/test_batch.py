"""Batch prediction output is all or nothing: a failure anywhere leaves no output and no temp file,
and an existing output file untouched; a finished file looks like any file the user writes."""

from __future__ import annotations

import io
import json
import os
import sys

import numpy as np
import pandas as pd
import pytest

import fulcrum
from fulcrum.errors import DataError, SchemaError
from fulcrum.runtime import predict_file


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    reg = fulcrum.Registry(tmp_path_factory.mktemp("registry"))
    pkg = fulcrum.train("builtin:iris", model="linear", name="iris", registry=reg, progress=False,
                        measure_inference=False)
    return fulcrum.load(pkg.ref, registry=reg)


@pytest.fixture
def rows():
    from fulcrum.data import read_table

    df = read_table("builtin:iris").drop(columns=["target"])
    df.insert(0, "id", [f"r{i:03d}" for i in range(len(df))])
    return df


def _bad_late(rows: pd.DataFrame, at: int = 120) -> pd.DataFrame:
    bad = rows.astype({"sepal length (cm)": object})
    bad.loc[at, "sepal length (cm)"] = "oops"
    return bad


def _listing(d) -> list[str]:
    return sorted(os.listdir(d))


@pytest.mark.parametrize("ext", [".csv", ".parquet", ".jsonl", ".json"])
def test_failure_in_a_later_chunk_leaves_no_output_and_no_temp_file(predictor, rows, tmp_path, ext):
    src = tmp_path / "in.csv"
    _bad_late(rows).to_csv(src, index=False)
    out = tmp_path / f"out{ext}"
    before = _listing(tmp_path)
    with pytest.raises(SchemaError, match="oops"):
        predict_file(predictor, src, out, chunk_rows=50, progress=False)
    assert _listing(tmp_path) == before  # neither the output nor a temp file


def test_failure_leaves_an_existing_output_untouched(predictor, rows, tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    _bad_late(rows).to_csv(src, index=False)
    out.write_text("previous,run\n1,2\n")
    stamp = os.stat(out).st_mtime_ns
    with pytest.raises(SchemaError):
        predict_file(predictor, src, out, chunk_rows=50, progress=False)
    assert out.read_text() == "previous,run\n1,2\n" and os.stat(out).st_mtime_ns == stamp
    assert _listing(tmp_path) == ["in.csv", "out.csv"]


def test_interrupt_midway_leaves_nothing(predictor, rows, tmp_path):
    class Interrupted:
        calls = 0
        notices: list[str] = []

        def predict(self, chunk, **kw):
            Interrupted.calls += 1
            if Interrupted.calls == 2:
                raise KeyboardInterrupt
            return predictor.predict(chunk, **kw)

    src = tmp_path / "in.csv"
    rows.to_csv(src, index=False)
    with pytest.raises(KeyboardInterrupt):
        predict_file(Interrupted(), src, tmp_path / "out.parquet", chunk_rows=50, progress=False)
    assert _listing(tmp_path) == ["in.csv"]


def test_error_names_the_row_of_the_file_not_of_the_chunk(predictor, rows, tmp_path):
    src = tmp_path / "in.csv"
    _bad_late(rows, at=120).to_csv(src, index=False)
    with pytest.raises(SchemaError) as err:
        predict_file(predictor, src, tmp_path / "out.csv", chunk_rows=50, progress=False)
    assert "row 120" in str(err.value) and "row 20 " not in str(err.value)


def test_output_file_has_the_permissions_of_a_normally_written_file(predictor, rows, tmp_path):
    src = tmp_path / "in.csv"
    rows.to_csv(src, index=False)
    umask = os.umask(0o022)
    os.umask(umask)
    out = tmp_path / "new.csv"
    predict_file(predictor, src, out, progress=False)
    assert os.stat(out).st_mode & 0o777 == 0o666 & ~umask
    # replacing an existing file keeps that file's permissions, as writing it in place would
    kept = tmp_path / "kept.csv"
    kept.write_text("old\n")
    os.chmod(kept, 0o640)
    predict_file(predictor, src, kept, progress=False)
    assert os.stat(kept).st_mode & 0o777 == 0o640 and "prediction" in kept.read_text().splitlines()[0]


def test_json_output_is_one_array_of_records(predictor, rows, tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "out.json"
    rows.to_csv(src, index=False)
    n = predict_file(predictor, src, out, chunk_rows=40, progress=False)
    records = json.loads(out.read_text())
    assert n == len(rows) == len(records)
    assert set(records[0]) == {"prediction", "proba_setosa", "proba_versicolor", "proba_virginica"}
    ref = predictor.predict(rows)
    assert [r["prediction"] for r in records] == ref["prediction"].tolist()


def test_keep_passes_input_columns_through_in_front(predictor, rows, tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    rows.to_csv(src, index=False)
    predict_file(predictor, src, out, chunk_rows=40, progress=False, keep=["id"])
    got = pd.read_csv(out)
    assert list(got.columns)[:2] == ["id", "prediction"]
    assert got["id"].tolist() == rows["id"].tolist()


def test_stdout_gets_csv_only_after_every_chunk_succeeded(predictor, rows, tmp_path, monkeypatch):
    src = tmp_path / "in.csv"
    rows.to_csv(src, index=False)
    buf = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(buf, encoding="utf-8"))
    n = predict_file(predictor, src, "-", chunk_rows=40, progress=False)
    sys.stdout.flush()
    got = pd.read_csv(io.BytesIO(buf.getvalue()))
    assert n == len(got) == len(rows) and "prediction" in got.columns
    # a failure in a later chunk prints nothing at all
    _bad_late(rows).to_csv(src, index=False)
    buf2 = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(buf2, encoding="utf-8"))
    with pytest.raises(SchemaError):
        predict_file(predictor, src, "-", chunk_rows=40, progress=False)
    sys.stdout.flush()
    assert buf2.getvalue() == b""
    assert _listing(tmp_path) == ["in.csv"]


def test_unsupported_output_extension_names_the_choices(predictor, rows, tmp_path):
    src = tmp_path / "in.csv"
    rows.to_csv(src, index=False)
    with pytest.raises(DataError, match=r"\.json"):
        predict_file(predictor, src, tmp_path / "out.xlsx", progress=False)
    assert _listing(tmp_path) == ["in.csv"]
    assert np.isfinite(predictor.predict(rows.iloc[:2])["proba_setosa"]).all()
