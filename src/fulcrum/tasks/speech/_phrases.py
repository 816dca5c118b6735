"""Short spoken phrases synthesized with espeak-ng, reproducibly, into the data cache (``builtin:speech_phrases``).

Every *voice* (an espeak-ng English voice: en-us, en-us-nyc, en-gb, en-gb-scotland, en-gb-x-rp, en-gb-x-gbclan,
en-gb-x-gbcwmd, en-029) with every voice variant of :data:`PHRASE_VARIANTS` (m1-m4, f1-f4: male and female
timbres) says every command phrase of :data:`PHRASES` once and ``numbers`` digit sequences (1-4 digits spoken as
words, e.g. "three seven two", drawn per clip from a seeded generator), at a speed (words per minute) and pitch
drawn from the same generator. As in ``builtin:speech_commands`` (``_synth``) each clip is resampled to 16 kHz,
trimmed, placed at a random offset in a ``seconds`` window at a random level and mixed with white or brown noise
at 30/20/10 dB SNR; a phrase too long for the window is spoken again 40 words per minute faster until it fits, so
no clip is cut.

The table has ``audio`` (base64 WAV, 16-bit), ``text`` (the transcript), ``voice`` and ``speaker``
(``voice+variant``): split by ``voice``, the test clips are spoken by voices (accents) never heard in training.
Cached as ``speech/phrases-<key>.parquet`` under ``$FULCRUM_CACHE_DIR`` or ``$FULCRUM_HOME/cache``; the key covers
every parameter and the espeak-ng version.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np
import pandas as pd

from ._data import SAMPLE_RATE, to_wav
from ._synth import DIGITS, _base64, _mix, _say, _trim, _version, espeak, recipe_path, store

__all__ = ["PHRASES", "PHRASE_VOICES", "PHRASE_VARIANTS", "synthesize_phrases", "speech_phrases"]

PHRASES = ("stop", "go", "go back", "turn left", "turn right", "move forward", "yes", "no", "up", "down",
           "open the door", "close the door", "lights on", "lights off", "speed up", "slow down", "start", "pause",
           "play music", "next song", "call home", "sit down", "stand up", "come here", "look left", "look right",
           "volume up", "volume down")
PHRASE_VOICES = ("en-us", "en-us-nyc", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
                 "en-029")
# 8 timbres per voice (not 4) and 16 digit sequences (not 8): trained on 4 timbres x 5 voices the model carried
# over to unseen voices poorly (test WER 0.30 against 0.22 on the validation voice)
PHRASE_VARIANTS = ("m1", "m2", "m3", "m4", "f1", "f2", "f3", "f4")
GENERATOR = 1  # bump when the recipe changes (a new cache key)
MARGIN_S = 0.1  # silence kept around the longest phrase


def synthesize_phrases(phrases: Sequence[str] = PHRASES, voices: Sequence[str] = PHRASE_VOICES,
                       variants: Sequence[str] = PHRASE_VARIANTS, numbers: int = 16, seed: int = 0,
                       seconds: float = 3.0, cache: bool = True) -> pd.DataFrame:
    """``audio`` (base64 WAV), ``text``, ``voice``, ``speaker`` for every voice x variant x (phrase + ``numbers``
    digit sequences), deterministic by ``seed``; cached (see the module docstring)."""
    exe = espeak()
    recipe = {"phrases": list(phrases), "voices": list(voices), "variants": list(variants), "numbers": int(numbers),
              "seed": int(seed), "seconds": float(seconds), "generator": GENERATOR, "espeak": _version(exe),
              "rate": SAMPLE_RATE}
    path = recipe_path(recipe, "phrases-")
    if cache and path.exists():
        return _base64(pd.read_parquet(path))
    samples = int(round(seconds * SAMPLE_RATE))
    fits = samples - int(2 * MARGIN_S * SAMPLE_RATE)
    rng = np.random.default_rng(seed)
    jobs = []
    for voice in voices:
        for variant in variants:
            texts = list(phrases) + [" ".join(DIGITS[d] for d in rng.integers(0, 10, int(rng.integers(1, 5))))
                                     for _ in range(int(numbers))]
            for text in texts:
                jobs.append((text, voice, variant, int(rng.integers(130, 190)), int(rng.integers(25, 75)),
                             int(rng.integers(0, 2**31 - 1))))

    def make(job: tuple[str, str, str, int, int, int]) -> dict[str, object]:
        text, voice, variant, speed, pitch, s = job
        x = _trim(_say(exe, text, f"{voice}+{variant}", speed, pitch))
        while len(x) > fits and speed < 450:
            speed += 40
            x = _trim(_say(exe, text, f"{voice}+{variant}", speed, pitch))
        clip, snr = _mix(x, np.random.default_rng(s), samples)
        return {"audio": to_wav(clip), "text": text, "voice": voice, "speaker": f"{voice}+{variant}"}

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        rows = list(pool.map(make, jobs))
    return store(pd.DataFrame(rows)[["audio", "text", "voice", "speaker"]], path if cache else None)


def speech_phrases() -> pd.DataFrame:
    """The built-in ``speech_phrases`` table: 8 voices x 8 variants x (28 phrases + 16 digit sequences) = 2,816
    clips of 3 s."""
    return synthesize_phrases()
