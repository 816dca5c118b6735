"""Text data: which column is free text, the one rule for a valid text, and text statistics.

A column is free text when its values are strings with a median of at least 5 words or 30
characters, and at least half of them are distinct (labels and categories repeat; texts do not).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ...errors import DataError, SchemaError

__all__ = ["TextColumn", "text_columns", "check_text", "clean_training_texts", "text_stats", "word_vocabulary",
           "MIN_MEDIAN_WORDS", "MIN_MEDIAN_CHARS", "MIN_UNIQUE_SHARE", "DEFAULT_MAX_CHARS"]

MIN_MEDIAN_WORDS = 5
MIN_MEDIAN_CHARS = 30
MIN_UNIQUE_SHARE = 0.5
DEFAULT_MAX_CHARS = 10_000
QUANTILES = (1, 5, 25, 50, 75, 95, 99)
PROFILE_VOCABULARY = 20_000  # the most frequent training words kept in profile.json for OOV-rate drift
_SAMPLE = 2_000  # rows looked at per column when detecting


class TextColumn:
    """A column that holds free text, with the figures that made it so."""

    def __init__(self, name: str, median_words: float, median_chars: float, unique_share: float) -> None:
        self.name, self.median_words, self.median_chars, self.unique_share = name, median_words, median_chars, unique_share

    def reason(self) -> str:
        return (f"column {self.name!r} holds free text (median {self.median_words:.0f} words / {self.median_chars:.0f} "
                f"characters, {100 * self.unique_share:.0f}% distinct)")


def text_columns(frame: pd.DataFrame, target: str | None) -> list[TextColumn]:
    """The free-text columns of ``frame`` (the target excluded), longest median first."""
    found = []
    for name in frame.columns:
        if name == target:
            continue
        col = frame[name]
        if not (pd.api.types.is_object_dtype(col.dtype) or pd.api.types.is_string_dtype(col.dtype)):
            continue
        values = col.dropna()
        if len(values) > _SAMPLE:
            values = values.sample(_SAMPLE, random_state=0)
        values = values[[isinstance(v, str) for v in values]]
        if len(values) < max(1, 0.5 * min(len(col.dropna()), _SAMPLE)):
            continue
        n_words = values.map(lambda t: len(t.split()))
        n_chars = values.map(len)
        med_w, med_c = float(n_words.median()), float(n_chars.median())
        unique = values.nunique() / len(values)
        if (med_w >= MIN_MEDIAN_WORDS or med_c >= MIN_MEDIAN_CHARS) and unique >= MIN_UNIQUE_SHARE:
            found.append(TextColumn(str(name), med_w, med_c, unique))
    return sorted(found, key=lambda c: -c.median_chars)


def check_text(value: Any, max_chars: int, where: str = "text") -> str:
    """``value`` as a text the model accepts, or a SchemaError naming the problem and the fix."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SchemaError(f"{where} is not valid UTF-8 (byte {exc.start}); send text encoded as UTF-8.") from None
    if not isinstance(value, str):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            raise SchemaError(f"{where} is missing; send a non-empty string.")
        raise SchemaError(f"{where} must be a string, got {type(value).__name__} {value!r:.40}; send the text as a string.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise SchemaError(f"{where} holds an unpaired surrogate (not valid Unicode); send valid UTF-8 text.") from None
    if "\x00" in value:
        raise SchemaError(f"{where} contains a NUL character (\\x00); remove it (the tokenizer would stop reading there).")
    if not value.strip():
        raise SchemaError(f"{where} is empty or only whitespace; send some text to classify.")
    if len(value) > max_chars:
        raise SchemaError(f"{where} has {len(value)} characters, more than this model's limit of {max_chars}; "
                          f"shorten it or split it into several texts.")
    return value


def clean_training_texts(frame: pd.DataFrame, text_col: str, log: Any) -> pd.DataFrame:
    """Training rows with a usable text: missing or empty texts dropped, NUL removed, non-strings as str,
    each change said in one notice."""
    col = frame[text_col]
    missing = col.isna()
    texts = col.where(missing, col.astype(str))
    nul = texts.fillna("").str.contains("\x00", regex=False)
    if nul.any():
        texts = texts.where(~nul, texts.fillna("").str.replace("\x00", "", regex=False))
        log(f"note: removed NUL characters from {int(nul.sum())} text(s) in {text_col!r}")
    empty = missing | (texts.fillna("").str.strip() == "")
    if empty.all():
        raise DataError(f"Every value of the text column {text_col!r} is missing or empty; choose the column that holds the texts.")
    if empty.any():
        log(f"note: dropped {int(empty.sum())} row(s) whose text {text_col!r} is missing or empty")
    out = frame.loc[~empty].copy()
    out[text_col] = texts[~empty].astype(str)
    return out.reset_index(drop=True)


def _quantiles(x: Sequence[float]) -> dict[str, float]:
    arr = np.asarray(x, dtype=np.float64)
    if not arr.size:
        return {}
    return {f"p{q}": float(v) for q, v in zip(QUANTILES, np.percentile(arr, QUANTILES))}


def word_vocabulary(texts: Sequence[str], limit: int = PROFILE_VOCABULARY) -> list[str]:
    from ._ngram import words

    counts = Counter(w for t in texts for w in words(t))
    return [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]]


def text_stats(texts: Sequence[str], token_lengths: Sequence[int] | None = None) -> dict[str, Any]:
    """Length quantiles (characters, words, tokens) and their means, for the profile and FLOP counts."""
    from ._ngram import words

    chars = [len(t) for t in texts]
    n_words = [len(words(t)) for t in texts]
    out: dict[str, Any] = {"n": len(texts), "chars": {"mean": float(np.mean(chars)) if chars else 0.0, **_quantiles(chars)},
                           "words": {"mean": float(np.mean(n_words)) if n_words else 0.0, **_quantiles(n_words)}}
    if token_lengths is not None:
        out["tokens"] = {"mean": float(np.mean(token_lengths)) if len(token_lengths) else 0.0, **_quantiles(token_lengths)}
    return out
