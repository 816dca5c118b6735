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

The best variant meeting every constraint wins by the objective (default: lowest p95 at
batch 1); ties go to the better metric, then the smaller file. When none meets them,
:class:`~fulcrum.errors.ConstraintError` names the closest variant and, for each
constraint it breaks, by how much.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import ConstraintError

__all__ = ["Constraint", "parse_constraints", "select_variant", "variant_value", "CONSTRAINT_KEYS", "OBJECTIVES",
           "Selection"]

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


@dataclass
class Selection:
    chosen: str
    entry: dict[str, Any]
    objective: str
    value: float
    constraints: list[Constraint]
    passing: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.chosen, "objective": self.objective, "objective_value": self.value,
                "constraints": [str(c) for c in self.constraints], "meeting_constraints": self.passing}


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def select_variant(variants: Mapping[str, Mapping[str, Any]], constraints: list[Constraint],
                   objective: str = "p95_ms") -> Selection:
    """The best measured variant (the parent, id "base", included) meeting every constraint."""
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

        def rank(vid: str) -> tuple[float, float, float]:
            e = measured[vid]
            obj = variant_value(e, objective)
            obj = math.inf if obj is None else (obj if minimize else -obj)
            drop = variant_value(e, "metric_drop")
            return obj, math.inf if drop is None else drop, variant_value(e, "size_mb") or math.inf

        best = min(passing, key=rank)
        return Selection(best, dict(measured[best]), objective, variant_value(measured[best], objective) or math.nan,
                         list(constraints), sorted(passing))

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
