"""Train / validation / test splits and k-fold indices, deterministic for a seed."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

from ..errors import ConfigError, DataError
from ._coerce import missing_mask
from ._schema import check_column
from ._target import _labels, infer_task

__all__ = ["train_val_test_split", "kfold_indices", "MIN_ROWS"]

MIN_ROWS = 5


def train_val_test_split(
    df: pd.DataFrame,
    target: str,
    *,
    task: str = "auto",
    test_size: float = 0.2,
    val_size: float = 0.2,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Split ``df`` into (train, val, test), each with a fresh index.

    Rows without a target are dropped first. Classification splits are
    stratified when every class has enough rows, otherwise plain random.
    ``test_size``/``val_size`` are fractions of all rows; each split gets at least one row.
    """
    check_column(df, target)
    for key, value in (("test_size", test_size), ("val_size", val_size)):
        if not 0 < value < 1:
            raise ConfigError(f"{key} must be a fraction in (0, 1), got {value!r}.")
    if test_size + val_size >= 1:
        raise ConfigError(f"test_size + val_size = {test_size + val_size:g} leaves no rows to train on; keep the sum below 1.")
    data = df.loc[~missing_mask(df[target])].reset_index(drop=True)
    n = len(data)
    if n < MIN_ROWS:
        raise DataError(f"Splitting needs at least {MIN_ROWS} rows with a target, got {n}; add more data.")
    n_test = max(1, round(test_size * n))
    n_val = max(1, round(val_size * n))
    while n - n_test - n_val < 1:  # tiny data: keep at least one training row
        if n_test >= n_val and n_test > 1:
            n_test -= 1
        else:
            n_val -= 1
    stratify = task == "classification" or (task == "auto" and infer_task(data[target]) == "classification")
    labels = np.asarray([str(v) for v in _labels(data[target])], dtype=object) if stratify else None
    rest, test = _split(np.arange(n), n_test, labels, seed)
    train, val = _split(rest, n_val, labels, seed + 1)
    return tuple(data.iloc[np.sort(i)].reset_index(drop=True) for i in (train, val, test))  # type: ignore[return-value]


def _split(idx: np.ndarray, n_out: int, labels: np.ndarray | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, taken) positions; stratified when ``labels`` allow it."""
    if labels is not None:
        try:
            kept, taken = train_test_split(idx, test_size=n_out, random_state=seed, stratify=labels[idx])
            return np.asarray(kept), np.asarray(taken)
        except ValueError:  # a class too small to stratify: fall back to a random split
            pass
    kept, taken = train_test_split(idx, test_size=n_out, random_state=seed)
    return np.asarray(kept), np.asarray(taken)


def kfold_indices(y: Any, n_folds: int, *, task: str = "auto", seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n_folds`` (train_idx, val_idx) pairs over positions of ``y``; stratified for classification
    when every class has at least ``n_folds`` rows."""
    s = pd.Series(np.asarray(y, dtype=object) if not isinstance(y, pd.Series) else y.to_numpy(dtype=object))
    n = len(s)
    if isinstance(n_folds, bool) or not isinstance(n_folds, int) or n_folds < 2:
        raise ConfigError(f"n_folds must be an integer >= 2, got {n_folds!r}.")
    if n_folds > n:
        raise DataError(f"{n_folds}-fold cross-validation needs at least {n_folds} rows, got {n}; use fewer folds.")
    positions = np.arange(n)
    if task == "classification" or (task == "auto" and infer_task(s) == "classification"):
        labels = np.asarray([str(v) for v in _labels(s)], dtype=object)
        _, counts = np.unique(labels, return_counts=True)
        if counts.min() >= n_folds:
            folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed).split(positions, labels)
            return [(np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)) for a, b in folds]
    folds = KFold(n_splits=n_folds, shuffle=True, random_state=seed).split(positions)
    return [(np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)) for a, b in folds]
