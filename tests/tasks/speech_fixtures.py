"""Small speech data sets synthesized with espeak-ng (cached under the test's FULCRUM_HOME), and bad clips."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (apt-get install espeak-ng); .ci/run installs it")

WORDS = ("yes", "no", "up", "down")


def clips(words=WORDS, voices=("en-us", "en-gb", "en-gb-scotland"), variants=("m1", "f1"), n=3, seed=0):
    from fulcrum.tasks.speech._synth import synthesize

    return synthesize(words, voices, variants, clips=n, seed=seed)


def wav(x: np.ndarray, rate: int = 16000, fmt: str = "WAV", subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def write_folder(root: Path, **kw) -> Path:
    """root/<word>/<n>.wav|flac: every third clip as FLAC, every fifth as 22.05 kHz stereo WAV (resampled back)."""
    import base64

    from fulcrum.tasks.speech._data import decode_audio

    frame = clips(**kw)
    for n, (b64, label) in enumerate(zip(frame["audio"], frame["label"])):
        (root / label).mkdir(parents=True, exist_ok=True)
        data = base64.b64decode(b64)
        if n % 3 == 1:
            (root / label / f"{n}.flac").write_bytes(wav(decode_audio(data), fmt="FLAC"))
        elif n % 5 == 2:
            from scipy.signal import resample_poly

            x = resample_poly(decode_audio(data), 441, 320).astype(np.float32)
            (root / label / f"{n}.wav").write_bytes(wav(np.stack([x, x], 1), 22050))
        else:
            (root / label / f"{n}.wav").write_bytes(data)
    return root
