"""Spoken command words synthesized with espeak-ng, reproducibly, into the data cache.

``builtin:speech_commands``: the words yes, no, up, down, left, right, stop, go and the digits zero..nine, each
spoken by every *speaker* = an espeak-ng voice (en-us, en-gb, en-gb-scotland, en-gb-x-rp, en-gb-x-gbclan,
en-gb-x-gbcwmd, en-029) with a voice variant (m1, m3, f1, f3: male and female timbres), ``clips`` times at a speed
(words per minute) and pitch drawn from a seeded generator; each clip is resampled to 16 kHz, placed at a random
offset in a 1 s window at a random level, and mixed with white or low-passed (brown) noise at an SNR drawn from
{30, 20, 10} dB. The table has ``audio`` (base64 WAV, 16-bit), ``label`` and ``speaker``, so a split can hold
whole speakers out. It is generated on first use into ``$FULCRUM_CACHE_DIR`` or ``$FULCRUM_HOME/cache``
(``speech/<key>.parquet``, written atomically); the key covers every parameter and the espeak-ng version.

This is synthetic speech: clean, few timbres, no room acoustics. No recorded speech ships in an installable
package we could find.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ...errors import DataError
from ._data import SAMPLE_RATE, fix_length, resample, to_base64, to_wav

__all__ = ["COMMANDS", "DIGITS", "VOICES", "VARIANTS", "espeak", "synthesize", "speech_commands"]

COMMANDS = ("yes", "no", "up", "down", "left", "right", "stop", "go")
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029")
VARIANTS = ("m1", "m3", "f1", "f3")
SNRS_DB = (30.0, 20.0, 10.0)
GENERATOR = 1  # bump when the recipe changes (a new cache key)


def espeak() -> str:
    """The espeak-ng executable, or a DataError saying how to install it."""
    path = shutil.which("espeak-ng")
    if path is None:
        raise DataError("The built-in speech data is synthesized with espeak-ng, which is not installed; install it "
                        "(Debian/Ubuntu: apt-get install espeak-ng; macOS: brew install espeak-ng) and run again.")
    return path


def _version(exe: str) -> str:
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
    return out.stdout.strip()


def _say(exe: str, word: str, voice: str, speed: int, pitch: int) -> np.ndarray:
    import soundfile as sf

    run = subprocess.run([exe, "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", word],
                         capture_output=True, timeout=60)
    if run.returncode != 0 or len(run.stdout) < 64:
        raise DataError(f"espeak-ng failed for {word!r} with voice {voice!r}: {run.stderr.decode(errors='replace')[:200]}")
    # espeak-ng streams to stdout, so its WAV header carries placeholder sizes: read the PCM after the header
    data = bytearray(run.stdout)
    if data[:4] == b"RIFF":
        data[4:8] = (len(data) - 8).to_bytes(4, "little")
        at = data.find(b"data")
        if at > 0:
            data[at + 4: at + 8] = (len(data) - at - 8).to_bytes(4, "little")
    x, rate = sf.read(io.BytesIO(bytes(data)), dtype="float32", always_2d=True)
    return resample(x.mean(axis=1), rate)


def _trim(x: np.ndarray, floor: float = 1e-3) -> np.ndarray:
    loud = np.flatnonzero(np.abs(x) > floor)
    return x[loud[0]: loud[-1] + 1] if len(loud) else x


def _mix(speech: np.ndarray, rng: np.random.Generator, samples: int) -> tuple[np.ndarray, float]:
    speech = _trim(speech)
    if len(speech) > samples:
        speech = fix_length(speech, samples)
    clip = np.zeros(samples, np.float32)
    at = int(rng.integers(0, samples - len(speech) + 1))
    clip[at: at + len(speech)] = speech / max(float(np.abs(speech).max()), 1e-6) * float(rng.uniform(0.3, 0.9))
    snr = float(rng.choice(SNRS_DB))
    noise = rng.standard_normal(samples)
    if rng.random() < 0.5:  # brown: integrated white noise, high-passed by removing its drift
        noise = np.cumsum(noise)
        noise = noise - np.convolve(noise, np.ones(401) / 401, mode="same")
    rms_s = float(np.sqrt(np.mean(speech.astype(np.float64) ** 2)) * np.abs(clip).max() / max(np.abs(speech).max(), 1e-6))
    noise = noise / max(float(np.sqrt(np.mean(noise ** 2))), 1e-12) * rms_s / 10 ** (snr / 20)
    return np.clip(clip + noise.astype(np.float32), -1.0, 1.0), snr


def synthesize(words: Sequence[str], voices: Sequence[str] = VOICES, variants: Sequence[str] = VARIANTS,
               clips: int = 2, seed: int = 0, seconds: float = 1.0, cache: bool = True) -> pd.DataFrame:
    """``audio`` (base64 WAV), ``label``, ``speaker`` for every word x voice x variant x clip, deterministic by
    ``seed``; cached (see the module docstring)."""
    exe = espeak()
    recipe = {"words": list(words), "voices": list(voices), "variants": list(variants), "clips": int(clips),
              "seed": int(seed), "seconds": float(seconds), "generator": GENERATOR, "espeak": _version(exe),
              "rate": SAMPLE_RATE}
    path = recipe_path(recipe)
    if cache and path.exists():
        return _base64(pd.read_parquet(path))
    samples = int(round(seconds * SAMPLE_RATE))
    jobs = []
    rng = np.random.default_rng(seed)
    for voice in voices:
        for variant in variants:
            for word in words:
                for c in range(int(clips)):
                    jobs.append((word, voice, variant, int(rng.integers(120, 200)), int(rng.integers(25, 75)),
                                 int(rng.integers(0, 2**31 - 1))))

    def make(job: tuple[str, str, str, int, int, int]) -> dict[str, object]:
        word, voice, variant, speed, pitch, s = job
        x = _say(exe, word, f"{voice}+{variant}", speed, pitch)
        clip, snr = _mix(x, np.random.default_rng(s), samples)
        return {"audio": to_wav(clip), "label": word, "speaker": f"{voice}+{variant}", "speed": speed,
                "pitch": pitch, "snr_db": snr}

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        rows = list(pool.map(make, jobs))
    return store(pd.DataFrame(rows)[["audio", "label", "speaker"]], path if cache else None)


def recipe_path(recipe: dict, prefix: str = "") -> Path:
    """Where the clips of ``recipe`` (everything they depend on) are cached."""
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    return _cache_dir() / "speech" / f"{prefix}{key}.parquet"


def _base64(df: pd.DataFrame) -> pd.DataFrame:
    df["audio"] = [to_base64(b) for b in df["audio"]]
    return df


def store(df: pd.DataFrame, path: Path | None) -> pd.DataFrame:
    """Cache ``df`` (WAV bytes) at ``path`` atomically (unless None) and return it with base64 audio."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        df.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    return _base64(df)


def speech_commands() -> pd.DataFrame:
    """The built-in ``speech_commands`` table: 18 words x 28 speakers x 2 clips = 1,008 clips of 1 s."""
    return synthesize(COMMANDS + DIGITS, VOICES, VARIANTS, clips=2, seed=0)


def _cache_dir() -> Path:
    env = os.environ.get("FULCRUM_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("FULCRUM_HOME") or "~/.fulcrum").expanduser() / "cache"
