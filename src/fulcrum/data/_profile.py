"""Training-data profile (for drift and out-of-distribution checks) and a content fingerprint."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from ._coerce import (
    DATETIME_PARTS,
    MISSING_CATEGORY,
    category_strings,
    datetime_parts,
    missing_mask,
    text_values,
    to_bool,
    to_datetime,
    to_float,
    tokenize,
)
from ._schema import Schema, blank_na_tokens
from ._target import infer_task

__all__ = ["profile_frame", "fingerprint", "QUANTILES", "MAX_TOP_CATEGORIES"]

QUANTILES = (1, 5, 25, 50, 75, 95, 99)
MAX_TOP_CATEGORIES = 50
HISTOGRAM_BINS = 10


def profile_frame(df: pd.DataFrame, schema: Schema) -> dict[str, Any]:
    """Per-column statistics of ``df`` (the training split) as plain JSON types.

    ``{"n_rows": N, "columns": {name: stats}, "target": stats | None}`` where stats hold
    ``kind``, ``count`` (non-missing), ``missing`` (fraction) and, by kind:

    - numeric: mean, std (population), min, max, quantiles {"p1": ...}, histogram
      {"edges": decile edges of the training values (ties merged), "fractions": share of values per bin}
    - datetime: min, max (ISO) and ``parts`` {year|month|day_of_week|day_of_year: numeric stats}
    - categorical / boolean: n_unique and ``top`` {category: fraction of non-missing values}, up to 50
    - text: avg_tokens over non-missing values
    """
    columns: dict[str, Any] = {}
    for spec in schema.features:
        col = blank_na_tokens(df[spec.name], spec.na_tokens) if spec.kind == "numeric" else df[spec.name]
        missing = missing_mask(col)
        stats: dict[str, Any] = {"kind": spec.kind, "count": int((~missing).sum()), "missing": _frac(missing.sum(), len(col))}
        if spec.kind == "numeric":
            stats.update(_numeric_stats(to_float(col, spec.name)))
        elif spec.kind == "datetime":
            dt = to_datetime(col, spec.name)
            present = dt.dropna()
            stats["min"] = present.min().isoformat() if len(present) else None
            stats["max"] = present.max().isoformat() if len(present) else None
            parts = datetime_parts(dt)
            stats["parts"] = {p: _numeric_stats(parts[p]) for p in DATETIME_PARTS}
        elif spec.kind == "boolean":
            values = to_bool(col, spec.name)
            labels = np.where(values == 1, "true", "false")[~np.isnan(values)]
            stats.update(_category_stats(labels))
        elif spec.kind == "categorical":
            labels = category_strings(col)
            stats.update(_category_stats(labels[labels != MISSING_CATEGORY]))
        elif spec.kind == "text":
            counts = [len(tokenize(t)) for t, m in zip(text_values(col), missing) if not m]
            stats["avg_tokens"] = float(np.mean(counts)) if counts else 0.0
        columns[spec.name] = stats
    target = None
    if schema.target is not None and schema.target in df.columns:
        y = df[schema.target]
        missing = missing_mask(y)
        target = {"count": int((~missing).sum()), "missing": _frac(missing.sum(), len(y))}
        if target["count"] and infer_task(y) == "regression":
            target.update(kind="numeric", **_numeric_stats(to_float(y, schema.target)))
        else:
            labels = category_strings(y)
            target.update(kind="categorical", **_category_stats(labels[labels != MISSING_CATEGORY]))
    return {"n_rows": len(df), "columns": columns, "target": target}


def _frac(part: float, whole: int) -> float:
    return float(part) / whole if whole else 0.0


def _numeric_stats(values: np.ndarray) -> dict[str, Any]:
    x = values[~np.isnan(values)]
    if x.size == 0:
        return {"mean": None, "std": None, "min": None, "max": None, "quantiles": None, "histogram": None}
    qs = np.quantile(x, [q / 100 for q in QUANTILES])
    edges = np.unique(np.quantile(x, np.linspace(0, 1, HISTOGRAM_BINS + 1)))
    if edges.size == 1:
        edges = np.array([edges[0], edges[0]])
        counts = np.array([x.size])
    else:
        counts, _ = np.histogram(x, bins=edges)
    return {
        "mean": float(x.mean()),
        "std": float(x.std()),
        "min": float(x.min()),
        "max": float(x.max()),
        "quantiles": {f"p{q}": float(v) for q, v in zip(QUANTILES, qs)},
        "histogram": {"edges": [float(e) for e in edges], "fractions": [float(c) / x.size for c in counts]},
    }


def _category_stats(labels: np.ndarray) -> dict[str, Any]:
    counts = Counter(labels.tolist())
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    total = len(labels)
    return {"n_unique": len(counts), "top": {str(k): v / total for k, v in ranked[:MAX_TOP_CATEGORIES]}}


def fingerprint(df: pd.DataFrame) -> str:
    """sha256 hex of the data: column names, dtypes and every value (row order matters, the index does not)."""
    h = hashlib.sha256()
    h.update(json.dumps([[str(c), str(t)] for c, t in df.dtypes.items()]).encode())
    h.update(pd.util.hash_pandas_object(df, index=False).to_numpy(dtype=np.uint64).tobytes())
    return h.hexdigest()
