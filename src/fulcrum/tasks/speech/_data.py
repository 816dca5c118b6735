"""Audio data: decoding with soundfile under limits, resampling to 16 kHz mono, fixed-length clips, folders of
class subfolders and tables of paths.

A clip reaches the model as an encoded file (WAV, FLAC or OGG/Vorbis: what libsndfile reads), given as ``bytes``,
a base64 string (optionally a ``data:audio/...;base64,`` URI), or as float PCM samples (a 1-D array at 16 kHz).
Every path checks the same limits: at most ``max_bytes`` encoded bytes and ``max_seconds`` of audio (read from
the header before any sample is decoded), a readable, complete file with at least one sample and one or two
channels. Decoded audio is averaged to mono and resampled to 16 kHz with ``scipy.signal.resample_poly`` (a
polyphase FIR with a Kaiser window), then cut or padded to the model's fixed length (:func:`fix_length`).

In tables the clips travel as base64 strings (column ``audio``); a folder ``root/<class>/<file>.wav|flac``
reads into such a table with ``label`` = the subfolder's name and ``path`` = the file relative to ``root``.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from ...errors import SchemaError
from .. import _media as media

__all__ = ["SAMPLE_RATE", "AUDIO_SUFFIXES", "DEFAULT_MAX_BYTES", "DEFAULT_MAX_SECONDS", "decode_audio", "fix_length",
           "to_wav", "to_base64", "audio_columns", "path_columns", "is_audio_folder", "read_folder", "load_paths",
           "resample"]

SAMPLE_RATE = 16_000
AUDIO_SUFFIXES = (".wav", ".flac")
DEFAULT_MAX_BYTES = 4 * 1024 * 1024  # encoded size of one clip
DEFAULT_MAX_SECONDS = 10.0  # duration of one clip


FILES = media.FileKind(column="audio", suffixes=AUDIO_SUFFIXES, folder="audio", files="clips", every="a clip",
                       plural="clips", not_one="a WAV or FLAC file", layout="root/<class>/<clip>.wav|flac",
                       folder_of="WAV/FLAC clips", data_uri="data:audio/wav;base64,...",
                       send="the WAV or FLAC file's bytes base64-encoded", one="a clip",
                       formats="a WAV or FLAC file", smaller="a shorter clip", signatures="WAV, FLAC or OGG",
                       looks=lambda data: _looks_audio(data))


def _looks_audio(data: bytes) -> bool:
    return (data[:4] == b"RIFF" and data[8:12] == b"WAVE") or data[:4] in (b"fLaC", b"OggS")


def resample(x: np.ndarray, rate: int) -> np.ndarray:
    """``x`` (mono, at ``rate`` Hz) at 16 kHz: scipy's polyphase resampler (anti-aliasing FIR, Kaiser window)."""
    if int(rate) == SAMPLE_RATE:
        return x.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    g = math.gcd(int(rate), SAMPLE_RATE)
    return resample_poly(x.astype(np.float64), SAMPLE_RATE // g, int(rate) // g).astype(np.float32)


def decode_audio(value: Any, *, max_bytes: int = DEFAULT_MAX_BYTES, max_seconds: float = DEFAULT_MAX_SECONDS,
                 where: str = "audio") -> np.ndarray:
    """``value`` as float32 mono PCM at 16 kHz (any length), or a SchemaError naming the problem and the fix."""
    import soundfile as sf

    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        x = value.astype(np.float32)
        if x.ndim != 1:
            raise SchemaError(f"{where}: PCM samples are a 1-D array at {SAMPLE_RATE} Hz, got shape {x.shape}.")
        if x.size == 0:
            raise SchemaError(f"{where} has no samples (zero-length audio); send at least a few milliseconds.")
        if x.size > max_seconds * SAMPLE_RATE:
            raise SchemaError(f"{where} is {x.size / SAMPLE_RATE:.1f} s long, more than this model's limit of "
                              f"{max_seconds:g} s (max_seconds); send a shorter clip.")
        if not np.isfinite(x).all():
            raise SchemaError(f"{where} has non-finite samples (NaN or inf); send PCM in [-1, 1].")
        return x
    data = media.encoded_bytes(value, where, FILES, max_bytes)
    if data[:4] == b"RIFF":  # libsndfile reads a cut WAV silently: compare the data chunk's declared size
        at = data.find(b"data", 12)
        if at > 0 and len(data) >= at + 8:
            declared = int.from_bytes(data[at + 4: at + 8], "little")
            if declared not in (0, 0xFFFFFFFF) and declared > len(data) - at - 8:
                raise SchemaError(f"{where} is truncated ({len(data) - at - 8} of the {declared} data bytes its header "
                                  "declares); send the complete file.")
    try:
        info = sf.info(io.BytesIO(data))
        frames, rate, channels = int(info.frames), int(info.samplerate), int(info.channels)
    except Exception as exc:  # noqa: BLE001 - libsndfile raises its own kinds for broken files
        raise SchemaError(f"{where} cannot be decoded ({type(exc).__name__}: {str(exc)[:80]}); it is corrupt or "
                          "truncated: send a complete WAV or FLAC file.") from None
    if channels not in (1, 2):
        raise SchemaError(f"{where} has {channels} channels; send mono or stereo audio (stereo is averaged).")
    if rate < 4000 or rate > 192_000:
        raise SchemaError(f"{where} has a sample rate of {rate} Hz; send audio sampled between 4 and 192 kHz.")
    if frames <= 0:
        raise SchemaError(f"{where} has no samples (zero-length audio); send at least a few milliseconds.")
    if frames > max_seconds * rate:
        raise SchemaError(f"{where} is {frames / rate:.1f} s long, more than this model's limit of {max_seconds:g} s "
                          "(max_seconds); send a shorter clip.")
    try:
        x, _ = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as exc:  # noqa: BLE001
        raise SchemaError(f"{where} cannot be decoded ({type(exc).__name__}: {str(exc)[:80]}); it is corrupt or "
                          "truncated: send a complete WAV or FLAC file.") from None
    if len(x) < frames:
        raise SchemaError(f"{where} is truncated ({len(x)} of the {frames} samples its header declares); send the "
                          "complete file.")
    x = x.mean(axis=1)
    if not np.isfinite(x).all():
        raise SchemaError(f"{where} has non-finite samples (NaN or inf); send PCM audio.")
    return resample(x, rate)


def fix_length(x: np.ndarray, n: int, hop: int = 160) -> np.ndarray:
    """``x`` as exactly ``n`` samples: a shorter clip centred between zeros; from a longer one, the ``n``-sample
    window (on a ``hop`` grid) with the most energy."""
    x = np.asarray(x, np.float32)
    if len(x) == n:
        return x
    if len(x) < n:
        out = np.zeros(n, np.float32)
        left = (n - len(x)) // 2
        out[left: left + len(x)] = x
        return out
    c = np.concatenate([[0.0], np.cumsum(x.astype(np.float64) ** 2)])
    starts = np.arange(0, len(x) - n + 1, hop)
    best = int(starts[np.argmax(c[starts + n] - c[starts])])
    return np.ascontiguousarray(x[best: best + n])


def to_wav(x: np.ndarray, rate: int = SAMPLE_RATE) -> bytes:
    """Float PCM -> a 16-bit PCM WAV file."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(np.asarray(x, np.float32), -1.0, 1.0), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


to_base64 = media.to_base64


def audio_columns(frame: pd.DataFrame, target: str | None) -> list[str]:
    """Columns whose values are audio files (base64 strings or bytes of WAV/FLAC/OGG files)."""
    return media.encoded_columns(frame, target, _looks_audio)


def path_columns(frame: pd.DataFrame, target: str | None) -> list[str]:
    """Columns whose values are file names ending in .wav or .flac (a table of paths and labels)."""
    return media.suffix_columns(frame, target, AUDIO_SUFFIXES)


def _reader(max_bytes: int, max_seconds: float) -> Callable[[Path, str], bytes]:
    def read(path: Path, where: str) -> bytes:
        return media.read_checked(path, where, max_bytes, lambda data: decode_audio(
            data, max_bytes=max_bytes, max_seconds=max_seconds, where=where))
    return read


def is_audio_folder(source: Any) -> bool:
    """Whether ``source`` is a folder with at least one subfolder holding a .wav or .flac file."""
    return media.is_class_folder(source, AUDIO_SUFFIXES)


def read_folder(source: Any, *, max_bytes: int = DEFAULT_MAX_BYTES, max_seconds: float = DEFAULT_MAX_SECONDS,
                log: Callable[[str], None] | None = None) -> pd.DataFrame:
    """``root/<class>/<clip>`` -> a table ``audio`` (base64), ``label`` (the subfolder), ``path`` (relative).

    Every file is checked (not a WAV/FLAC file, corrupt, truncated, empty, over the limits, a symlink out of
    the root: one DataError naming it). Hidden files are skipped."""
    return media.read_class_folder(source, FILES, _reader(max_bytes, max_seconds), log)


def load_paths(frame: pd.DataFrame, column: str, root: Path, *, max_bytes: int = DEFAULT_MAX_BYTES,
               max_seconds: float = DEFAULT_MAX_SECONDS) -> pd.DataFrame:
    """A table of paths -> the same table with an ``audio`` column (base64) read from inside ``root``."""
    return media.load_path_column(frame, column, root, FILES, _reader(max_bytes, max_seconds))
