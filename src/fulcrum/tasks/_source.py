"""Re-reading the table a package was trained on (to re-create its held-out split for evaluate, optimize and
compare): one rule for every task that records its source and fingerprint."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pandas as pd

from ..errors import DataError

__all__ = ["training_table"]


def training_table(package: Any, data: Any, read: Callable[[Any], pd.DataFrame], *, what: str = "data",
                   flag: str = "PATH") -> tuple[pd.DataFrame, str]:
    """(the training table, its source) for ``package``: ``data`` when given (a frame, or a path ``read`` reads),
    else the recorded source; refused when the source is gone or the table's fingerprint is not the recorded one
    (its test split could not be re-created). ``what`` names the rows in messages ("images", "clips")."""
    from .. import data as D

    m = package.manifest
    source = (m.get("data") or {}).get("source")
    if data is None:
        if not source or source in ("dataframe", "estimator"):
            raise DataError(f"{package.ref} was trained on an in-memory table, so its training {what} cannot be "
                            f"re-read; pass the same data (Python: data=frame; CLI: --data {flag}).")
        if not source.startswith("builtin:") and not Path(source).exists():
            raise DataError(f"The training data {source!r} of {package.ref} no longer exists; pass the same data "
                            f"with --data {flag} (Python: data=...).")
        data = source
    frame = data if isinstance(data, pd.DataFrame) else read(data)
    stored = (m.get("data") or {}).get("fingerprint")
    if stored and D.fingerprint(frame.reset_index(drop=True)) != stored:
        raise DataError(f"The data differs from the data {package.ref} was trained on (fingerprint mismatch), so "
                        f"its held-out test split cannot be re-created; pass the original training data with "
                        f"--data {flag}.")
    return frame, (data if isinstance(data, str) else source or "dataframe")
