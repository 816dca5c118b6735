"""Preprocessor: raw table -> float32 feature matrix, with per-column parameters only.

Every step is simple enough to rebuild exactly as an ONNX graph from ``to_dict()``:

- numeric:     the column's ``na_tokens`` (texts read as missing, see ``infer_schema``) to NaN ->
               clip to [lo, hi] (optional) -> NaN to median -> (x - mean) / std;
               plus ``<col>__missing`` (0/1) when the column had missing values in training
- categorical: one-hot over the training categories (``<col>=<category>``); unknown -> all zeros
- boolean:     0/1, missing -> training mode
- datetime:    year, month, day-of-week, day-of-year (``<col>__year`` ...), each imputed and standardized
- text:        binary presence of each vocabulary token (``<col>__<token>``)
"""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..errors import ConfigError, NotFittedError, SchemaError
from ._coerce import (
    DATETIME_PARTS,
    MISSING_CATEGORY,
    category_strings,
    datetime_parts,
    text_values,
    to_bool,
    to_datetime,
    to_float,
    tokenize,
)
from ._schema import Schema, blank_na_tokens

__all__ = ["Preprocessor"]

FORMAT_VERSION = 1
TEXT_VOCABULARY_SIZE = 200
TEXT_MIN_DF = 2
_MAX_REPORTED_UNKNOWN = 5


def record_unknown(
    name: str, unseen: list[str], categories: list[str], on_unknown: str,
    last_unknown: dict[str, list[str]], last_counts: dict[str, int],
) -> None:
    """Report categories never seen in training: raise (``on_unknown="error"``) or record them."""
    if not unseen:
        return
    top = [c for c, _ in Counter(unseen).most_common(_MAX_REPORTED_UNKNOWN)]
    if on_unknown == "error":
        raise SchemaError(
            f"Column {name!r} holds categories not seen in training: {top}. "
            f"Known categories: {categories[:20]}{' ...' if len(categories) > 20 else ''}. "
            "Map them to a known category, or transform with on_unknown='ignore' to encode them as all zeros."
        )
    last_unknown[name] = top
    last_counts[name] = len(unseen)


class Preprocessor:
    """Turn a table into a float32 matrix with steps fitted on the training frame only.

    Parameters
    ----------
    schema:
        Which columns are features, and of which kind (see :func:`infer_schema`).
    clip_outliers:
        Tail quantile ``q`` in (0, 0.5): numeric columns are clipped to their
        training [q, 1 - q] quantiles. None disables clipping.
    max_categories:
        Categorical columns keep their most frequent ``max_categories``
        training categories; rarer ones count as unknown (all-zero one-hot).

    Attributes (after fit): ``feature_names_``, ``n_features_``; after each
    transform ``last_unknown_`` (column -> up to 5 unseen categories),
    ``last_unknown_counts_`` (column -> rows with an unseen category) and
    ``last_extra_`` (input columns that were ignored).
    """

    def __init__(self, schema: Schema, *, clip_outliers: float | None = None, max_categories: int = 50) -> None:
        if clip_outliers is not None and not 0 < clip_outliers < 0.5:
            raise ConfigError(f"clip_outliers is a tail quantile in (0, 0.5), e.g. 0.01; got {clip_outliers!r}.")
        if isinstance(max_categories, bool) or not isinstance(max_categories, int) or max_categories < 1:
            raise ConfigError(f"max_categories must be a positive integer, got {max_categories!r}.")
        for spec in schema.features:
            if spec.kind == "identifier":
                raise SchemaError(
                    f"Column {spec.name!r} is an identifier and cannot be a feature; "
                    "list it in schema.dropped or change its kind."
                )
        self.schema = schema
        self.clip_outliers = clip_outliers
        self.max_categories = max_categories
        self.last_unknown_: dict[str, list[str]] = {}
        self.last_unknown_counts_: dict[str, int] = {}
        self.last_extra_: list[str] = []
        self._steps: list[dict[str, Any]] | None = None

    # ------------------------------------------------------------------ fitted state

    def _fitted_steps(self) -> list[dict[str, Any]]:
        if self._steps is None:
            raise NotFittedError("This Preprocessor is not fitted yet; call fit(train_df) before using it.")
        return self._steps

    @property
    def feature_names_(self) -> list[str]:
        return [name for step in self._fitted_steps() for name in _step_features(step)]

    @property
    def n_features_(self) -> int:
        return len(self.feature_names_)

    @property
    def input_columns(self) -> list[str]:
        """The columns transform needs."""
        return self.schema.feature_columns

    # ------------------------------------------------------------------ fit / transform

    def fit(self, df: pd.DataFrame) -> Preprocessor:
        """Learn every column's parameters from ``df`` (the training split)."""
        self._check_columns(df)
        if len(df) == 0:
            raise SchemaError("Cannot fit a Preprocessor on zero rows; pass the training frame.")
        steps: list[dict[str, Any]] = []
        for spec in self.schema.features:
            col = df[spec.name]
            step: dict[str, Any] = {"name": spec.name, "kind": spec.kind}
            if spec.kind == "numeric":
                values = to_float(blank_na_tokens(col, spec.na_tokens), spec.name)
                clip = None
                if self.clip_outliers is not None and not np.isnan(values).all():
                    q = self.clip_outliers
                    clip = [float(np.nanquantile(values, q)), float(np.nanquantile(values, 1 - q))]
                    values = np.clip(values, clip[0], clip[1])
                step.update(clip=clip, missing_indicator=bool(np.isnan(values).any()), **_scale_params(values))
                if spec.na_tokens:  # stored only where used: clean columns keep their old form
                    step["na_tokens"] = list(spec.na_tokens)
            elif spec.kind == "datetime":
                parts = datetime_parts(to_datetime(col, spec.name))
                step["parts"] = {part: _scale_params(parts[part]) for part in DATETIME_PARTS}
            elif spec.kind == "boolean":
                values = to_bool(col, spec.name)
                present = values[~np.isnan(values)]
                step["mode"] = float(present.mean() >= 0.5) if present.size else 0.0
            elif spec.kind == "categorical":
                counts = Counter(category_strings(col).tolist())
                ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
                step["categories"] = [cat for cat, _ in ranked[: self.max_categories]]
            elif spec.kind == "text":
                df_counts: Counter[str] = Counter()
                for doc in text_values(col):
                    df_counts.update(set(tokenize(doc)))
                ranked = sorted(((t, c) for t, c in df_counts.items() if c >= TEXT_MIN_DF), key=lambda kv: (-kv[1], kv[0]))
                step["vocabulary"] = [t for t, _ in ranked[:TEXT_VOCABULARY_SIZE]]
            else:  # pragma: no cover - Schema validates kinds
                raise SchemaError(f"Column {spec.name!r} has kind {spec.kind!r}, which cannot be preprocessed.")
            steps.append(step)
        self._steps = steps
        return self

    def transform(self, df: pd.DataFrame, *, on_unknown: Literal["ignore", "error"] = "ignore",
                  dtype: Any = np.float32) -> np.ndarray:
        """Return features of shape (n_rows, n_features_), float32 (the adapters' and the ONNX graph's type).

        Every step computes in float64; ``dtype=np.float64`` returns that unrounded (linear models fit
        and predict in double precision), and casting it to float32 gives exactly the float32 result.
        """
        if on_unknown not in ("ignore", "error"):
            raise ConfigError(f"on_unknown must be 'ignore' or 'error', got {on_unknown!r}.")
        if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ConfigError(f"dtype must be float32 or float64, got {dtype!r}.")
        steps = self._fitted_steps()
        self._check_columns(df)
        known = set(self.schema.feature_columns) | {n for n, _ in self.schema.dropped}
        if self.schema.target is not None:
            known.add(self.schema.target)
        self.last_extra_ = [str(c) for c in df.columns if c not in known]
        self.last_unknown_, self.last_unknown_counts_ = {}, {}
        blocks: list[np.ndarray] = []  # each (n_rows, k)
        for step in steps:
            blocks.append(self._transform_column(step, df[step["name"]], on_unknown))
        if not blocks:
            return np.zeros((len(df), 0), dtype=dtype)
        return np.ascontiguousarray(np.hstack(blocks), dtype=dtype)

    def fit_transform(self, df: pd.DataFrame) -> np.ndarray:
        return self.fit(df).transform(df)

    def _transform_column(self, step: dict[str, Any], col: pd.Series, on_unknown: str) -> np.ndarray:
        name, kind = step["name"], step["kind"]
        if kind == "numeric":
            x = to_float(blank_na_tokens(col, step.get("na_tokens", ())), name)
            out = [_scale(x, step, step["clip"])]
            if step["missing_indicator"]:
                out.append(np.isnan(x).astype(np.float64))
            return np.column_stack(out)
        if kind == "datetime":
            parts = datetime_parts(to_datetime(col, name))
            return np.column_stack([_scale(parts[p], step["parts"][p], None) for p in DATETIME_PARTS])
        if kind == "boolean":
            x = to_bool(col, name)
            return np.where(np.isnan(x), step["mode"], x)[:, None]
        if kind == "categorical":
            cats = category_strings(col)
            index = {c: i for i, c in enumerate(step["categories"])}
            out = np.zeros((len(cats), len(index)))
            codes = np.array([index.get(c, -1) for c in cats], dtype=np.int64)
            rows = np.flatnonzero(codes >= 0)
            out[rows, codes[rows]] = 1.0
            unseen = [c for c, k in zip(cats, codes) if k < 0 and c != MISSING_CATEGORY]
            record_unknown(name, unseen, step["categories"], on_unknown, self.last_unknown_, self.last_unknown_counts_)
            return out
        if kind == "text":
            vocab = {t: i for i, t in enumerate(step["vocabulary"])}
            out = np.zeros((len(col), len(vocab)))
            for r, doc in enumerate(text_values(col)):
                for tok in set(tokenize(doc)):
                    j = vocab.get(tok)
                    if j is not None:
                        out[r, j] = 1.0
            return out
        raise SchemaError(f"Column {name!r} has kind {kind!r}, which cannot be preprocessed.")  # pragma: no cover

    def _check_columns(self, df: pd.DataFrame) -> None:
        if not isinstance(df, pd.DataFrame):
            raise SchemaError(f"Expected a pandas DataFrame with columns {self.input_columns}, got {type(df).__name__}.")
        missing = [c for c in self.input_columns if c not in df.columns]
        if missing:
            raise SchemaError(
                f"Input is missing required column(s) {missing}. Every row needs all of {self.input_columns} "
                "(use empty values for missing data); extra columns are ignored."
            )

    # ------------------------------------------------------------------ persistence

    def to_dict(self) -> dict[str, Any]:
        """Fitted parameters as plain JSON types (stored as preprocess.json)."""
        steps = self._fitted_steps()
        return {
            "format_version": FORMAT_VERSION,
            "clip_outliers": self.clip_outliers,
            "max_categories": self.max_categories,
            "schema": self.schema.to_dict(),
            "columns": copy.deepcopy(steps),
            "feature_names": self.feature_names_,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessor:
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise SchemaError(
                f"preprocess dict has format_version {version!r}; this Fulcrum reads version {FORMAT_VERSION}. "
                "Re-train the model with this version, or load it with the Fulcrum that wrote it."
            )
        try:
            pre = cls(
                Schema.from_dict(data["schema"]),
                clip_outliers=data["clip_outliers"],
                max_categories=data["max_categories"],
            )
            pre._steps = copy.deepcopy(list(data["columns"]))
        except (KeyError, TypeError) as exc:
            raise SchemaError(f"preprocess dict is malformed ({exc!r}); it must be what Preprocessor.to_dict() wrote.") from exc
        if [s["name"] for s in pre._steps] != pre.schema.feature_columns:
            raise SchemaError("preprocess dict is inconsistent: its columns do not match its schema's feature columns.")
        return pre

    def __repr__(self) -> str:
        state = f"{self.n_features_} features" if self._steps is not None else "not fitted"
        return f"Preprocessor({len(self.input_columns)} columns, {state})"


def _scale_params(values: np.ndarray) -> dict[str, float]:
    """median (imputation), then mean/std of the imputed values (std 0 -> 1)."""
    present = values[~np.isnan(values)]
    median = float(np.median(present)) if present.size else 0.0
    filled = np.where(np.isnan(values), median, values)
    std = float(filled.std()) if filled.size else 1.0
    return {"median": median, "mean": float(filled.mean()) if filled.size else 0.0, "std": std if std > 0 else 1.0}


def _scale(x: np.ndarray, params: dict[str, Any], clip: list[float] | None) -> np.ndarray:
    if clip is not None:
        x = np.clip(x, clip[0], clip[1])
    x = np.where(np.isnan(x), params["median"], x)
    return (x - params["mean"]) / params["std"]


def _step_features(step: dict[str, Any]) -> list[str]:
    name, kind = step["name"], step["kind"]
    if kind == "numeric":
        return [name] + ([f"{name}__missing"] if step["missing_indicator"] else [])
    if kind == "datetime":
        return [f"{name}__{p}" for p in DATETIME_PARTS]
    if kind == "boolean":
        return [name]
    if kind == "categorical":
        return [f"{name}={c}" for c in step["categories"]]
    if kind == "text":
        return [f"{name}__{t}" for t in step["vocabulary"]]
    raise SchemaError(f"Column {name!r} has unknown kind {kind!r}.")  # pragma: no cover
