"""Shared data for the text task tests (imported by tests/tasks/test_text_*.py).

MiniLM embeddings land in one cache directory for the whole session (``FULCRUM_CACHE_DIR``), so each
text is embedded once however many tests use it; samples are small and ``max_length`` short.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from fulcrum.data import load_builtin

EDGE_TEXTS = [
    "hello", "Hello, World!", "naïve café résumé", "Ça va? Très bien.", "Straße ÄÖÜ äöü ß", "ﬁnancial ﬂow",
    "中文文本分类", "emoji 😀🎉👍🏽 family 👨‍👩‍👧", "zero\u200bwidth\u200djoiner",
    "control\x01\x7fchars", "soft\u00adhyphen", "<b>html</b> &amp; entities", "http://example.com/path?q=1 #tag @user",
    "numbers 3.14159 1,000,000 -42", "don't won't can't", "ALL CAPS SHOUTING!!!", "multiple     spaces\r\nand\rcr",
    "a" * 300, "tab\tseparated\tvalues", "mixed 中文 and English", "Ünïcödé Çhàráçtèrs Ðð Þþ Øø Åå Ææ",
    "quotes “smart” ‘single’ «guillemets»", "dash — en–dash …", "x", "...", "İstanbul",
    " ".join(["The quick brown fox jumps over the lazy dog."] * 60),  # truncated by the tokenizer
]
# Where the graph's tokenizer (onnxruntime-extensions, no NFD) and `tokenizers` differ: accents outside Latin-1.
NFD_TEXTS = ["日本語のテキストです", "Русский текст, ёлка", "Ελληνικά κείμενα"]


@pytest.fixture(scope="session")
def text_cache_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("text-embeddings")
    old = os.environ.get("FULCRUM_CACHE_DIR")
    os.environ["FULCRUM_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("FULCRUM_CACHE_DIR", None)
    else:
        os.environ["FULCRUM_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def bbc_small() -> pd.DataFrame:
    """150 BBC articles, 30 per topic, cut to their first 400 characters (fast to embed)."""
    df = load_builtin("bbc_news")
    parts = [g.sample(30, random_state=0) for _, g in df.groupby("label")]
    out = pd.concat(parts).sample(frac=1.0, random_state=1).reset_index(drop=True)
    out["text"] = out["text"].str.slice(0, 400)
    return out


def labels_of(df: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    labels = sorted(df["label"].unique())
    return labels, np.asarray([labels.index(v) for v in df["label"]], dtype=np.int64)
