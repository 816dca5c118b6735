"""Cumulative-cost chart of a :func:`~fulcrum.costs.project` report.

Both axes are logarithmic: training is paid at once and a prediction costs a few millionths
of a cent, so on linear axes every break-even point sits at x = 0 and training at y = 0. On
log axes each variant is a flat line (training + what building it cost) that bends upward
where inference starts to dominate; the bend is its break-even point (circle), and a
diamond marks where a variant's extra build cost is paid back against the baseline. The
legend is one line per variant (its $/1M, break-even and lifetime cost) inside the plot's
empty upper-left corner; variants the recommendation excluded are drawn dashed.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

__all__ = ["plot_cumulative_cost", "cost_figure"]

_TICKS = ((1.0, "1 s"), (60.0, "1 min"), (3600.0, "1 h"), (86400.0, "1 day"), (7 * 86400.0, "1 week"),
          (30.4375 * 86400.0, "1 month"), (365.25 * 86400.0, "1 year"), (10 * 365.25 * 86400.0, "10 years"))


def _human(n: float) -> str:
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.3g}{suffix}"
    return f"{n:.3g}"


def _usd(x: float) -> str:
    from ._record import format_usd

    return format_usd(x).replace("$", "\\$")  # escaped: a bare $ starts matplotlib mathtext


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


def cost_figure(report: dict[str, Any]) -> Any:
    """The chart as a matplotlib ``Figure`` (see :func:`plot_cumulative_cost`)."""
    import matplotlib
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    rate = float(report["assumptions"]["rate_per_s"])
    horizon = float(report["assumptions"]["horizon_s"])
    train = float(report["training"]["usd"])
    base = report["baseline"]
    best = report.get("best")
    variants: dict[str, dict[str, Any]] = report["variants"]
    base_v = variants[base]

    # events: (t seconds, variant, marker)
    events: list[tuple[float, str, str]] = []
    for name, v in variants.items():
        if v.get("break_even_s") is not None and v["break_even_s"] <= horizon:
            events.append((float(v["break_even_s"]), name, "o"))
        if name != base:
            extra = float(v["optimization_usd"]) - float(base_v["optimization_usd"])
            gain = (float(base_v["per_prediction"]["usd"]) - float(v["per_prediction"]["usd"])) * rate
            if extra > 0 and gain > 0 and extra / gain <= horizon:
                events.append((extra / gain, name, "D"))
    # x from well before the first event (or 1e-4 of the horizon) to the horizon
    first = min([t for t, _, _ in events] + [horizon * 1e-4])
    t0 = max(min(first / 10.0, horizon / 100.0), 1e-3)
    t = np.geomspace(t0, horizon, 400)

    fig = Figure(figsize=(9.5, 6), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colors = matplotlib.colormaps["tab10"].colors
    handles: list[Any] = []
    y_min, y_max = math.inf, 0.0
    for i, (name, v) in enumerate(variants.items()):
        color = colors[i % len(colors)]
        pp = float(v["per_prediction"]["usd"])
        fixed = train + float(v["optimization_usd"])
        y = fixed + pp * rate * t
        excluded = bool(v.get("excluded"))
        lw = 2.6 if name == best else 1.5
        ax.plot(t, y, color=color, lw=lw, ls="--" if excluded else "-", alpha=0.55 if excluded else 0.95)
        y_min, y_max = min(y_min, float(y[0])), max(y_max, float(y[-1]))
        be = v.get("break_even_predictions")
        be_text = (f"break-even {_human(be)} pred. ({_duration(float(v['break_even_s']))})" if be is not None
                   else "never breaks even")
        label = f"{name}: {_usd(v['usd_per_million'])}/1M, {be_text}, {_usd(v['lifetime_usd'])} in total"
        if name == best:
            label += "  (recommended)"
        elif excluded:
            label += "  (excluded: quality)"
        handles.append(Line2D([], [], color=color, lw=lw, ls="--" if excluded else "-", label=label))
    for t_ev, name, marker in events:
        v = variants[name]
        color = colors[list(variants).index(name) % len(colors)]
        y_ev = train + float(v["optimization_usd"]) + float(v["per_prediction"]["usd"]) * rate * t_ev
        ax.plot([t_ev], [y_ev], marker, color=color, ms=6.5, mec="black", mew=0.7, zorder=5, ls="none")
    ax.axhline(train, color="0.4", ls=":", lw=1)
    handles.append(Line2D([], [], color="0.4", ls=":", lw=1,
                          label=f"training: {_usd(train)} (energy {report['training']['energy_method']})"))
    handles.append(Line2D([], [], marker="o", ls="none", color="white", mec="black",
                          label="break-even: inference has cost as much as training"))
    if any(m == "D" for _, _, m in events):
        handles.append(Line2D([], [], marker="D", ls="none", color="white", mec="black",
                              label=f"pays off: build cost recovered vs {base}"))

    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(t0, horizon * 1.05)
    ax.set_ylim(min(y_min, train) / 1.6, y_max * 30)  # headroom above the lines for the legend
    ticks = [(s, name) for s, name in _TICKS if t0 <= s <= horizon * 1.05]
    if len(ticks) >= 2:
        ax.xaxis.set_major_locator(FixedLocator([s for s, _ in ticks]))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: dict(ticks).get(x, "")))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: _usd(y)))
    ax.set_xlabel(f"time in production (log scale) at {_rate(rate)}")
    ax.set_ylabel("cumulative cost, USD (log scale)")
    days = horizon / 86400.0
    ax.set_title(f"Cumulative cost: training + inference over {days:.4g} days "
                 f"({_human(report['assumptions']['predictions_over_horizon'])} predictions)", fontsize=11)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(handles=handles, loc="upper left", fontsize=7.5, frameon=True, framealpha=0.9)
    fig.tight_layout()
    return fig


def plot_cumulative_cost(report: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Draw cumulative USD over the report's horizon and save it as a PNG at ``path``.

    Each variant is one line: training (and then the variant's optimization cost) at
    once, then ``usd per prediction * rate`` per second, on log-log axes (see the module
    docstring). Circles mark where a variant's inference has cost as much as training
    (break-even); diamonds mark where a variant overtakes the baseline.
    """
    fig = cost_figure(report)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out
