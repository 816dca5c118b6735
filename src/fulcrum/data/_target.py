"""The prediction target: which task it implies, its checks, and label encoding."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd

from ..errors import DataError, NotFittedError
from ._coerce import is_plain_numeric, missing_mask
from ._schema import check_column

__all__ = ["LabelCodec", "infer_task", "check_target"]

Task = Literal["classification", "regression"]
#: An integer-valued target with at most this many distinct values (and few per row) is a class label.
MAX_CLASSES_FOR_AUTO = 20
MAX_CLASS_RATIO_FOR_AUTO = 0.5


def _label(v: Any) -> str | int | float | bool:
    """A label as a plain JSON-able Python value; integral floats become ints."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return int(v) if float(v).is_integer() else float(v)
    return str(v)


def _labels(series: pd.Series) -> list[str | int | float | bool]:
    values = [_label(v) for v in series.to_numpy(dtype=object)]
    kinds = {type(v) for v in values}
    if kinds <= {int, float} or len(kinds) <= 1:
        return values
    return [str(v) for v in values]  # mixed strings and numbers: compare as strings


def _numeric_or_none(s: pd.Series) -> np.ndarray | None:
    if pd.api.types.is_bool_dtype(s.dtype):
        return None
    if is_plain_numeric(s):
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    if any(isinstance(v, (bool, np.bool_)) for v in s):
        return None
    num = pd.to_numeric(s, errors="coerce")
    return num.to_numpy(dtype=np.float64, na_value=np.nan) if num.notna().all() else None


class LabelCodec:
    """Map class labels to 0..k-1 and back. ``classes_`` is sorted and JSON-able."""

    def __init__(self) -> None:
        self._classes: list[Any] | None = None

    @property
    def classes_(self) -> list[Any]:
        if self._classes is None:
            raise NotFittedError("This LabelCodec is not fitted yet; call fit(y_train) before using it.")
        return self._classes

    @property
    def n_classes_(self) -> int:
        return len(self.classes_)

    def fit(self, y: pd.Series | np.ndarray | list[Any]) -> LabelCodec:
        s = pd.Series(y)
        s = s[~missing_mask(s)]
        if s.empty:
            raise DataError("Cannot fit a LabelCodec on an empty or all-missing target; pass the training labels.")
        self._classes = sorted(set(_labels(s)), key=lambda v: (isinstance(v, str), v))
        return self

    def encode(self, y: pd.Series | np.ndarray | list[Any]) -> np.ndarray:
        """Labels -> int64 codes. Raises DataError on a missing or unseen label."""
        classes = self.classes_
        s = pd.Series(y)
        miss = missing_mask(s)
        if miss.any():
            pos = int(np.flatnonzero(miss)[0])
            raise DataError(f"Target holds a missing label at row {pos} (0-based); drop rows without a label first (check_target does).")
        as_str = isinstance(classes[0], str)
        index = {(str(c) if as_str else c): i for i, c in enumerate(classes)}
        labels = [str(v) if as_str else v for v in _labels(s)]
        codes = np.array([index.get(v, -1) for v in labels], dtype=np.int64)
        if (codes < 0).any():
            unseen = sorted({str(labels[i]) for i in np.flatnonzero(codes < 0)})[:5]
            raise DataError(
                f"Target holds label(s) {unseen} not seen when the codec was fitted (known: {classes}); "
                "fit on data that contains every class, or drop those rows."
            )
        return codes

    def decode(self, codes: np.ndarray | list[int]) -> np.ndarray:
        """int codes -> labels (same types as ``classes_``)."""
        classes = self.classes_
        idx = np.asarray(codes)
        if idx.size and (not np.issubdtype(idx.dtype, np.integer) or idx.min() < 0 or idx.max() >= len(classes)):
            raise DataError(f"Class codes must be integers in [0, {len(classes) - 1}]; got values outside that range or of type {idx.dtype}.")
        return np.asarray(classes, dtype=object if isinstance(classes[0], str) else None)[idx]

    def to_dict(self) -> dict[str, Any]:
        return {"classes": list(self.classes_)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabelCodec:
        classes = data.get("classes") if isinstance(data, dict) else None
        if not isinstance(classes, list) or not classes:
            raise DataError("LabelCodec dict needs a non-empty 'classes' list, as written by LabelCodec.to_dict().")
        codec = cls()
        codec._classes = list(classes)
        return codec

    def __repr__(self) -> str:
        return f"LabelCodec(classes={self._classes!r})" if self._classes is not None else "LabelCodec(not fitted)"


def infer_task(y: pd.Series | np.ndarray | list[Any]) -> Task:
    """'classification' for non-numeric, boolean or few-valued integer targets; else 'regression'."""
    s = pd.Series(y)
    s = s[~missing_mask(s)]
    if s.empty:
        raise DataError("Cannot infer the task from an empty or all-missing target; pass task='classification' or 'regression'.")
    values = _numeric_or_none(s)
    if values is None:
        return "classification"
    nunique = len(np.unique(values))
    integral = bool(np.all(np.mod(values, 1) == 0))
    if integral and nunique <= MAX_CLASSES_FOR_AUTO and nunique <= MAX_CLASS_RATIO_FOR_AUTO * len(values):
        return "classification"
    return "regression"


def check_target(df: pd.DataFrame, target: str, task: str = "auto") -> tuple[pd.DataFrame, int]:
    """Validate ``df[target]`` for ``task``; return (rows with a target, index reset; number dropped).

    A regression target is returned as float64.
    """
    check_column(df, target)
    if task not in ("auto", "classification", "regression"):
        raise DataError(f"task must be 'auto', 'classification' or 'regression', got {task!r}.")
    col = df[target]
    missing = missing_mask(col)
    if missing.all():
        raise DataError(f"Target column {target!r} has no values (all {len(col)} are missing); choose a column with labels.")
    clean = df.loc[~missing].reset_index(drop=True)
    y = clean[target]
    resolved = infer_task(y) if task == "auto" else task
    if resolved == "classification":
        classes = LabelCodec().fit(y).classes_
        if len(classes) < 2:
            raise DataError(
                f"Classification target {target!r} needs at least two classes; found only {classes[0]!r}. "
                "Add rows of another class or choose another target."
            )
    else:
        values = _numeric_or_none(y)
        if values is None:
            bad = next(v for v in y if pd.isna(pd.to_numeric(pd.Series([v]), errors="coerce")[0]))
            raise DataError(
                f"Regression target {target!r} holds non-numeric value {bad!r}; "
                "use task='classification' for labels, or clean the column to numbers."
            )
        if not np.isfinite(values).all():
            raise DataError(f"Regression target {target!r} holds an infinite value; replace it with a finite number or drop the row.")
        if len(np.unique(values)) < 2:
            raise DataError(f"Regression target {target!r} is constant ({values[0]:g}); a model needs a target that varies.")
        clean[target] = values
    return clean, int(missing.sum())
