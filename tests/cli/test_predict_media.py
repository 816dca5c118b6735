"""`fulcrum predict MODEL FOLDER` and `fulcrum predict MODEL paths.csv` for image and speech models: every file
under a folder (recursively, sorted, relative paths in the output) or listed in a table (resolved inside the
table's folder only) -> one CSV of predictions; a corrupt, empty or escaping file stops the run with one line
naming it, and nothing is written (an existing output is left as it was)."""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
from image_fixtures import digit_images, encode, train_folder  # noqa: E402

import fulcrum  # noqa: E402
from fulcrum.cli import main  # noqa: E402


def cli(capsys, *argv):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return train_folder(tmp_path_factory.mktemp("predmedia"), "d", "--set=epochs=4", "--set=image_size=16",
                        per_class=12)[1]


def _photos(root: Path) -> dict[str, bytes]:
    """A nested folder of photos in three formats, plus a file of another kind."""
    files = {}
    for n, (px, _) in enumerate(digit_images(2, (0, 1, 7))):
        rel = ["b/z.png", "a/y.jpg", "a/deep/x.png", "c.png", "a/w.webp", "b/a.png"][n]
        fmt = {"jpg": "JPEG", "webp": "WEBP"}.get(rel.rsplit(".", 1)[1], "PNG")
        files[rel] = encode(px, fmt)
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "a" / "notes.txt").write_text("not an image")
    (root / ".hidden.png").write_bytes(b"not even read")
    return files


def test_a_folder_recursively_in_sorted_order_with_relative_paths(model, tmp_path, capsys):
    files = _photos(tmp_path / "photos")
    rc, out, err = cli(capsys, "predict", "d", tmp_path / "photos", "-o", tmp_path / "out.csv", "--no-progress",
                       "--registry", model)
    assert rc == 0, err
    assert "wrote 6 prediction(s)" in out and "1 file(s)" in err and "left out" in err
    got = pd.read_csv(tmp_path / "out.csv", dtype={"prediction": str})
    assert got["path"].tolist() == sorted(files)  # a/deep/x.png, a/w.webp, a/y.jpg, b/a.png, b/z.png, c.png
    assert {"prediction", "proba_0", "proba_1", "proba_7", "ood_score"} <= set(got.columns)
    py = fulcrum.load("d", registry=model).predict(
        pd.DataFrame({"image": [base64.b64encode(files[p]).decode() for p in sorted(files)]}))
    assert got["prediction"].tolist() == py["prediction"].astype(str).tolist()
    np.testing.assert_allclose(got["proba_7"], py["proba_7"], atol=1e-6)


def test_a_table_of_paths_resolved_inside_its_folder(model, tmp_path, capsys, monkeypatch):
    files = _photos(tmp_path / "photos")
    order = ["c.png", "a/y.jpg", "b/z.png"]
    pd.DataFrame({"id": [10, 11, 12], "file": order}).to_csv(tmp_path / "photos" / "list.csv", index=False)
    elsewhere = tmp_path / "run"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # paths are relative to the table, not to the working directory
    rc, out, err = cli(capsys, "predict", "d", tmp_path / "photos" / "list.csv", "-o", "out.csv", "--keep", "id",
                       "--no-progress", "--registry", model)
    assert rc == 0, err
    got = pd.read_csv(elsewhere / "out.csv", dtype={"prediction": str})
    assert list(got.columns[:3]) == ["file", "id", "prediction"]
    assert got["file"].tolist() == order and got["id"].tolist() == [10, 11, 12]
    py = fulcrum.load("d", registry=model).predict(
        pd.DataFrame({"image": [base64.b64encode(files[p]).decode() for p in order]}))
    assert got["prediction"].tolist() == py["prediction"].astype(str).tolist()


@pytest.mark.parametrize("case", ["corrupt", "truncated", "empty", "outside", "absolute", "symlink_out",
                                  "symlink_in_folder"])
def test_a_bad_file_is_one_line_naming_it_and_nothing_is_written(model, tmp_path, capsys, case):
    photos = tmp_path / "photos"
    _photos(photos)
    png = encode(np.random.default_rng(0).integers(0, 255, (40, 40), dtype=np.uint8))
    (tmp_path / "secret.png").write_bytes(png)
    source = photos
    if case == "corrupt":
        (photos / "b" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
        expect = ["'b/bad.png'", "cannot be decoded"]
    elif case == "truncated":
        (photos / "b" / "cut.png").write_bytes(png[: len(png) // 2])
        expect = ["'b/cut.png'", "corrupt or truncated"]
    elif case == "empty":
        (photos / "a" / "zero.png").write_bytes(b"")
        expect = ["'a/zero.png'", "empty (0 bytes)"]
    elif case == "symlink_in_folder":
        os.symlink(tmp_path / "secret.png", photos / "a" / "link.png")
        expect = ["'a/link.png'", "points outside the dataset root"]
    else:
        rel = {"outside": "../secret.png", "absolute": str(tmp_path / "secret.png"), "symlink_out": "a/link.png"}[case]
        if case == "symlink_out":
            os.symlink(tmp_path / "secret.png", photos / "a" / "link.png")
        pd.DataFrame({"file": ["c.png", rel]}).to_csv(photos / "list.csv", index=False)
        source = photos / "list.csv"
        expect = ["Row 1 (0-based)", "absolute path" if case == "absolute" else "points outside the dataset root"]
    (tmp_path / "out.csv").write_text("previous output\n")
    rc, out, err = cli(capsys, "predict", "d", source, "-o", tmp_path / "out.csv", "--no-progress",
                       "--registry", model)
    assert rc != 0 and all(e in err for e in expect), err
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1, err
    assert (tmp_path / "out.csv").read_text() == "previous output\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.csv")]  # no temporary file left


def test_a_folder_without_images_is_refused(model, tmp_path, capsys):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("x")
    rc, _, err = cli(capsys, "predict", "d", tmp_path / "docs", "-o", tmp_path / "out.csv", "--no-progress",
                     "--registry", model)
    assert rc != 0 and "holds no image files" in err
    assert not (tmp_path / "out.csv").exists()


def test_a_folder_of_clips_for_a_speech_model(tmp_path, capsys):
    import shutil

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    from speech_fixtures import write_folder as write_clips

    before = os.environ.get("FULCRUM_CACHE_DIR")
    os.environ["FULCRUM_CACHE_DIR"] = str(tmp_path / "cache")
    try:
        words = write_clips(tmp_path / "words", words=("yes", "no"), voices=("en-us",), variants=("m1", "f1"), n=2)
        reg = tmp_path / "reg"
        assert main(["train", str(words), "--name", "k", "--registry", str(reg), "--set=epochs=2",
                     "--set=batch_size=8", "--no-progress"]) == 0
        capsys.readouterr()
        clips = sorted(p.relative_to(words).as_posix() for p in words.rglob("*") if p.suffix in (".wav", ".flac"))
        rc, out, err = cli(capsys, "predict", "k", words, "-o", tmp_path / "out.csv", "--no-progress",
                           "--registry", reg)
        assert rc == 0, err
        got = pd.read_csv(tmp_path / "out.csv")
        assert got["path"].tolist() == clips and set(got["prediction"]) <= {"yes", "no"}
        (words / "no" / "zero.wav").write_bytes(_empty_wav())
        rc, out, err = cli(capsys, "predict", "k", words, "-o", tmp_path / "out2.csv", "--no-progress",
                           "--registry", reg)
        assert rc != 0 and "'no/zero.wav'" in err and "zero-length audio" in err, err
        assert not (tmp_path / "out2.csv").exists()
    finally:
        if before is None:
            os.environ.pop("FULCRUM_CACHE_DIR", None)
        else:
            os.environ["FULCRUM_CACHE_DIR"] = before


def _empty_wav() -> bytes:
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.zeros(0, np.float32), 16000, format="WAV", subtype="PCM_16")
    return buf.getvalue()
