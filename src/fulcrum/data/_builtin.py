"""Datasets bundled with installed packages (scikit-learn, palmerpenguins); nothing is downloaded."""

from __future__ import annotations

import dataclasses
import difflib
from typing import Callable, Literal

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


_LOADERS: dict[str, Callable[[], pd.DataFrame]] = {
    "iris": lambda: _sklearn("iris", True),
    "wine": lambda: _sklearn("wine", True),
    "breast_cancer": lambda: _sklearn("breast_cancer", True),
    "diabetes": lambda: _sklearn("diabetes", False),
    "digits": lambda: _sklearn("digits", False),
    "penguins": _penguins,
}
