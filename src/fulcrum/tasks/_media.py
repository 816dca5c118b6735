"""What the media tasks (image, speech) share when reading a table: which columns hold encoded files or file
paths, base64, and resolving a table's relative paths inside its dataset root only."""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import pandas as pd

from ..errors import DataError

__all__ = ["SAMPLE", "to_base64", "encoded_columns", "suffix_columns", "inside_root", "ood_thresholds", "OOD_BASIS", "augmented_views"]

SAMPLE = 50  # values looked at per column when detecting
AUG_VIEWS = 4  # augmented views of each training input among the OOD threshold's inputs
#: what the OOD thresholds of the media tasks are quantiles of
OOD_BASIS = "the scores of the training and validation inputs and of augmented views of the training inputs"


def to_base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _text_columns(frame: pd.DataFrame, target: str | None) -> Iterator[tuple[str, list]]:
    """(name, up to SAMPLE non-missing values) of each object/string column other than ``target``."""
    for name in frame.columns:
        if name == target or not (pd.api.types.is_object_dtype(frame[name].dtype)
                                   or pd.api.types.is_string_dtype(frame[name].dtype)):
            continue
        yield name, frame[name].dropna().head(SAMPLE).tolist()


def encoded_columns(frame: pd.DataFrame, target: str | None, looks: Callable[[bytes], bool]) -> list[str]:
    """Columns whose sampled values all are files that ``looks`` recognises from their first bytes: raw bytes,
    base64 text, or a ``data:`` URL."""
    found = []
    for name, values in _text_columns(frame, target):
        if not values:
            continue
        ok = 0
        for v in values:
            if isinstance(v, (bytes, bytearray)):
                ok += looks(bytes(v[:16]))
            elif isinstance(v, str) and len(v) >= 24:
                s = v.split(",", 1)[1] if v.startswith("data:") else v
                try:
                    ok += looks(base64.b64decode(s[:24], validate=True))
                except (binascii.Error, ValueError):
                    pass
        if ok == len(values):
            found.append(str(name))
    return found


def suffix_columns(frame: pd.DataFrame, target: str | None, suffixes: tuple[str, ...]) -> list[str]:
    """Columns whose sampled values all are file names ending in one of ``suffixes`` (a table of paths)."""
    return [str(name) for name, values in _text_columns(frame, target)
            if values and all(isinstance(v, str) and v.lower().endswith(suffixes) for v in values)]


def inside_root(root: Path, rel: str, where: str, what: str) -> Path:
    """``root / rel`` resolved (symlinks followed), refused unless it stays inside ``root``; ``what`` names the
    files in the message (``every image``)."""
    base = root.resolve()
    if os.path.isabs(rel):
        raise DataError(f"{where}: {rel!r} is an absolute path; paths in the table are relative to the dataset root "
                        f"{str(base)!r}.")
    path = (base / rel).resolve()
    if path != base and base not in path.parents:
        raise DataError(f"{where}: {rel!r} points outside the dataset root {str(base)!r} (through '..' or a symlink); "
                        f"keep {what} inside the dataset's folder.")
    return path


def ood_thresholds(*scores: Sequence[float]) -> dict[str, float]:
    """The 95th and 99th percentiles of OOD scores of training-like inputs: the training and validation inputs and
    augmented views of the training inputs (the variation the model was trained to accept). A validation split of a
    few dozen inputs alone puts its p99 at its maximum, and the training inputs' own scores are the lowest there are:
    on either, a good share of new inputs like them is flagged (measured on held-out digits: 19% on training +
    validation, 8% with the augmented views). The server and monitor flag a score at or above ``p99``."""
    import numpy as np

    s = np.concatenate([np.asarray(x, np.float64).ravel() for x in scores]) if scores else np.zeros(0)
    if not len(s):
        return {}
    return {"p95": float(np.percentile(s, 95)), "p99": float(np.percentile(s, 99))}


def augmented_views(augment: Any, X: Any, views: int = AUG_VIEWS, seed: int = 0, batch: int = 512) -> Iterator[Any]:
    """``views`` augmented copies of ``X`` (a float numpy batch), in batches, from a seeded private random state
    (the global torch state is left as it was: training stays reproducible)."""
    import numpy as np
    import torch

    if augment is None or not len(X):
        return
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for _ in range(views):
            for s in range(0, len(X), batch):
                yield np.ascontiguousarray(augment(torch.from_numpy(np.ascontiguousarray(X[s: s + batch]))).numpy())
