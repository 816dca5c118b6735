"""fulcrum predict --backend ray: Ray Data spreads a file's chunks (or a folder's files) over workers; the output
is the single-process run's byte for byte, with no row lost or repeated when a worker dies mid-job."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from fulcrum.cli import main

pytestmark = pytest.mark.ray


class KillOnce:
    """Kills the Ray worker that is about to predict ``unit``, the first time only (a flag file remembers)."""

    def __init__(self, flag: str, unit: int) -> None:
        self.flag, self.unit = flag, unit

    def __call__(self, unit: int) -> None:
        if unit == self.unit and not os.path.exists(self.flag):
            Path(self.flag).write_text(f"killed pid {os.getpid()} before unit {unit}")
            os._exit(1)


@pytest.fixture(scope="module")
def model(blobs_csv, tmp_path_factory):
    reg = tmp_path_factory.mktemp("reg")
    assert main(["train", str(blobs_csv), "--target", "label", "--model", "linear", "--name", "blobs",
                 "--registry", str(reg), "--no-progress", "--json"]) == 0
    return reg


def test_ray_predict_matches_local_byte_for_byte_after_a_killed_worker(ray_cluster, model, blobs_csv, tmp_path,
                                                                      capsys):
    from ray import cloudpickle

    import fulcrum
    from fulcrum.runtime._ray_batch import predict_file_ray

    cloudpickle.register_pickle_by_value(__import__(__name__))
    local = tmp_path / "local.csv"
    assert main(["predict", "blobs", str(blobs_csv), "-o", str(local), "--keep", "a,color", "--chunk-rows", "70",
                 "--registry", str(model), "--no-progress"]) == 0
    # through the CLI: 6 chunks of 70 rows over the workers
    on_ray = tmp_path / "ray.csv"
    assert main(["predict", "blobs", str(blobs_csv), "-o", str(on_ray), "--keep", "a,color", "--chunk-rows", "70",
                 "--backend", "ray", "--registry", str(model), "--no-progress"]) == 0
    assert "wrote 400 prediction(s)" in capsys.readouterr().out
    assert on_ray.read_bytes() == local.read_bytes()
    # a worker killed before chunk 2 on the first attempt: Ray retries it; still every row once, in order
    flag = tmp_path / "killed"
    killed = tmp_path / "killed.csv"
    pred = fulcrum.load("blobs", registry=str(model))
    rows = predict_file_ray(pred, blobs_csv, killed, chunk_rows=70, keep=["a", "color"],
                            before_unit=KillOnce(str(flag), unit=2))
    assert flag.exists() and rows == 400
    assert killed.read_bytes() == local.read_bytes()


def test_ray_predict_over_a_folder_equals_the_files_predicted_one_by_one(ray_cluster, model, blobs_csv, tmp_path):
    df = pd.read_csv(blobs_csv)
    folder = tmp_path / "parts"
    (folder / "b").mkdir(parents=True)
    df.iloc[:150].to_csv(folder / "a.csv", index=False)
    df.iloc[150:].to_parquet(folder / "b" / "c.parquet", index=False)
    (folder / "notes.txt").write_text("not a table")
    out = tmp_path / "all.csv"
    assert main(["predict", "blobs", str(folder), "-o", str(out), "--backend", "ray", "--registry", str(model),
                 "--no-progress"]) == 0
    parts = []
    for i, f in enumerate([folder / "a.csv", folder / "b" / "c.parquet"]):
        one = tmp_path / f"one{i}.csv"
        assert main(["predict", "blobs", str(f), "-o", str(one), "--registry", str(model), "--no-progress"]) == 0
        parts.append(pd.read_csv(one))
    pd.testing.assert_frame_equal(pd.read_csv(out), pd.concat(parts, ignore_index=True))


def test_ray_predict_refuses_a_folder_without_tables_and_writes_nothing(model, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out.csv"
    rc = main(["predict", "blobs", str(tmp_path / "empty"), "-o", str(out), "--backend", "ray",
               "--registry", str(model), "--no-progress"])
    assert rc == 1 and "holds no table files" in capsys.readouterr().err and not out.exists()


def test_unit_results_travel_as_data_not_pickles():
    """A worker's result comes back as Arrow + JSON (reading it runs no code), frames and errors unchanged."""
    import pandas as pd

    from fulcrum.errors import DataError
    from fulcrum.runtime._ray_batch import _decode, _encode

    frame = pd.DataFrame({"id": [1, 2, 3], "prediction": ["a", "b", None], "proba_a": [0.25, 0.5, 1.0],
                          "flag": [True, False, True]})
    frames, notes = _decode(_encode(([frame, frame.iloc[1:]], ["note: x"])))
    pd.testing.assert_frame_equal(frames[0], frame)
    pd.testing.assert_frame_equal(frames[1], frame.iloc[1:].reset_index(drop=True))
    assert notes == ["note: x"]
    err = _decode(_encode(DataError("row 3: bad value")))
    assert type(err) is DataError and str(err) == "row 3: bad value"
    assert not _encode(([frame], [])).startswith(b"\x80")  # not a pickle stream
