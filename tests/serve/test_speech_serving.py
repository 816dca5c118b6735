"""A keyword-spotting model on a real server (127.0.0.1): base64 WAV/FLAC through the friendly route (the
`audio` shorthand and records) and v2 BYTES tensors agree; the limits: a corrupt clip, a clip over the model's
duration limit and one over its byte limit are 422s naming the row; a body over the server's byte limit is 413."""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
from speech_fixtures import clips, needs_espeak, wav, write_folder  # noqa: E402
from test_every_task import Server  # noqa: E402  (the every-task in-process uvicorn server on port 0)

from fulcrum.artifact import Registry  # noqa: E402
from fulcrum.cli import main  # noqa: E402

pytestmark = needs_espeak
SMALL = dict(words=("yes", "no"), voices=("en-us", "en-gb"), variants=("m1", "f1"), n=2)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def tone(seconds: float, rate: int = 16000, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    x = (0.2 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    return np.stack([x] * channels, 1) if channels > 1 else x


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    before = os.environ.get("FULCRUM_CACHE_DIR")
    os.environ["FULCRUM_CACHE_DIR"] = str(tmp_path_factory.getbasetemp().parent / "fulcrum-speech-cache")
    try:
        root = tmp_path_factory.mktemp("kwsserve")
        folder = write_folder(root / "words", **SMALL)
        reg = root / "registry"
        # 1 s of 22.05 kHz stereo 16-bit WAV (in the folder) is 88 kB: max_bytes 100 kB lets the training clips in
        assert main(["train", str(folder), "--name", "kws", "--registry", str(reg), "--set=epochs=3",
                     "--set=batch_size=8", "--set=max_bytes=100000", "--set=max_seconds=2", "--no-progress"]) == 0
        with Server("kws", Registry(reg), max_body_bytes=400_000) as client:
            yield client
    finally:
        if before is None:
            os.environ.pop("FULCRUM_CACHE_DIR", None)
        else:
            os.environ["FULCRUM_CACHE_DIR"] = before


def _good_clips() -> list[str]:
    frame = clips(**SMALL)
    out = list(frame["audio"][:3])
    # the same word as FLAC at 22.05 kHz stereo: any rate, mono or stereo, WAV or FLAC is taken
    from scipy.signal import resample_poly

    from fulcrum.tasks.speech._data import decode_audio

    x = resample_poly(decode_audio(frame["audio"][0]), 441, 320).astype(np.float32)
    out.append(b64(wav(np.stack([x, x], 1), 22050, fmt="FLAC")))
    return out


def test_audio_shorthand_records_and_v2_bytes_agree(served):
    c = served
    audio = _good_clips()
    r = c.post("/v1/models/kws/predict", json={"audio": audio})
    assert r.status_code == 200, r.text
    short = r.json()["predictions"]
    assert len(short) == 4
    r = c.post("/v1/models/kws/predict", json={"records": [{"audio": a} for a in audio]})
    assert r.status_code == 200 and r.json()["predictions"] == short, r.text
    r = c.post("/v2/models/kws/infer",
               json={"inputs": [{"name": "audio", "datatype": "BYTES", "shape": [4], "data": audio}]})
    assert r.status_code == 200, r.text
    outs = {o["name"]: o for o in r.json()["outputs"]}
    labels = [str(p.get("label", p.get("prediction"))) if isinstance(p, dict) else str(p) for p in short]
    assert [str(x) for x in outs["label"]["data"]] == labels
    assert outs["probabilities"]["shape"] == [4, 2]
    meta = c.get("/v2/models/kws").json()
    assert [i["name"] for i in meta["inputs"]] == ["audio"]


@pytest.mark.parametrize("case, value, message", [
    ("corrupt", b64(b"RIFF\x00\x00\x00\x00WAVEfmt " + b"garbage" * 20), "cannot be decoded"),
    ("not audio", b64(b"just some text, not a sound at all"), "not a WAV, FLAC or OGG file"),
    ("not base64", "%%%% not base64 %%%%", "not base64"),
    ("over max_seconds", b64(wav(tone(3.0, 8000), 8000)), "3.0 s long, more than this model's limit of 2 s (max_seconds)"),
    ("over max_bytes", b64(wav(tone(2.0, 16000, 2))), "more than this model's limit of 100000 (max_bytes)"),
])
def test_bad_clips_are_422_naming_the_row(served, case, value, message):
    good = _good_clips()[0]
    r = served.post("/v1/models/kws/predict", json={"audio": [good, value]})
    assert r.status_code == 422, (case, r.status_code, r.text)
    assert message in r.text and "row 1" in r.text, r.text
    r = served.post("/v2/models/kws/infer",
                    json={"inputs": [{"name": "audio", "datatype": "BYTES", "shape": [2], "data": [good, value]}]})
    assert r.status_code == 422 and message in r.text, (case, r.status_code, r.text)


def test_a_body_over_the_server_limit_is_413(served):
    r = served.post("/v1/models/kws/predict", json={"audio": ["A" * 500_000]})
    assert r.status_code == 413


# -- multipart uploads and out-of-scope clips (silence, steady noise), reported per request --------------------


def test_multipart_upload_of_clips_agrees_with_json_and_keeps_the_limits(served):
    audio = _good_clips()
    json_preds = served.post("/v1/models/kws/predict", json={"audio": audio}).json()["predictions"]
    files = [("audio", (f"{i}.{'flac' if i == 3 else 'wav'}", base64.b64decode(a), "audio/wav"))
             for i, a in enumerate(audio)]
    r = served.post("/v1/models/kws/predict", files=files)
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == json_preds
    long = wav(tone(3.0, 8000), 8000)
    r = served.post("/v1/models/kws/predict", files=[files[0], ("audio", ("long.wav", long, "audio/wav"))])
    assert r.status_code == 422 and "max_seconds" in r.text and "'long.wav'" in r.text, r.text
    big = wav(tone(2.0, 16000, 2))
    r = served.post("/v1/models/kws/predict", files=[("audio", ("big.wav", big, "audio/wav"))])
    assert r.status_code == 422 and "(max_bytes)" in r.text and "'big.wav'" in r.text, r.text
    r = served.post("/v1/models/kws/predict", files=[("audio", ("cut.wav", base64.b64decode(audio[0])[:60], "audio/wav"))])
    assert r.status_code == 422 and "'cut.wav'" in r.text, r.text
    r = served.post("/v1/models/kws/predict", files=[("audio", ("huge.wav", bytes(500_000), "audio/wav"))])
    assert r.status_code == 413


def test_silence_and_steady_noise_are_flagged_out_of_scope_and_words_are_not(served):
    from fulcrum.tasks.speech._data import decode_audio

    # the same words, voices and variants as training, but other random speeds, pitches and noise (seed 1)
    held_out = list(clips(**{**SMALL, "seed": 1})["audio"])
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    odd = [np.zeros(16000), np.zeros(4000), 1e-4 * rng.standard_normal(16000),  # silence, near-silence
           0.1 * rng.standard_normal(16000), 0.4 * rng.uniform(-1, 1, 12000),  # white noise
           0.3 * np.sin(2 * np.pi * 440 * t), 0.2 * np.sin(2 * np.pi * 50 * t) + 0.05 * rng.standard_normal(16000)]
    flags, scores = [], []
    batches = [held_out[i: i + 6] for i in range(0, len(held_out), 6)] + [[b64(wav(x.astype(np.float32))) for x in odd]]
    for batch in batches:  # a few requests: the server's body limit is 400 kB
        r = served.post("/v1/models/kws/predict", json={"audio": batch})
        assert r.status_code == 200, r.text
        flags, scores = flags + r.json()["ood"], scores + r.json()["ood_scores"]
    n = len(held_out)
    assert flags[n:] == [True] * len(odd), scores[n:]
    assert sum(flags[:n]) <= 0.25 * n, scores[:n]
    assert decode_audio(held_out[0]).std() > 0.01  # the held-out clips are words, not silence
