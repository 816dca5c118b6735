"""Input monitors: a per-row out-of-distribution score and per-column drift over a sliding window.

Both compare live inputs with the training-data profile every package carries
(``profile.json``: quantiles, decile histogram, category frequencies, missing
share per feature column). Nothing here needs the training data itself.

::

    mon = Monitor.from_package(pkg)              # window=1000, psi_threshold=0.2, ood_threshold=0.5
    scores = mon.score(rows)                     # (N,) in [0, 1]; mon.is_ood(scores) -> bool mask
    mon.observe(rows, scores=scores)             # from a worker thread; bounded memory
    mon.drift()                                  # {column: {psi, ks, drifted, status, n, ...}}
    snap = mon.snapshot()                        # JSON-able; persist with mon.save_snapshot(conn)
    load_latest_snapshot(conn, "iris")           # what the server saw, from another process

**OOD score.** Each monitored column gives a per-value surprise in [0, 1]:

- numeric: the *excess* of the value beyond the training [p1, p99] range, in units
  of that side's tail width (``p99 - p50`` above, ``p50 - p1`` below; the robust
  standard deviation ``IQR / 1.349``, then the standard deviation, then 1 when a
  width is 0): ``e = (x - p99) / (p99 - p50)`` above, 0 inside the range. The
  surprise is ``1 - exp(-e)``: 0 inside [p1, p99], 0.5 at ``e = ln 2`` (for a
  normal column, about 3.9 standard deviations from the mean), -> 1 far out.
  Scaling by the tail width makes the rule scale-free and tolerant of skewed columns.
- categorical / boolean: 1 for a category absent from training (when the profile
  lists every training category; above 50 categories it lists the top 50, and a
  value outside them may only be rare, so it adds 0), else 0.
- missing values add 0 (the model imputes them; the missing share is part of drift).
- datetime and text columns are not scored (future dates are always "out of
  range"; a text's distance from training is the model's to judge: see below).

**Scores from the graph.** When the package's graph outputs an ``ood_score`` (the manifest
declares an output of that kind, e.g. a text model's embedding distance to its class centroids),
that score is the per-request OOD score; the threshold is the manifest's (``thresholds.p99``
of the output: the 99th percentile of the score on held-out training-like texts) unless given.

A row's score is the **maximum** over its columns: one feature far outside what
training saw is enough to make the prediction an extrapolation, however many
other features look ordinary. ``is_ood(scores)`` is ``scores >= ood_threshold``.

**Drift** (per monitored column, over the last ``window`` observed rows):

- PSI (population stability index) ``sum_i (a_i - e_i) * ln(a_i / e_i)`` between the
  window's shares ``a`` and the training shares ``e`` (each floored at 1e-4).
  Numeric bins are the profile's decile edges, the outer bins open-ended so values
  beyond the training range land in the first / last bin; categorical bins are the
  profile's categories plus an ``other`` bucket (categories outside the list). Both
  add a ``missing`` bucket (the training missing share vs the window's).
  ``drifted`` needs both an effect and evidence: ``psi >= psi_threshold`` (0.2, the
  usual "significant shift" level; 0.1-0.2 is "moderate") **and** ``psi_pvalue < alpha``
  (0.001), where ``n_eff * PSI`` with ``n_eff = n * N / (n + N)`` (window and training
  sizes) is asymptotically chi-square with bins - 1 degrees of freedom. PSI is biased
  upward on small samples (about ``(bins - 1) / n_eff`` under no drift, so 0.1+ for a
  100-row window against a 200-row training split); the p-value keeps those from
  raising alarms, and does not bind once the window is large.
- KS (numeric): ``max |F_window(t) - F_train(t)|`` over the profile's histogram
  edges t, where ``F_train`` is known exactly (the profile keeps no raw sample, so
  this is a lower bound on the full Kolmogorov-Smirnov distance, and it is robust
  to ties). ``ks_pvalue`` is the asymptotic two-sample p-value with the effective
  size ``n * N / (n + N)``. Both are reported as evidence; the verdict is PSI's.
- text (a column whose profile holds ``length`` and, with the profile's ``vocabulary``, ``oov``
  statistics in the numeric layout): PSI and KS of the texts' length in characters and of their
  out-of-vocabulary share (word tokens, found with the profile's ``tokens.pattern`` after
  lowercasing, not in ``vocabulary``; a text without word tokens counts as 1.0), each against its
  training histogram as for a numeric column; the column drifts when either does.
- Below ``min_rows`` non-missing values in the window a column gets
  ``status: "insufficient data"`` and ``drifted: False``.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from ..data._coerce import FALSE_STRINGS, MISSING_CATEGORY, TRUE_STRINGS, _category_label
from ..errors import ConfigError, DataError

__all__ = ["Monitor", "load_latest_snapshot", "save_snapshot", "DEFAULT_OOD_THRESHOLD", "MIN_WINDOW_ROWS"]

DEFAULT_OOD_THRESHOLD = 0.5
MIN_WINDOW_ROWS = 100
DRIFT_ALPHA = 0.001
PSI_EPSILON = 1e-4
INSUFFICIENT = "insufficient data"
SNAPSHOTS_KEPT = 1000  # per (model, version); older rows are pruned on save

_SNAPSHOT_SCHEMA = """
CREATE TABLE IF NOT EXISTS monitor_snapshots (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    model         TEXT    NOT NULL,
    version       INTEGER,
    created       TEXT    NOT NULL,
    snapshot_json TEXT    NOT NULL
)"""
_SNAPSHOT_INDEX = "CREATE INDEX IF NOT EXISTS monitor_snapshots_model ON monitor_snapshots (model, version, id)"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _f(x: float | None) -> float | None:
    """A finite Python float, or None (JSON has no NaN/inf)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


# --------------------------------------------------------------------------- input normalisation


def _columns_of(data: Any, names: Sequence[str]) -> tuple[int, dict[str, Sequence[Any] | None]]:
    """(n_rows, {name: values or None when the column is absent}) from a DataFrame, a list of dicts,
    a dict of column arrays or one dict row."""
    if isinstance(data, pd.DataFrame):
        return len(data), {n: (data[n].to_numpy() if n in data.columns else None) for n in names}
    if isinstance(data, Mapping):
        values = list(data.values())
        if values and all(isinstance(v, (list, tuple, np.ndarray, pd.Series)) for v in values):
            lengths = {len(v) for v in values}
            if len(lengths) != 1:
                raise DataError(f"Column arrays have different lengths {sorted(lengths)}; give every column one value per row.")
            n = lengths.pop()
            return n, {c: (_column_values(data[c]) if c in data else None) for c in names}
        data = [data]  # one row
    if isinstance(data, Iterable) and not isinstance(data, (str, bytes)):
        rows = list(data)
        if not all(isinstance(r, Mapping) for r in rows):
            raise DataError("Monitor input rows must be dicts of column -> value.")
        return len(rows), {c: ([r.get(c) for r in rows] if any(c in r for r in rows) else None) for c in names}
    raise DataError(
        f"Cannot monitor a {type(data).__name__}; pass a DataFrame, a list of dicts or a dict of column arrays."
    )


def _column_values(v: Any) -> Sequence[Any]:
    """A column as an array, without copying numpy arrays (the server passes those)."""
    if isinstance(v, np.ndarray):
        return v.reshape(-1)
    if isinstance(v, pd.Series):
        return v.to_numpy()
    return list(v)


def _as_float(values: Sequence[Any] | None, n: int) -> np.ndarray:
    """Lenient numeric coercion (the monitor never fails a request): unparsable -> NaN."""
    if values is None:
        return np.full(n, np.nan)
    try:
        out = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        s = pd.Series(list(values), dtype=object).map(lambda v: v.strip() if isinstance(v, str) else v)
        out = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return out.reshape(-1)


def _as_categories(values: Sequence[Any] | None, n: int, kind: str) -> np.ndarray:
    """Category labels as the profile spells them (booleans as 'true'/'false'); missing -> MISSING_CATEGORY.

    Same labels as ``fulcrum.data``'s ``category_strings`` (3 and 3.0 are one category), in a plain
    loop that is cheaper than a pandas round trip for the few rows of a request."""
    if values is None:
        return np.full(n, MISSING_CATEGORY, dtype=object)
    out = np.empty(n, dtype=object)
    for i, v in enumerate(values):
        if isinstance(v, str):
            label = v.strip() or MISSING_CATEGORY
        elif v is None or (not isinstance(v, (list, tuple, dict, np.ndarray)) and pd.isna(v)):
            label = MISSING_CATEGORY
        else:
            label = _category_label(v)
        if kind == "boolean" and label != MISSING_CATEGORY:
            low = label.lower()
            label = "true" if low in TRUE_STRINGS else "false" if low in FALSE_STRINGS else label
        out[i] = label
    return out


def _psi(actual: np.ndarray, expected: np.ndarray) -> float:
    a = np.maximum(actual, PSI_EPSILON)
    e = np.maximum(expected, PSI_EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


def _psi_pvalue(psi: float, actual: np.ndarray, expected: np.ndarray, n: int, n_train: int) -> float | None:
    """P(PSI >= psi | same distribution): ``n_eff * PSI`` is asymptotically chi-square with (bins - 1)
    degrees of freedom (PSI is the symmetric KL divergence, which approximates the two-sample chi-square
    distance), ``n_eff = n * N / (n + N)`` for window and training sizes n and N."""
    from scipy.special import chdtrc

    dof = int(np.count_nonzero((actual > 0) | (expected > 0))) - 1
    if dof < 1 or n <= 0:
        return 1.0
    ne = n * n_train / (n + n_train) if n_train > 0 else float(n)
    return _f(chdtrc(dof, ne * psi))


def _ks_pvalue(d: float, n: int, n_train: int) -> float | None:
    """Asymptotic two-sample KS p-value, with the small-sample correction of Stephens (1970)."""
    from scipy.special import kolmogorov

    if n <= 0:
        return 1.0
    ne = n * n_train / (n + n_train) if n_train > 0 else float(n)
    return _f(kolmogorov((math.sqrt(ne) + 0.12 + 0.11 / math.sqrt(ne)) * d))


# --------------------------------------------------------------------------- per-column monitors


class _NumericColumn:
    kind = "numeric"

    def __init__(self, name: str, stats: Mapping[str, Any], window: int) -> None:
        q = stats["quantiles"]
        self.name = name
        self.p1, self.p50, self.p99 = float(q["p1"]), float(q["p50"]), float(q["p99"])
        iqr_sd = (float(q["p75"]) - float(q["p25"])) / 1.349
        fallback = iqr_sd if iqr_sd > 0 else (float(stats.get("std") or 0.0) or 1.0)
        self.width_hi = (self.p99 - self.p50) if self.p99 > self.p50 else fallback
        self.width_lo = (self.p50 - self.p1) if self.p50 > self.p1 else fallback
        self.missing = float(stats.get("missing") or 0.0)
        self.n_train = int(stats.get("count") or 0)
        self.mean_train = _f(stats.get("mean"))
        hist = stats["histogram"]
        self.edges = np.asarray(hist["edges"], dtype=np.float64)
        present = np.asarray(hist["fractions"], dtype=np.float64)
        # expected shares over [bins..., missing]
        self.expected = np.append(present * (1.0 - self.missing), self.missing)
        # exact training CDF at the edges: P(X < e_j) for e_0..e_{k-1}, and P(X <= max) = 1
        self.cdf_at = np.concatenate([[0.0], np.cumsum(present)[:-1]])
        self.buffer = np.full(window, np.nan)

    def convert(self, values: Sequence[Any] | None, n: int) -> np.ndarray:
        return _as_float(values, n)

    def store(self, positions: np.ndarray, x: np.ndarray) -> None:
        self.buffer[positions] = x

    def drift(self, filled: int, min_rows: int, psi_threshold: float, alpha: float) -> dict[str, Any]:
        x_all = self.buffer[:filled]
        missing = np.isnan(x_all)
        x = x_all[~missing]
        out: dict[str, Any] = {
            "kind": self.kind,
            "n": int(x.size),
            "missing": {"train": _f(self.missing), "window": _f(missing.mean()) if filled else None},
        }
        if x.size < min_rows:
            return {**out, "status": INSUFFICIENT, "drifted": False, "psi": None, "psi_pvalue": None, "ks": None, "ks_pvalue": None}
        inner = self.edges[1:-1]
        bins = np.searchsorted(inner, x, side="right")  # bin j: e_j <= x < e_{j+1} (outer bins open-ended)
        counts = np.bincount(bins, minlength=len(self.expected) - 1).astype(np.float64)
        actual = np.append(counts, missing.sum()) / filled
        psi = _psi(actual, self.expected)
        xs = np.sort(x)
        below = np.searchsorted(xs, self.edges[:-1], side="left") / x.size  # window P(X < e_j)
        at_max = np.searchsorted(xs, self.edges[-1], side="right") / x.size  # window P(X <= max)
        ks = float(max(np.max(np.abs(below - self.cdf_at)), abs(at_max - 1.0)))
        n_train = int(round(self.n_train / max(1e-12, 1.0 - self.missing)))  # training rows, missing included
        psi_p = _psi_pvalue(psi, actual, self.expected, filled, n_train)
        drifted = psi >= psi_threshold and (psi_p is None or psi_p < alpha)
        return {
            **out,
            "status": "drift" if drifted else "ok",
            "drifted": bool(drifted),
            "psi": _f(psi),
            "psi_pvalue": psi_p,
            "ks": _f(ks),
            "ks_pvalue": _f(_ks_pvalue(ks, int(x.size), self.n_train)),
            "mean": {"train": self.mean_train, "window": _f(x.mean())},
            "outside_range": _f(np.mean((x < self.edges[0]) | (x > self.edges[-1]))),
        }


class _CategoricalColumn:
    def __init__(self, name: str, stats: Mapping[str, Any], kind: str, window: int) -> None:
        self.name = name
        self.kind = kind
        top: dict[str, float] = dict(stats.get("top") or {})
        self.categories = list(top)
        self.index = {c: i for i, c in enumerate(self.categories)}
        self.complete = int(stats.get("n_unique") or 0) <= len(self.categories)
        self.missing = float(stats.get("missing") or 0.0)
        self.n_train = int(round(int(stats.get("count") or 0) / max(1e-12, 1.0 - self.missing)))
        shares = np.asarray([top[c] for c in self.categories], dtype=np.float64)
        other = max(0.0, 1.0 - float(shares.sum())) if not self.complete else 0.0
        # expected shares over [categories..., other, missing]
        self.expected = np.concatenate([shares * (1.0 - self.missing), [other * (1.0 - self.missing), self.missing]])
        self.other_code = len(self.categories)
        self.missing_code = len(self.categories) + 1
        self.buffer = np.full(window, self.missing_code, dtype=np.int32)

    def convert(self, values: Sequence[Any] | None, n: int) -> np.ndarray:
        labels = _as_categories(values, n, self.kind)
        other, miss = self.other_code, self.missing_code
        return np.fromiter(
            (miss if s == MISSING_CATEGORY else self.index.get(s, other) for s in labels), dtype=np.int32, count=n
        )

    def surprise(self, codes: np.ndarray) -> np.ndarray:
        if not self.complete:
            return np.zeros(codes.shape)
        return (codes == self.other_code).astype(np.float64)

    def store(self, positions: np.ndarray, codes: np.ndarray) -> None:
        self.buffer[positions] = codes

    def drift(self, filled: int, min_rows: int, psi_threshold: float, alpha: float) -> dict[str, Any]:
        codes = self.buffer[:filled]
        counts = np.bincount(codes, minlength=len(self.expected)).astype(np.float64)
        n_present = int(filled - counts[self.missing_code])
        out: dict[str, Any] = {
            "kind": self.kind,
            "n": n_present,
            "missing": {"train": _f(self.missing), "window": _f(counts[self.missing_code] / filled) if filled else None},
        }
        if n_present < min_rows:
            return {**out, "status": INSUFFICIENT, "drifted": False, "psi": None, "psi_pvalue": None, "ks": None, "ks_pvalue": None}
        actual = counts / filled
        psi = _psi(actual, self.expected)
        psi_p = _psi_pvalue(psi, actual, self.expected, filled, self.n_train)
        drifted = psi >= psi_threshold and (psi_p is None or psi_p < alpha)
        present = counts[: self.missing_code] / max(n_present, 1)
        return {
            **out,
            "status": "drift" if drifted else "ok",
            "drifted": bool(drifted),
            "psi": _f(psi),
            "psi_pvalue": psi_p,
            "ks": None,
            "ks_pvalue": None,
            "other_share": _f(present[self.other_code]),
            "top_window": {c: _f(present[i]) for i, c in enumerate(self.categories) if present[i] > 0},
        }


class _TextColumn:
    """Drift of a text input: its length and its out-of-vocabulary share, each as a numeric column."""

    kind = "text"

    def __init__(self, name: str, stats: Mapping[str, Any], vocabulary: Sequence[str] | None, window: int) -> None:
        self.name = name
        self.missing = float(stats.get("missing") or 0.0)
        # each part's reference size (the p-values need it; without one the reference would count as exact):
        # its own count, else the column's
        count = stats.get("count")
        self.length = _NumericColumn(f"{name}:length", {"count": count, **stats["length"]}, window)
        oov = stats.get("oov")
        usable = isinstance(oov, Mapping) and oov.get("quantiles") and oov.get("histogram") and vocabulary
        self.oov = _NumericColumn(f"{name}:oov", {"count": count, **oov}, window) if usable else None  # type: ignore[dict-item]
        self.vocabulary = frozenset(str(w) for w in vocabulary or ())
        tokens = stats.get("tokens") or {}
        self.lowercase = bool(tokens.get("lowercase", True))
        pattern = str(tokens.get("pattern") or r"[\p{L}\p{N}]+")
        try:
            import regex

            self._words = regex.compile(pattern).findall
        except ImportError:  # pragma: no cover - regex is a dependency of the text task
            import re

            self._words = re.compile(r"[^\W_]+").findall

    def convert(self, values: Sequence[Any] | None, n: int) -> np.ndarray:
        """(n, 2): characters and OOV share per text; NaN for a missing value."""
        out = np.full((n, 2), np.nan)
        if values is None:
            return out
        check_oov = self.oov is not None
        for i, v in enumerate(values):
            if isinstance(v, bytes):
                v = v.decode("utf-8", "replace")
            if not isinstance(v, str) or not v.strip():
                continue
            out[i, 0] = len(v)
            if check_oov:
                words = self._words(v.lower() if self.lowercase else v)
                out[i, 1] = (sum(w not in self.vocabulary for w in words) / len(words)) if words else 1.0
        return out

    def store(self, positions: np.ndarray, x: np.ndarray) -> None:
        self.length.store(positions, x[:, 0])
        if self.oov is not None:
            self.oov.store(positions, x[:, 1])

    def drift(self, filled: int, min_rows: int, psi_threshold: float, alpha: float) -> dict[str, Any]:
        length = self.length.drift(filled, min_rows, psi_threshold, alpha)
        oov = self.oov.drift(filled, min_rows, psi_threshold, alpha) if self.oov is not None else None
        parts = [d for d in (length, oov) if d is not None]
        drifted = any(d["drifted"] for d in parts)
        status = INSUFFICIENT if length["status"] == INSUFFICIENT else ("drift" if drifted else "ok")
        return {
            "kind": self.kind, "n": length["n"], "missing": length["missing"], "status": status, "drifted": bool(drifted),
            "psi": max((d["psi"] for d in parts if d["psi"] is not None), default=None),
            "psi_pvalue": length["psi_pvalue"], "ks": length["ks"], "ks_pvalue": length["ks_pvalue"],
            "length": {k: length.get(k) for k in ("status", "drifted", "psi", "psi_pvalue", "ks", "mean")},
            "oov": None if oov is None else {k: oov.get(k) for k in ("status", "drifted", "psi", "psi_pvalue", "ks", "mean")},
        }


# --------------------------------------------------------------------------- the monitor


class Monitor:
    """Out-of-distribution score per row and drift per input column, against a training profile.

    See the module docstring for the definitions. ``score`` is pure (no state); ``observe``,
    ``drift`` and ``snapshot`` share a lock, so a server may observe from a worker thread while
    another thread reads. Memory is bounded by ``window`` rows per column.
    """

    def __init__(
        self,
        profile: Mapping[str, Any],
        inputs: Sequence[Mapping[str, Any]] | None = None,
        *,
        window: int = 1000,
        psi_threshold: float = 0.2,
        ood_threshold: float = DEFAULT_OOD_THRESHOLD,
        min_rows: int = MIN_WINDOW_ROWS,
        alpha: float = DRIFT_ALPHA,
        model: str | None = None,
        version: int | None = None,
        data_source: str | None = None,
        graph_scores: bool = False,
    ) -> None:
        if not isinstance(window, int) or isinstance(window, bool) or window < 1:
            raise ConfigError(f"window must be a positive number of rows, got {window!r}.")
        if not (isinstance(psi_threshold, (int, float)) and psi_threshold > 0):
            raise ConfigError(f"psi_threshold must be a positive number (0.2 is the usual level), got {psi_threshold!r}.")
        if not (isinstance(ood_threshold, (int, float)) and 0 < ood_threshold and (graph_scores or ood_threshold <= 1)):
            raise ConfigError(f"ood_threshold must be in (0, 1], got {ood_threshold!r}.")
        if not isinstance(min_rows, int) or min_rows < 1:
            raise ConfigError(f"min_rows must be a positive number of rows, got {min_rows!r}.")
        if not isinstance(profile, Mapping) or not (isinstance(profile.get("columns"), Mapping) or graph_scores):
            raise DataError("The training profile has no 'columns' table; it must be a profile.json written by `fulcrum train`.")
        #: the scores come from the model's graph (its ``ood_score`` output), passed to :meth:`observe`
        self.graph_scores = bool(graph_scores)
        self.window = window
        self.psi_threshold = float(psi_threshold)
        self.ood_threshold = float(ood_threshold)
        self.min_rows = min(min_rows, window)
        if not 0 < alpha < 1:
            raise ConfigError(f"alpha must be a probability in (0, 1), got {alpha!r}.")
        self.alpha = float(alpha)
        self.model, self.version, self.data_source = model, version, data_source
        kinds = {str(i["name"]): str(i.get("kind")) for i in (inputs or [])}
        self._monitors: dict[str, _NumericColumn | _CategoricalColumn | _TextColumn] = {}
        self.unmonitored: dict[str, str] = {}  # column -> reason
        self._kinds: dict[str, str] = {}
        columns = profile.get("columns") if isinstance(profile.get("columns"), Mapping) else {}
        for name in kinds if not columns else ():  # a profile without per-input statistics: say so per input
            self._kinds[name] = kinds[name]
            self.unmonitored[name] = "the training profile has no statistics for it"
        for name, stats in columns.items():
            kind = self._kinds[name] = str(stats.get("kind") or kinds.get(name))
            length = stats.get("length")
            if kind == "numeric" and stats.get("quantiles") and stats.get("histogram"):
                self._monitors[name] = _NumericColumn(name, stats, window)
            elif kind in ("categorical", "boolean") and stats.get("top"):
                self._monitors[name] = _CategoricalColumn(name, stats, kind, window)
            elif kind == "text" and isinstance(length, Mapping) and length.get("quantiles") and length.get("histogram"):
                self._monitors[name] = _TextColumn(name, stats, profile.get("vocabulary"), window)
            elif kind == "numeric":
                self.unmonitored[name] = "no non-missing training values"
            else:
                self.unmonitored[name] = f"{kind} columns are not monitored"
        self.columns: list[str] = list(self._monitors)
        # numeric columns are scored together, as one (rows, columns) matrix
        num = [mon for mon in self._monitors.values() if isinstance(mon, _NumericColumn)]
        self._num_names = [mon.name for mon in num]
        self._p1 = np.array([mon.p1 for mon in num])
        self._p99 = np.array([mon.p99 for mon in num])
        self._width_lo = np.array([mon.width_lo for mon in num])
        self._width_hi = np.array([mon.width_hi for mon in num])
        self._cats = {name: mon for name, mon in self._monitors.items() if isinstance(mon, _CategoricalColumn)}
        self._lock = threading.Lock()
        self._ood = np.zeros(window)
        self._pos = 0  # next write position in the ring
        self._filled = 0  # rows currently in the window
        self._rows_observed = 0
        self._ood_observed = 0

    @classmethod
    def from_package(
        cls,
        pkg: Any,
        *,
        window: int = 1000,
        psi_threshold: float = 0.2,
        ood_threshold: float | None = None,
        min_rows: int = MIN_WINDOW_ROWS,
        alpha: float = DRIFT_ALPHA,
        graph_scores: bool | None = None,
    ) -> Monitor:
        """A monitor for a :class:`~fulcrum.artifact.ModelPackage` (or a Predictor, via its package).

        ``graph_scores`` (default: whether the manifest declares an ``ood_score`` output): the OOD scores
        come from the model's graph, and ``ood_threshold`` defaults to that output's ``thresholds.p99``;
        otherwise the profile-based score with ``ood_threshold`` 0.5."""
        pkg = getattr(pkg, "package", pkg)
        m = pkg.manifest
        ood = next((o for o in m.get("outputs") or [] if isinstance(o, Mapping) and o.get("kind") == "ood_score"), None)
        if graph_scores is None:
            graph_scores = ood is not None
        if ood_threshold is None:
            thresholds = ((ood or {}).get("thresholds") or {}) if graph_scores else {}
            level = thresholds.get("p99", thresholds.get("p95"))
            ood_threshold = float(level) if isinstance(level, (int, float)) and level > 0 else DEFAULT_OOD_THRESHOLD
        return cls(
            pkg.read_json("profile.json"),
            m.get("inputs") or [],
            window=window,
            psi_threshold=psi_threshold,
            ood_threshold=ood_threshold,
            min_rows=min_rows,
            alpha=alpha,
            model=pkg.name,
            version=pkg.version,
            data_source=(m.get("data") or {}).get("source"),
            graph_scores=bool(graph_scores),
        )

    def __repr__(self) -> str:
        return f"Monitor({self.model or '?'}@{self.version}, columns={len(self.columns)}, window={self.window})"

    # -- scoring -------------------------------------------------------------

    def _convert(self, data: Any) -> tuple[int, dict[str, np.ndarray]]:
        n, cols = _columns_of(data, self.columns)
        return n, {name: mon.convert(cols[name], n) for name, mon in self._monitors.items()}

    def _numeric_surprise(self, n: int, converted: Mapping[str, np.ndarray]) -> np.ndarray:
        """(n, numeric columns) surprise: ``1 - exp(-excess beyond [p1, p99] / tail width)``."""
        if not self._num_names:
            return np.zeros((n, 0))
        x = np.column_stack([converted[c] for c in self._num_names])
        with np.errstate(invalid="ignore", over="ignore"):
            excess = np.where(x > self._p99, (x - self._p99) / self._width_hi, 0.0)
            excess = np.where(x < self._p1, (self._p1 - x) / self._width_lo, excess)
        excess = np.nan_to_num(excess, nan=0.0, posinf=np.inf)
        return -np.expm1(-excess)  # 1 - exp(-e), exactly 0 inside [p1, p99]

    def _score_converted(self, n: int, converted: Mapping[str, np.ndarray]) -> np.ndarray:
        num = self._numeric_surprise(n, converted)
        scores = num.max(axis=1) if num.shape[1] else np.zeros(n)
        for name, mon in self._cats.items():
            np.maximum(scores, mon.surprise(converted[name]), out=scores)
        return scores

    def score(self, data: Any) -> np.ndarray:
        """Per-row OOD score in [0, 1] (0 = every value within what training saw); see the module docstring."""
        n, converted = self._convert(data)
        return self._score_converted(n, converted)

    def column_scores(self, data: Any) -> dict[str, np.ndarray]:
        """Per-column surprise (the row score is their maximum): which feature made a row OOD."""
        n, converted = self._convert(data)
        num = self._numeric_surprise(n, converted)
        out = {name: num[:, j] for j, name in enumerate(self._num_names)}
        out.update({name: mon.surprise(converted[name]) for name, mon in self._cats.items()})
        return {name: out[name] for name in self.columns}

    def is_ood(self, scores: np.ndarray | Sequence[float]) -> np.ndarray:
        """``scores >= ood_threshold`` as a bool array."""
        return np.asarray(scores, dtype=np.float64) >= self.ood_threshold

    # -- the window ----------------------------------------------------------

    def observe(self, data: Any, scores: np.ndarray | Sequence[float] | None = None) -> np.ndarray:
        """Add rows to the sliding window (the oldest fall out); returns their OOD scores.

        Pass ``scores`` from an earlier :meth:`score` call on the same rows to skip rescoring.
        """
        n, converted = self._convert(data)
        s = self._score_converted(n, converted) if scores is None else np.asarray(scores, dtype=np.float64).reshape(-1)
        if s.shape[0] != n:
            raise DataError(f"observe got {n} rows but {s.shape[0]} scores; pass one score per row.")
        if n == 0:
            return s
        keep = slice(max(0, n - self.window), n)  # more rows than the window: only the newest count
        with self._lock:
            m = keep.stop - keep.start
            positions = (self._pos + np.arange(m)) % self.window
            for name, mon in self._monitors.items():
                mon.store(positions, converted[name][keep])  # type: ignore[arg-type]
            self._ood[positions] = s[keep]
            self._pos = int((self._pos + m) % self.window)
            self._filled = min(self.window, self._filled + m)
            self._rows_observed += n
            self._ood_observed += int(self.is_ood(s).sum())
        return s

    def reset(self) -> None:
        """Empty the window and the counters (e.g. after a new version is deployed)."""
        with self._lock:
            self._pos = self._filled = self._rows_observed = self._ood_observed = 0

    @property
    def rows_in_window(self) -> int:
        return self._filled

    def drift(self) -> dict[str, dict[str, Any]]:
        """``{column: {kind, n, status, drifted, psi, ks, ks_pvalue, missing, ...}}`` over the window.

        ``status`` is "ok", "drift" or "insufficient data" (fewer than ``min_rows`` values);
        columns that are not monitored (datetime, text) appear with ``status: "not monitored"``.
        """
        with self._lock:
            return self._drift_locked()

    def _drift_locked(self) -> dict[str, dict[str, Any]]:
        filled = self._filled
        out: dict[str, dict[str, Any]] = {}
        for name, mon in self._monitors.items():
            if filled == 0:
                out[name] = {"kind": mon.kind, "n": 0, "status": INSUFFICIENT, "drifted": False,
                             "psi": None, "psi_pvalue": None, "ks": None, "ks_pvalue": None, "missing": {"train": _f(mon.missing), "window": None}}
            else:
                out[name] = mon.drift(filled, self.min_rows, self.psi_threshold, self.alpha)
        for name, reason in self.unmonitored.items():
            out[name] = {"kind": self._kinds.get(name), "n": 0, "status": "not monitored", "drifted": False, "reason": reason,
                         "psi": None, "psi_pvalue": None, "ks": None, "ks_pvalue": None}
        return out

    def snapshot(self) -> dict[str, Any]:
        """Everything the monitor knows, as plain JSON types (for /metrics, logs and the registry DB)."""
        with self._lock:
            drift = self._drift_locked()
            filled = self._filled
            ood_window = self._ood[:filled].copy()
            rows_observed, ood_observed = self._rows_observed, self._ood_observed
        judged = [c for c, d in drift.items() if d["status"] in ("ok", "drift")]
        drifted = [c for c in judged if drift[c]["drifted"]]
        n_ood = int(self.is_ood(ood_window).sum()) if filled else 0
        if filled < self.min_rows:
            status = INSUFFICIENT
        else:
            status = "drift" if drifted else "ok"
        return {
            "model": self.model,
            "version": self.version,
            "data_source": self.data_source,
            "created": _now(),
            "status": status,
            "window": {"size": self.window, "rows": filled, "min_rows": self.min_rows},
            "counts": {"rows_observed": rows_observed, "ood_observed": ood_observed, "rows_in_window": filled,
                       "ood_in_window": n_ood},
            "ood": {
                "threshold": self.ood_threshold,
                "source": "graph" if self.graph_scores else "profile",
                "rate": _f(n_ood / filled) if filled else None,
                "mean_score": _f(ood_window.mean()) if filled else None,
                "max_score": _f(ood_window.max()) if filled else None,
            },
            "psi_threshold": self.psi_threshold,
            "drift": drift,
            "drifted_columns": drifted,
            "drifted_share": _f(len(drifted) / len(judged)) if judged else None,
        }

    # -- persistence ---------------------------------------------------------

    def save_snapshot(
        self, conn: sqlite3.Connection, model: str | None = None, version: int | None = None, *, keep: int = SNAPSHOTS_KEPT
    ) -> dict[str, Any]:
        """Store :meth:`snapshot` in the ``monitor_snapshots`` table of ``conn`` (e.g. ``Registry.connect()``)
        and return it. Only the newest ``keep`` snapshots per (model, version) are kept."""
        model = model if model is not None else self.model
        version = version if version is not None else self.version
        if not model:
            raise ConfigError("save_snapshot needs the model name: pass model=... (the monitor was not built from a package).")
        snap = self.snapshot()
        snap["model"], snap["version"] = model, version
        save_snapshot(conn, snap, keep=keep)
        return snap

    @staticmethod
    def load_latest_snapshot(conn: sqlite3.Connection, model: str, version: int | None = None) -> dict[str, Any] | None:
        """See :func:`load_latest_snapshot`."""
        return load_latest_snapshot(conn, model, version)


def _ensure_table(conn: sqlite3.Connection) -> None:
    conn.execute(_SNAPSHOT_SCHEMA)
    conn.execute(_SNAPSHOT_INDEX)


def save_snapshot(conn: sqlite3.Connection, snap: Mapping[str, Any], *, keep: int = SNAPSHOTS_KEPT) -> None:
    """Store one snapshot dict (with ``model`` and ``version``) in ``monitor_snapshots``."""
    _ensure_table(conn)
    model, version = snap["model"], snap.get("version")
    with conn:  # one transaction, committed
        conn.execute(
            "INSERT INTO monitor_snapshots (model, version, created, snapshot_json) VALUES (?, ?, ?, ?)",
            (model, version, snap.get("created") or _now(), json.dumps(snap, sort_keys=True, allow_nan=False)),
        )
        conn.execute(
            "DELETE FROM monitor_snapshots WHERE model = ? AND version IS ? AND id NOT IN "
            "(SELECT id FROM monitor_snapshots WHERE model = ? AND version IS ? ORDER BY id DESC LIMIT ?)",
            (model, version, model, version, int(keep)),
        )


def load_latest_snapshot(conn: sqlite3.Connection, model: str, version: int | None = None) -> dict[str, Any] | None:
    """The newest snapshot saved for ``model`` (and ``version``, when given), or None if there is none."""
    try:
        if version is None:
            row = conn.execute(
                "SELECT id, snapshot_json FROM monitor_snapshots WHERE model = ? ORDER BY id DESC LIMIT 1", (model,)
            ).fetchone()
        else:
            row = conn.execute(
                "SELECT id, snapshot_json FROM monitor_snapshots WHERE model = ? AND version = ? ORDER BY id DESC LIMIT 1",
                (model, int(version)),
            ).fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise
    if row is None:
        return None
    snap: dict[str, Any] = json.loads(row[1])
    snap["snapshot_id"] = int(row[0])
    return snap

