"""Cumulative-cost chart of a :func:`~fulcrum.costs.project` report."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["plot_cumulative_cost"]

# x-axis unit by horizon length: (longest horizon, seconds per unit, unit name)
_TIME_UNITS = (
    (2 * 86400.0, 3600.0, "hours"),
    (120 * 86400.0, 86400.0, "days"),
    (float("inf"), 30.4375 * 86400.0, "months"),
)


def _human(n: float) -> str:
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.3g}{suffix}"
    return f"{n:.3g}"


def _usd(x: float) -> str:
    return f"\\${x:.3g}"  # escaped: a bare $ starts matplotlib mathtext


def _rate(per_s: float) -> str:
    for mult, unit in ((1.0, "s"), (60.0, "min"), (3600.0, "h"), (86400.0, "day")):
        if per_s * mult >= 1:
            return f"{_human(per_s * mult)} predictions/{unit}"
    return f"{_human(per_s * 86400.0)} predictions/day"


def _duration(seconds: float) -> str:
    for div, unit in ((86400.0 * 365.25, "y"), (86400.0, "d"), (3600.0, "h"), (60.0, "min")):
        if seconds >= div:
            return f"{seconds / div:.3g} {unit}"
    return f"{seconds:.3g} s"


def plot_cumulative_cost(report: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Draw cumulative USD over the report's horizon and save it as a PNG at ``path``.

    Each variant is one line: a step at t=0 for training (and then for the
    variant's optimization cost), then a slope of ``usd per prediction * rate``.
    Circles mark where a variant's inference has cost as much as training
    (break-even); diamonds mark where a variant overtakes the baseline.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    rate = float(report["assumptions"]["rate_per_s"])
    horizon = float(report["assumptions"]["horizon_s"])
    unit_s, unit = next((u, name) for limit, u, name in _TIME_UNITS if horizon <= limit)
    train = float(report["training"]["usd"])
    base = report["baseline"]
    variants: dict[str, dict[str, Any]] = report["variants"]

    fig = Figure(figsize=(9, 5.2 + 0.17 * (len(variants) * 2 + 1)), dpi=110)
    ax = fig.add_subplot()
    colors = matplotlib.colormaps["tab10"].colors
    x_end = horizon / unit_s
    base_v = variants[base]
    events: list[tuple[float, float, Any, str, str]] = []  # (x, y, color, marker, text)
    for i, (name, v) in enumerate(variants.items()):
        color = colors[i % len(colors)]
        pp = float(v["per_prediction"]["usd"])
        fixed = train + float(v["optimization_usd"])
        slope = pp * rate  # USD per second
        label = f"{name}: {_usd(v['usd_per_million'])}/1M predictions, {_usd(v['lifetime_usd'])} over horizon"
        if name == report["best"]:
            label += " (best)"
        if v.get("break_even_predictions") is None:
            label += "; inference never reaches the training cost"
        elif not v.get("break_even_within_horizon"):
            label += f"; break-even after the horizon ({_duration(float(v['break_even_s']))})"
        ax.plot([0, 0, 0, x_end], [0, train, fixed, fixed + slope * horizon], color=color, lw=2, label=label)
        be_s = v.get("break_even_s")
        if be_s is not None and be_s <= horizon:
            text = f"{name} break-even: {_human(v['break_even_predictions'])} predictions, {_duration(be_s)}"
            events.append((be_s / unit_s, fixed + slope * be_s, color, "o", text))
        # where this variant overtakes the baseline (its extra fixed cost is paid back)
        if name != base:
            extra = float(v["optimization_usd"]) - float(base_v["optimization_usd"])
            gain = (float(base_v["per_prediction"]["usd"]) - pp) * rate
            if extra > 0 and gain > 0 and extra / gain <= horizon:
                t = extra / gain
                text = f"{name} pays off vs {base}: {_human(rate * t)} predictions, {_duration(t)}"
                events.append((t / unit_s, fixed + slope * t, color, "D", text))
    # every event is a marker with a legend entry; the chart itself is labelled only
    # where the text has room (events bunched near t=0 would overprint each other)
    last_x = -float("inf")
    for x, y, color, marker, text in sorted(events):
        ax.plot([x], [y], marker, color=color, ms=7, mec="black", zorder=5, label=text, ls="none")
        if x >= 0.04 * x_end and x - last_x >= 0.12 * x_end:
            ax.annotate(text.split(": ", 1)[0].split(" ", 1)[1], (x, y), xytext=(6, -14),
                        textcoords="offset points", fontsize=8, color=color)
            last_x = x
    method = report["training"]["energy_method"]
    ax.axhline(train, color="grey", ls=":", lw=1, label=f"training: {_usd(train)} (energy {method})")
    ax.set_xlim(-0.01 * x_end, x_end * 1.01)
    ax.set_ylim(bottom=0)
    ax.set_xlabel(f"time in production ({unit}) at {_rate(rate)}")
    ax.set_ylabel("cumulative cost (USD)")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: _usd(y)))
    days = horizon / 86400.0
    ax.set_title(
        f"Cumulative cost: training + inference over {days:.4g} days "
        f"({_human(report['assumptions']['predictions_over_horizon'])} predictions)"
    )
    ax.grid(True, alpha=0.3)
    # below the axes, so it never hides a line
    ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.13), fontsize=8, frameon=False)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out
