"""Projections: what training and each inference variant cost over a deployment.

Pure arithmetic on USD figures and rates; every function says its formula.
A *variant* is described by a per-prediction cost dict from
:func:`per_prediction_cost` (a benchmark window divided by the predictions it served).
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable

from ..errors import ConfigError
from ._meter import CostRecord
from ._model import CostModel, money

__all__ = [
    "parse_rate",
    "parse_horizon",
    "cost_per_million",
    "break_even_predictions",
    "lifetime_cost",
    "savings",
    "per_prediction_cost",
    "project",
    "Ledger",
]

DAY = 86400.0
MONTH = 30.4375 * DAY  # 365.25 / 12 days
YEAR = 365.25 * DAY

_RATE_UNITS = {
    "s": 1.0, "sec": 1.0, "second": 1.0,
    "min": 60.0, "minute": 60.0,
    "h": 3600.0, "hr": 3600.0, "hour": 3600.0,
    "d": DAY, "day": DAY,
}  # fmt: skip
_HORIZON_UNITS = {
    "s": 1.0, "min": 60.0, "h": 3600.0, "d": DAY, "w": 7 * DAY, "mo": MONTH, "y": YEAR,
}  # fmt: skip
_NUMBER = r"([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)"
_RATE_RE = re.compile(rf"^\s*{_NUMBER}\s*/\s*([a-z]+?)s?\s*$")
_HORIZON_RE = re.compile(rf"^\s*{_NUMBER}\s*([a-z]+)\s*$")

RATE_FORMS = "'50/s', '3000/min', '100/h', '1e6/day' (units: s, min, h, day)"
HORIZON_FORMS = "'24h', '30d', '6w', '12mo', '1y' (also 's', 'min'; 1mo = 30.4375 days, 1y = 365.25 days)"


def _positive_number(value: float, what: str, forms: str) -> float:
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise ConfigError(f"{what} must be a positive number, got {value!r}; write it like {forms}.")
    return v


def parse_rate(text: str | float) -> float:
    """Predictions per second from ``"<number>/<unit>"`` (a bare number is already per second).

    ``"3000/min"`` -> 3000 / 60 = 50.0.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return _positive_number(text, "rate", RATE_FORMS)
    m = _RATE_RE.match(str(text).lower())
    if not m or m.group(2) not in _RATE_UNITS:
        raise ConfigError(f"Cannot read rate {text!r}; write predictions per time unit like {RATE_FORMS}.")
    return _positive_number(float(m.group(1)) / _RATE_UNITS[m.group(2)], "rate", RATE_FORMS)


def parse_horizon(text: str | float) -> float:
    """Seconds from ``"<number><unit>"`` (a bare number is already seconds).

    ``"12mo"`` -> 12 * 30.4375 * 86400 = 31 557 600 s (= one 365.25-day year).
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return _positive_number(text, "horizon", HORIZON_FORMS)
    m = _HORIZON_RE.match(str(text).lower())
    if not m or m.group(2) not in _HORIZON_UNITS:
        raise ConfigError(f"Cannot read horizon {text!r}; write a duration like {HORIZON_FORMS}.")
    return _positive_number(float(m.group(1)) * _HORIZON_UNITS[m.group(2)], "horizon", HORIZON_FORMS)


def _non_negative(value: float, name: str) -> float:
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}.")
    return v


def cost_per_million(per_prediction_cost_usd: float) -> float:
    """Cost of 1,000,000 predictions: ``per_prediction * 1e6``."""
    return _non_negative(per_prediction_cost_usd, "per_prediction_cost_usd") * 1e6


def break_even_predictions(training_cost: float, per_prediction_cost: float) -> float | None:
    """Predictions after which inference has cost as much as training: ``training / per_prediction``.

    ``None`` when a prediction costs nothing (inference never catches up).
    """
    t = _non_negative(training_cost, "training_cost")
    p = _non_negative(per_prediction_cost, "per_prediction_cost")
    return None if p == 0 else t / p


def lifetime_cost(training_cost: float, per_prediction_cost: float, rate_per_s: float, horizon_s: float) -> float:
    """Training plus inference over the horizon: ``training + per_prediction * rate * horizon``."""
    t = _non_negative(training_cost, "training_cost")
    p = _non_negative(per_prediction_cost, "per_prediction_cost")
    return t + p * parse_rate(rate_per_s) * parse_horizon(horizon_s)


def savings(
    baseline: float, candidate: float, optimization_cost: float, rate_per_s: float, horizon_s: float
) -> float:
    """Net USD saved by serving ``candidate`` instead of ``baseline`` (per-prediction costs)
    over the horizon, after paying ``optimization_cost`` to build it::

        (baseline - candidate) * rate * horizon - optimization_cost

    Negative when the candidate does not pay for itself within the horizon.
    """
    b = _non_negative(baseline, "baseline")
    c = _non_negative(candidate, "candidate")
    o = _non_negative(optimization_cost, "optimization_cost")
    return (b - c) * parse_rate(rate_per_s) * parse_horizon(horizon_s) - o


def per_prediction_cost(window: CostRecord, n_predictions: int, cost_model: CostModel | None = None) -> dict[str, Any]:
    """Divide a benchmark window by the predictions it served.

    ``latency_s`` is ``wall_s / n`` (amortised: with batching it is the time per
    prediction, not one request's latency); the other figures are the window's
    totals divided by ``n``; ``usd`` and ``co2_g`` come from :func:`money`.
    """
    if isinstance(n_predictions, bool) or not isinstance(n_predictions, int) or n_predictions <= 0:
        raise ConfigError(f"n_predictions must be a positive integer, got {n_predictions!r}.")
    priced = money(window, cost_model)
    n = n_predictions
    return {
        "n_predictions": n,
        "latency_s": window.wall_s / n,
        "cpu_s": window.cpu_s / n,
        "gpu_s": None if window.gpu_s is None else window.gpu_s / n,
        "energy_kwh": window.energy_kwh / n,
        "usd": priced["total_usd"] / n,
        "co2_g": priced["co2_g"] / n,
        "flops": None if window.flops is None else window.flops / n,
        "energy_method": window.energy_method,
    }


def _usd(value: CostRecord | float | None, cost_model: CostModel) -> float:
    if value is None:
        return 0.0
    if isinstance(value, CostRecord):
        return money(value, cost_model)["total_usd"]
    return _non_negative(value, "optimization cost")


def project(
    training: CostRecord,
    variants: dict[str, dict[str, Any]],
    cost_model: CostModel | None = None,
    rate_per_s: float | str = 1.0,
    horizon_s: float | str = "1y",
    *,
    optimization: dict[str, CostRecord | float] | None = None,
    baseline: str | None = None,
    candidates: list[str] | None = None,
    prefer: Callable[[str], Any] | None = None,
) -> dict[str, Any]:
    """The whole cost report as a JSON-able dict.

    ``variants`` maps a name to :func:`per_prediction_cost` output (optionally with
    ``"usd_ci": (lo, hi)``, the per-prediction interval over measurement rounds);
    ``optimization`` maps a variant to what building it cost (a record or USD; default 0);
    ``baseline`` is the variant savings are measured against (default: the first).
    Per variant: USD, kWh and CO2 per 1M predictions; break-even predictions (where
    inference has cost as much as training) and when that happens at the rate;
    lifetime USD = training + optimization + inference over the horizon, with its interval
    when the variant has one.

    ``best`` is the recommendation: among ``candidates`` (default: every variant; the caller
    leaves out those that fail its quality constraint) the lowest lifetime cost by point value
    (``cheapest_by_point``); every candidate whose lifetime interval overlaps that one's is
    just as cheap within noise (``within_noise``), and of those the first by ``prefer`` (a sort
    key; default :func:`fulcrum.costs._compare.simplicity_key`, the simplest variant) is
    ``best``. ``best_saving_usd`` is baseline lifetime minus best lifetime (:func:`savings` net
    of the optimization costs).
    """
    from ._compare import separated, simplicity_key

    cm = cost_model or CostModel()
    if not variants:
        raise ConfigError("project() needs at least one variant; pass {'name': per_prediction_cost(...)}.")
    rate = parse_rate(rate_per_s)
    horizon = parse_horizon(horizon_s)
    base = baseline if baseline is not None else next(iter(variants))
    if base not in variants:
        raise ConfigError(f"baseline {base!r} is not a variant; choose one of {', '.join(map(repr, variants))}.")
    opt = optimization or {}
    stray = sorted(set(opt) - set(variants))
    if stray:
        raise ConfigError(f"optimization cost given for unknown variant(s) {stray}; variants: {list(variants)}.")
    pool = list(variants) if candidates is None else [c for c in candidates if c in variants]
    if not pool:
        raise ConfigError(f"project() has no candidate to recommend among {list(variants)}; pass candidates=None "
                          "or at least one variant name.")

    train_money = money(training, cm)
    train_usd = train_money["total_usd"]
    n_horizon = rate * horizon
    out_variants: dict[str, dict[str, Any]] = {}
    for name, pp in variants.items():
        usd = float(pp["usd"])
        be = break_even_predictions(train_usd, usd)
        opt_usd = _usd(opt.get(name), cm)
        lifetime = lifetime_cost(train_usd, usd, rate, horizon) + opt_usd
        ci = pp.get("usd_ci")
        lo, hi = (float(ci[0]), float(ci[1])) if ci else (usd, usd)
        out_variants[name] = {
            "per_prediction": {k: v for k, v in pp.items() if k != "usd_ci"},
            "usd_per_million": cost_per_million(usd),
            "usd_per_million_ci": [lo * 1e6, hi * 1e6] if ci else None,
            "kwh_per_million": float(pp["energy_kwh"]) * 1e6,
            "co2_g_per_million": float(pp["co2_g"]) * 1e6,
            "optimization_usd": opt_usd,
            "break_even_predictions": be,
            "break_even_s": None if be is None else be / rate,
            "break_even_within_horizon": be is not None and be <= n_horizon,
            "inference_usd": usd * n_horizon,
            "lifetime_usd": lifetime,
            "lifetime_usd_ci": [lifetime + (lo - usd) * n_horizon, lifetime + (hi - usd) * n_horizon] if ci else None,
        }

    def interval(name: str) -> tuple[float, float]:
        v = out_variants[name]
        return tuple(v["lifetime_usd_ci"]) if v["lifetime_usd_ci"] else (v["lifetime_usd"], v["lifetime_usd"])  # type: ignore[return-value]

    key = prefer or simplicity_key
    cheapest = min(pool, key=lambda k: out_variants[k]["lifetime_usd"])
    tied = sorted((k for k in pool if k == cheapest or separated(interval(k), interval(cheapest)) == 0), key=key)
    best = tied[0]
    b, w = out_variants[base], out_variants[best]
    saving = savings(
        b["per_prediction"]["usd"], w["per_prediction"]["usd"], 0.0, rate, horizon
    ) - (w["optimization_usd"] - b["optimization_usd"])
    return {
        "cost_model": cm.to_dict(),
        "assumptions": {
            "rate_per_s": rate,
            "horizon_s": horizon,
            "horizon_days": horizon / DAY,
            "predictions_over_horizon": n_horizon,
        },
        "training": {
            "wall_s": training.wall_s,
            "cpu_s": training.cpu_s,
            "gpu_s": training.gpu_s,
            "peak_rss_mb": training.peak_rss_mb,
            "flops": training.flops,
            "energy_kwh": training.energy_kwh,
            "energy_method": training.energy_method,
            "energy_detail": training.energy_detail,
            "usd": train_usd,
            "co2_g": train_money["co2_g"],
        },
        "variants": out_variants,
        "baseline": base,
        "candidates": pool,
        "cheapest_by_point": cheapest,
        "within_noise": tied,
        "best": best,
        "best_saving_usd": saving,
    }


class Ledger:
    """Collects the cost records of one model (training, optimizations, benchmark windows)
    and projects them with :func:`project`. ``to_dict``/``from_dict`` round-trip it
    (the shape of a package's ``costs.json``).
    """

    def __init__(self, cost_model: CostModel | None = None) -> None:
        self.cost_model = cost_model or CostModel()
        self.training: CostRecord | None = None
        self.windows: dict[str, tuple[CostRecord, int]] = {}
        self.optimization: dict[str, CostRecord] = {}

    def add_training(self, record: CostRecord) -> Ledger:
        self.training = record
        return self

    def add_variant(
        self, name: str, window: CostRecord, n_predictions: int, optimization: CostRecord | None = None
    ) -> Ledger:
        """A benchmark ``window`` that served ``n_predictions`` with variant ``name``, and
        optionally what building the variant cost."""
        per_prediction_cost(window, n_predictions, self.cost_model)  # validates n_predictions
        self.windows[name] = (window, n_predictions)
        if optimization is not None:
            self.optimization[name] = optimization
        return self

    def report(self, rate_per_s: float | str, horizon_s: float | str, baseline: str | None = None) -> dict[str, Any]:
        if self.training is None:
            raise ConfigError("Ledger has no training record; call add_training(record) first.")
        variants = {n: per_prediction_cost(w, k, self.cost_model) for n, (w, k) in self.windows.items()}
        return project(
            self.training,
            variants,
            self.cost_model,
            rate_per_s,
            horizon_s,
            optimization=dict(self.optimization),
            baseline=baseline,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "cost_model": self.cost_model.to_dict(),
            "training": None if self.training is None else self.training.to_dict(),
            "variants": {
                n: {
                    "window": w.to_dict(),
                    "n_predictions": k,
                    "optimization": self.optimization[n].to_dict() if n in self.optimization else None,
                }
                for n, (w, k) in self.windows.items()
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Ledger:
        ledger = cls(CostModel.from_dict(data.get("cost_model", {})))
        if data.get("training") is not None:
            ledger.add_training(CostRecord.from_dict(data["training"]))
        for name, v in data.get("variants", {}).items():
            o = v.get("optimization")
            ledger.add_variant(
                name,
                CostRecord.from_dict(v["window"]),
                int(v["n_predictions"]),
                None if o is None else CostRecord.from_dict(o),
            )
        return ledger
