"""Constraints on variants ("p95_ms<=1, size_mb<=0.5, metric_drop<=0.01") and the choice among them.

Every key reads one figure from a variant's manifest entry (latencies at batch 1):

==============  =====================================  ======================
key             figure                                 bound
==============  =====================================  ======================
p50_ms          latency_ms.b1.p50                      upper (<=, <)
p95_ms          latency_ms.b1.p95                      upper
p99_ms          latency_ms.b1.p99                      upper
throughput      throughput_rps (rows/s at batch 256)   lower (>=, >)
size_mb         size_bytes / 1e6                       upper
metric_drop     metric_drop (parent - variant, >0 =   upper; "1%" = 0.01
                worse; sign flipped for rmse-like)
metric          the task's primary metric              lower
==============  =====================================  ======================

Choosing among the variants that meet every constraint (DESIGN §8, decisions follow quality,
not noise):

1. the best by the objective's point value (default: lowest p95 at batch 1) is found;
2. every passing variant whose figure is *within noise* of it -- for timings (p50/p95/p99,
   throughput) the intervals over interleaved rounds overlap; for size and metric the value
   is equal -- is just as good;
3. of those, the **simplest** wins (fewer transformations of the trained model; the order is
   :data:`fulcrum.costs._compare.SIMPLICITY`: base < onnx-fp32 < int8-dynamic < int8-static <
   trees < pruned < shallow < distilled).

So a variant is chosen over its parent only when it is better beyond the noise of the
machine. When none meets the constraints, :class:`~fulcrum.errors.ConstraintError` names the
closest variant and, for each constraint it breaks, by how much.

:func:`with_quality_default` adds the default quality constraint (``metric_drop<=0.01``) when
the constraints say nothing about the metric: quality comes before speed or size.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..costs._compare import DEFAULT_MAX_DROP, SIMPLICITY, separated, simplicity_key
from ..errors import ConstraintError

__all__ = ["Constraint", "parse_constraints", "select_variant", "variant_value", "variant_interval",
           "with_quality_default", "CONSTRAINT_KEYS", "OBJECTIVES", "Selection", "DEFAULT_MAX_DROP"]

#: Keys measured by timing, whose values carry an interval over rounds.
TIMED_KEYS = ("p50_ms", "p95_ms", "p99_ms", "throughput")

#: key -> (description, "upper" | "lower")
CONSTRAINT_KEYS: dict[str, tuple[str, str]] = {
    "p50_ms": ("median latency at batch 1, ms", "upper"),
    "p95_ms": ("95th-percentile latency at batch 1, ms", "upper"),
    "p99_ms": ("99th-percentile latency at batch 1, ms", "upper"),
    "throughput": ("rows/s at batch 256", "lower"),
    "size_mb": ("model.onnx size, MB (10^6 bytes)", "upper"),
    "metric_drop": ("task metric lost vs the parent (0.01 = 1 point of accuracy)", "upper"),
    "metric": ("the task's primary metric on the test split", "lower"),
}
#: objective -> minimize?
OBJECTIVES: dict[str, bool] = {"p95_ms": True, "p50_ms": True, "p99_ms": True, "size_mb": True,
                               "throughput": False, "metric": False, "metric_drop": True}
_SYNTAX = ('Write constraints as KEY OP VALUE separated by commas, e.g. "p95_ms<=1, size_mb<=0.5, '
           'metric_drop<=0.01"; OP is <= or < for upper bounds, >= or > for lower bounds')
_ITEM = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|<|>|==|=)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(%?)\s*$")


def _known() -> str:
    return "; ".join(f"{k} ({d}, {'<=' if b == 'upper' else '>='})" for k, (d, b) in CONSTRAINT_KEYS.items())


@dataclass(frozen=True)
class Constraint:
    key: str
    op: str
    value: float

    @property
    def upper(self) -> bool:
        return self.op in ("<=", "<")

    def __str__(self) -> str:
        return f"{self.key}{self.op}{self.value:g}"

    def holds(self, x: float) -> bool:
        return {"<=": x <= self.value, "<": x < self.value, ">=": x >= self.value, ">": x > self.value}[self.op]

    def shortfall(self, x: float) -> float:
        """How far ``x`` is from meeting the bound (0 when it holds)."""
        if self.holds(x):
            return 0.0
        return x - self.value if self.upper else self.value - x

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "op": self.op, "value": self.value}


def parse_constraints(text: str | None) -> list[Constraint]:
    """``"p95_ms<=1, size_mb<=0.5, metric_drop<=1%"`` -> constraints; raises ConstraintError
    naming the bad item, the known keys and the syntax."""
    if text is None or not str(text).strip():
        return []
    out: list[Constraint] = []
    for raw in re.split(r"[,;]", str(text)):
        if not raw.strip():
            continue
        m = _ITEM.match(raw)
        if m is None:
            raise ConstraintError(f"Cannot parse constraint {raw.strip()!r}. {_SYNTAX}. Known keys: {_known()}.")
        key, op, num, pct = m.group(1).lower(), m.group(2), float(m.group(3)), m.group(4)
        if key not in CONSTRAINT_KEYS:
            import difflib

            close = difflib.get_close_matches(key, list(CONSTRAINT_KEYS), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConstraintError(f"Unknown constraint key {key!r} in {raw.strip()!r}.{hint} Known keys: {_known()}. {_SYNTAX}.")
        bound = CONSTRAINT_KEYS[key][1]
        if op in ("=", "=="):
            raise ConstraintError(f"Constraint {raw.strip()!r}: use {'<=' if bound == 'upper' else '>='} (an exact "
                                  f"equality on a measurement never holds). {_SYNTAX}.")
        if (bound == "upper") != (op in ("<=", "<")):
            want = "<= or <" if bound == "upper" else ">= or >"
            raise ConstraintError(f"Constraint {raw.strip()!r}: {key} is {'an upper' if bound == 'upper' else 'a lower'} "
                                  f"bound ({CONSTRAINT_KEYS[key][0]}); write it with {want}.")
        if pct:
            if key not in ("metric_drop", "metric"):
                raise ConstraintError(f"Constraint {raw.strip()!r}: '%' is only meaningful for metric and metric_drop.")
            num /= 100.0
        if not math.isfinite(num):
            raise ConstraintError(f"Constraint {raw.strip()!r}: the bound must be a finite number.")
        out.append(Constraint(key, op, num))
    if not out:
        raise ConstraintError(f"No constraints in {text!r}. {_SYNTAX}. Known keys: {_known()}.")
    return out


def variant_value(entry: Mapping[str, Any], key: str) -> float | None:
    """The figure ``key`` (a constraint key or objective) of one variant's manifest entry."""
    try:
        if key in ("p50_ms", "p95_ms", "p99_ms"):
            return float(entry["latency_ms"]["b1"][key[:3]])
        if key == "throughput":
            return float(entry["throughput_rps"])
        if key == "size_mb":
            return float(entry["size_bytes"]) / 1e6
        if key == "metric_drop":
            v = entry.get("metric_drop")
            return None if v is None else float(v)
        if key == "metric":
            v = entry.get("metric", {}).get("value")
            return None if v is None else float(v)
    except (KeyError, TypeError, ValueError):
        return None
    raise ConstraintError(f"Unknown key {key!r}; known: {', '.join(CONSTRAINT_KEYS)}.")


def variant_interval(entry: Mapping[str, Any], key: str) -> tuple[float, float] | None:
    """The interval of a timed figure (``TIMED_KEYS``) over interleaved rounds; the point value
    as a zero-width interval for other keys or entries measured without rounds."""
    try:
        if key in ("p50_ms", "p95_ms", "p99_ms"):
            ci = entry["latency_ci_ms"]["b1"][key[:3]]
            return float(ci[0]), float(ci[1])
        if key == "throughput":
            ci = entry["throughput_ci_rps"]
            return float(ci[0]), float(ci[1])
    except (KeyError, TypeError, ValueError, IndexError):
        pass
    v = variant_value(entry, key)
    return None if v is None else (v, v)


def with_quality_default(constraints: list[Constraint], max_drop: float = DEFAULT_MAX_DROP) -> tuple[list[Constraint], bool]:
    """(constraints, added): ``metric_drop<=max_drop`` appended when no constraint bounds the metric."""
    if any(c.key in ("metric", "metric_drop") for c in constraints):
        return list(constraints), False
    return [*constraints, Constraint("metric_drop", "<=", float(max_drop))], True


@dataclass
class Selection:
    chosen: str
    entry: dict[str, Any]
    objective: str
    value: float
    constraints: list[Constraint]
    passing: list[str]
    best_by_point: str = ""
    within_noise: list[str] = field(default_factory=list)

    intervals: bool = True  # False: the entries carry no intervals (measured before rounds were kept)

    @property
    def reason(self) -> str:
        """Why ``chosen`` won, in one sentence."""
        others = [v for v in self.within_noise if v != self.chosen]
        if not self.intervals and self.objective in TIMED_KEYS:
            return (f"best {self.objective} by point value; these measurements carry no intervals, so noise cannot "
                    f"be told apart (--remeasure to time them in interleaved rounds)")
        if self.chosen == self.best_by_point and not others:
            return f"best {self.objective}, beyond noise"
        if self.chosen == self.best_by_point:
            return (f"best {self.objective}; {', '.join(others)} within noise of it but not simpler")
        return (f"{self.best_by_point} has the best {self.objective} by point value, but {self.chosen} is within "
                f"noise of it and simpler")

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.chosen, "objective": self.objective, "objective_value": self.value,
                "constraints": [str(c) for c in self.constraints], "meeting_constraints": self.passing,
                "best_by_point": self.best_by_point, "within_noise": self.within_noise, "reason": self.reason,
                "rule": "among variants within noise of the best (intervals overlap), the simplest: "
                        + " < ".join(SIMPLICITY)}


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def select_variant(variants: Mapping[str, Mapping[str, Any]], constraints: list[Constraint],
                   objective: str = "p95_ms") -> Selection:
    """The simplest measured variant (the parent, id "base", included) meeting every constraint
    whose objective is within noise of the best one's (see the module docstring)."""
    if objective not in OBJECTIVES:
        raise ConstraintError(f"Unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}.")
    measured = {k: v for k, v in variants.items() if isinstance(v, Mapping) and v.get("latency_ms")}
    if not measured:
        raise ConstraintError("No measured variants to choose from; run `fulcrum optimize REF` first.")
    passing: list[str] = []
    misses: dict[str, list[tuple[Constraint, float | None, float]]] = {}
    for vid, entry in measured.items():
        fails = []
        for c in constraints:
            x = variant_value(entry, c.key)
            if x is None:
                fails.append((c, None, math.inf))
            elif not c.holds(x):
                fails.append((c, x, c.shortfall(x)))
        if fails:
            misses[vid] = fails
        else:
            passing.append(vid)
    if passing:
        minimize = OBJECTIVES[objective]

        def rank(vid: str) -> tuple[float, tuple[int, float, str]]:
            obj = variant_value(measured[vid], objective)
            obj = math.inf if obj is None else (obj if minimize else -obj)
            return obj, simplicity_key(vid, measured[vid])

        best = min(passing, key=rank)
        best_iv = variant_interval(measured[best], objective)
        tied = []
        for vid in passing:
            iv = variant_interval(measured[vid], objective)
            if vid == best or (iv is not None and best_iv is not None and separated(iv, best_iv) == 0):
                tied.append(vid)
        chosen = min(tied, key=lambda v: simplicity_key(v, measured[v]))
        value = variant_value(measured[chosen], objective)
        has_ci = all(measured[v].get("latency_ci_ms") for v in passing)
        return Selection(chosen, dict(measured[chosen]), objective, math.nan if value is None else value,
                         list(constraints), sorted(passing), best,
                         sorted(tied, key=lambda v: simplicity_key(v, measured[v])), has_ci)

    def distance(vid: str) -> float:  # summed relative shortfall: how far from meeting everything
        return sum(short / max(abs(c.value), 1e-9) if math.isfinite(short) else 1e9 for c, _, short in misses[vid])

    closest = min(misses, key=distance)
    parts = []
    for c, x, short in misses[closest]:
        if x is None:
            parts.append(f"{c}: not measured")
            continue
        rel = f", {100 * short / abs(c.value):.0f}% {'over' if c.upper else 'under'}" if c.value else ""
        parts.append(f"{c}: {c.key} is {_fmt(x)}, {'over' if c.upper else 'under'} by {_fmt(short)}{rel}")
    err = ConstraintError(
        f"No variant meets {', '.join(map(str, constraints))} (of {len(measured)}: {', '.join(sorted(measured))}). "
        f"Closest: {closest!r}: " + "; ".join(parts) + ". Loosen the constraint(s) above or build other variants."
    )
    err.closest = closest  # type: ignore[attr-defined]
    err.failures = {  # type: ignore[attr-defined]
        vid: [{"constraint": str(c), "value": x, "shortfall": (s if math.isfinite(s) else None)} for c, x, s in f]
        for vid, f in misses.items()
    }
    raise err
