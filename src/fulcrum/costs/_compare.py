"""Comparing measurements: intervals from repeated rounds, and the simpler-choice rule.

Every decision Fulcrum takes on a measurement (which variant is faster, which is cheapest)
compares *intervals*, never two single numbers:

- :func:`median_interval`: the median of per-round values with a distribution-free
  confidence interval from order statistics (the binomial rule for the median: with ``n``
  rounds, ``[x_(k), x_(n-k+1)]`` covers the true median with probability
  ``1 - 2 P(Bin(n, 1/2) <= k - 1)``; ``k`` is the largest with coverage >= ``level``, and
  with too few rounds for that, ``[min, max]`` with the coverage it has);
- :func:`ratio_interval`: a pooled ratio (total cost / total predictions over all rounds)
  with a percentile-bootstrap interval over rounds (fixed seed, so the same rounds give the
  same interval);
- :func:`separated`: two figures differ only when their intervals do not overlap;
- :data:`SIMPLICITY` / :func:`simplicity_key`: when they do overlap, the simpler variant (fewer
  transformations of the trained model) is preferred::

      base < onnx-fp32 < int8-dynamic < int8-static < trees-P < pruned-S < shallow < distilled

  ``base`` is the trained graph itself; ``onnx-fp32`` only re-arranges it offline; int8
  variants round its weights (dynamic: weights only, static: activations too, from
  calibration data); ``trees-P`` truncates a boosted ensemble; ``pruned-S`` removes units and
  re-trains briefly; ``shallow`` and ``distilled`` are new models trained for the job. Within
  a kind, the variant closer to the parent is simpler (pruned-50 before pruned-80,
  trees-50 before trees-25).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

__all__ = ["Interval", "median_interval", "ratio_interval", "separated", "SIMPLICITY", "simplicity_key",
           "DEFAULT_MAX_DROP"]

#: The default quality constraint of every decision: at most this much worse than the parent
#: on the task's primary metric (0.01 = one point of accuracy).
DEFAULT_MAX_DROP = 0.01

#: Variant kinds from the simplest (the trained graph itself) to the most transformed.
SIMPLICITY: tuple[str, ...] = ("base", "onnx-fp32", "int8-dynamic", "int8-static", "trees", "pruned", "shallow",
                               "distilled")


@dataclass(frozen=True)
class Interval:
    """A point estimate with an interval ``[lo, hi]`` that covers the true value with
    probability ``level``, from ``n`` rounds."""

    point: float
    lo: float
    hi: float
    level: float
    n: int

    def to_list(self, digits: int = 6) -> list[float]:
        return [round(self.lo, digits), round(self.hi, digits)]

    def to_dict(self) -> dict[str, Any]:
        return {"point": self.point, "lo": self.lo, "hi": self.hi, "level": self.level, "n": self.n}


def _binom_cdf_half(k: int, n: int) -> float:
    """P(Bin(n, 1/2) <= k)."""
    if k < 0:
        return 0.0
    return sum(math.comb(n, i) for i in range(0, min(k, n) + 1)) / 2.0**n


def median_interval(values: Sequence[float], level: float = 0.95) -> Interval:
    """Median of ``values`` and its order-statistic confidence interval (see the module docstring)."""
    xs = sorted(float(v) for v in values)
    n = len(xs)
    if n == 0:
        raise ValueError("median_interval needs at least one value")
    mid = n // 2
    point = xs[mid] if n % 2 else 0.5 * (xs[mid - 1] + xs[mid])
    k = 1
    while k + 1 <= (n + 1) // 2 and 1.0 - 2.0 * _binom_cdf_half(k, n) >= level:
        k += 1  # x_(k+1) .. x_(n-k) still covers with probability >= level
    coverage = 1.0 - 2.0 * _binom_cdf_half(k - 1, n)
    return Interval(point, xs[k - 1], xs[n - k], round(coverage, 4), n)


def ratio_interval(numerators: Sequence[float], denominators: Sequence[float], level: float = 0.95,
                   resamples: int = 2000, seed: int = 0) -> Interval:
    """``sum(num) / sum(den)`` over rounds, with a percentile-bootstrap interval over rounds."""
    import numpy as np

    num = np.asarray(numerators, dtype=np.float64)
    den = np.asarray(denominators, dtype=np.float64)
    if num.size == 0 or num.shape != den.shape or den.sum() <= 0:
        raise ValueError("ratio_interval needs rounds with a positive total denominator")
    point = float(num.sum() / den.sum())
    n = int(num.size)
    if n == 1:
        return Interval(point, point, point, 0.0, 1)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    sums_d = den[idx].sum(axis=1)
    ratios = num[idx].sum(axis=1) / np.where(sums_d > 0, sums_d, np.nan)
    ratios = ratios[np.isfinite(ratios)]
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(ratios, [tail, 1.0 - tail])
    return Interval(point, min(float(lo), point), max(float(hi), point), level, n)


def separated(a: tuple[float, float] | Interval, b: tuple[float, float] | Interval) -> int:
    """-1 when ``a`` lies wholly below ``b``, +1 when wholly above, 0 when the intervals overlap."""
    a_lo, a_hi = (a.lo, a.hi) if isinstance(a, Interval) else a
    b_lo, b_hi = (b.lo, b.hi) if isinstance(b, Interval) else b
    if a_hi < b_lo:
        return -1
    if a_lo > b_hi:
        return 1
    return 0


def _kind_of(vid: str, entry: Mapping[str, Any] | None) -> str:
    kind = str((entry or {}).get("kind") or "")
    if kind in SIMPLICITY:
        return kind
    for k in sorted(SIMPLICITY, key=len, reverse=True):  # "pruned-80" -> "pruned"
        if vid == k or vid.startswith(k + "-"):
            return k
    return ""


def simplicity_key(vid: str, entry: Mapping[str, Any] | None = None) -> tuple[int, float, str]:
    """Sort key: simpler variants first (see :data:`SIMPLICITY`); unknown kinds last."""
    kind = _kind_of(vid, entry)
    rank = SIMPLICITY.index(kind) if kind else len(SIMPLICITY)
    params = (entry or {}).get("params") or {}
    closeness = 0.0  # within a kind: closer to the parent first
    try:
        if kind == "pruned":
            closeness = float(params.get("sparsity", int(vid.split("-")[1]) / 100))
        elif kind == "trees":
            closeness = -float(params.get("fraction", int(vid.split("-")[1]) / 100))
    except (IndexError, ValueError):
        closeness = 0.0
    return rank, closeness, vid
