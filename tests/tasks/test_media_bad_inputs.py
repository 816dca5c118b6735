"""Issue 10's bad inputs that the image and speech task tests did not cover yet: a 100-megapixel PNG (refused from its
header by max_pixels, before any pixel is decoded), pixel arrays with a wrong channel count, images in other colour
modes converted (not refused), and a speech table whose path leaves the dataset root (one line, nothing written).
The rest (corrupt, truncated, zero-length, 6 channels, one class, symlinks out) are in test_image_task.py,
test_speech_task.py and tests/cli/test_predict_media.py."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pandas as pd
import pytest
from image_fixtures import bomb_png
from PIL import Image

from fulcrum.cli import main
from fulcrum.errors import SchemaError
from fulcrum.tasks.image._data import DEFAULT_MAX_PIXELS, decode_image


def test_a_100_megapixel_png_is_refused_from_its_header():
    png = bomb_png(10_000, 10_000)  # a few hundred bytes claiming 100,000,000 pixels
    assert len(png) < 1000
    with pytest.raises(SchemaError, match=rf"10000x10000 = 100000000 pixels, more than this model's limit of "
                                          rf"{DEFAULT_MAX_PIXELS} \(max_pixels; a decompression bomb"):
        decode_image(png, "L")


@pytest.mark.parametrize("shape", [(8, 8, 2), (8, 8, 5), (8, 8, 3, 1), (0, 8, 3)])
def test_pixel_arrays_with_a_wrong_channel_count_are_refused(shape):
    with pytest.raises(SchemaError, match=r"a pixel array is \(H, W\) or \(H, W, C\) with C 1, 3 or 4"):
        decode_image(np.zeros(shape, np.uint8), "RGB")


@pytest.mark.parametrize("mode, fmt", [("LA", "PNG"), ("RGBA", "PNG"), ("P", "PNG"), ("CMYK", "JPEG"), ("I;16", "PNG")])
def test_other_colour_modes_are_converted_to_the_models(mode, fmt):
    buf = io.BytesIO()
    Image.new(mode, (12, 7)).save(buf, format=fmt)
    assert decode_image(buf.getvalue(), "RGB").shape == (7, 12, 3)
    assert decode_image(buf.getvalue(), "L").shape == (7, 12, 1)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_a_speech_table_path_outside_the_root_is_refused_and_nothing_written(tmp_path, capsys, monkeypatch):
    from speech_fixtures import wav, write_folder

    monkeypatch.setenv("FULCRUM_CACHE_DIR", str(tmp_path / "cache"))
    folder = write_folder(tmp_path / "data", words=("yes", "no"), voices=("en-us",), variants=("m1",), n=2)
    rows = [{"file": p.relative_to(folder).as_posix(), "label": p.parent.name}
            for p in sorted(folder.rglob("*")) if p.suffix in (".wav", ".flac")]
    (tmp_path / "outside.wav").write_bytes(wav(np.zeros(1600, np.float32)))
    pd.DataFrame(rows + [{"file": "../outside.wav", "label": "no"}]).to_csv(folder / "clips.csv", index=False)
    reg = tmp_path / "reg"
    rc = main(["train", str(folder / "clips.csv"), "--target", "label", "--name", "escape", "--registry", str(reg),
               "--no-progress"])
    err = capsys.readouterr().err
    assert rc != 0 and "outside the dataset root" in err and "'../outside.wav'" in err, err
    assert sum(line.startswith("error:") for line in err.splitlines()) == 1, err
    assert not (reg / "escape").exists()
