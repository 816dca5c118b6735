"""The image and audio codecs (one request column each, tasks/_codec.OneColumnCodec): a frame, columns and one record
give the same feeds; the training table's column name is accepted; other columns are listed as ignored; a missing
column or a single value instead of a list is one SchemaError naming the fix; arrays arrive one row each."""

import base64
import io

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from PIL import Image

from fulcrum.errors import SchemaError
from fulcrum.tasks.image._codec import ImageCodec
from fulcrum.tasks.speech._codec import SpeechCodec


def _png(value: int, h: int = 6, w: int = 5) -> str:
    buf = io.BytesIO()
    Image.fromarray(np.full((h, w), value, np.uint8), mode="L").save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _wav(freq: float) -> str:
    buf = io.BytesIO()
    t = np.arange(8000) / 16000
    sf.write(buf, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 16000, format="WAV")
    return base64.b64encode(buf.getvalue()).decode()


CASES = [(lambda: ImageCodec("L", 1 << 20, 1 << 20, column="photo"), "image", "photo", [_png(10), _png(200, 8, 3)]),
         (lambda: SpeechCodec(16000, 1 << 20, 5.0, column="clip"), "audio", "clip", [_wav(300), _wav(900)])]


@pytest.mark.parametrize("make,own,table", [c[:3] for c in CASES], ids=["image", "audio"])
def test_frame_columns_and_record_give_the_same_feeds(make, own, table):
    values = dict((c[1], c[3]) for c in CASES)[own]
    codec = make()
    a = codec.encode_frame(pd.DataFrame({table: values, "other": [1, 2]}))
    assert codec.last_extra_ == ["other"]
    b = codec.encode_columns({own: values})
    assert codec.last_extra_ == []
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    first = codec.encode_row({own: values[0], "id": 7})
    assert codec.last_extra_ == ["id"]
    again = codec.encode_columns({own: values[:1]})
    assert all(np.array_equal(first[k], again[k]) for k in first)


@pytest.mark.parametrize("make,own,table", [c[:3] for c in CASES], ids=["image", "audio"])
def test_a_missing_column_or_a_single_value_is_refused_naming_the_fix(make, own, table):
    codec = make()
    with pytest.raises(SchemaError, match=f"needs a column '{own}' or '{table}'"):
        codec.encode_row({"body": "x"})
    with pytest.raises(SchemaError, match="got a single value; wrap it in a list"):
        codec.encode_columns({own: dict((c[1], c[3]) for c in CASES)[own][0]})


def test_arrays_arrive_one_row_each():
    pixels = np.stack([np.full((4, 4), 9, np.uint8), np.full((4, 4), 250, np.uint8)])
    feeds = ImageCodec("L", 1 << 20, 1 << 20).encode_columns({"image": pixels})
    assert feeds["image"].shape[0] == 2 and feeds["image_size"].tolist() == [[4, 4], [4, 4]]
    pcm = np.zeros((3, 16000), np.float32)
    pcm[1] = 0.1
    out = SpeechCodec(16000, 1 << 20, 5.0).encode_columns({"audio": pcm})["audio"]
    assert out.shape == (3, 16000) and np.allclose(out[1], 0.1) and not out[0].any()
    one = SpeechCodec(16000, 1 << 20, 5.0).encode_columns({"audio": np.full(8000, 0.2, np.float32)})["audio"]
    assert one.shape == (1, 16000) and np.isclose(one.sum(), 0.2 * 8000, rtol=1e-3)  # a 1-D PCM array is one clip
