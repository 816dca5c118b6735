"""Pareto plot of variants: task metric against p95 latency at batch 1.

Every figure comes from the package's measurement record (:func:`fulcrum.costs.measurements`;
plain manifest entries are read the same way), so the plot shows what the tables print:

- each variant is a marker (area ~ file size) with a horizontal bar: the interval of its p95
  over interleaved rounds; the parent is grey, the selected variant green;
- labels (``id (size)``) are placed so that none overprints another or a marker;
- constraints are drawn as regions: what fails them is shaded, with the bound as a line; a
  bound far outside the measured range is named in a note instead of stretching the axis;
- the axes cover the measured points (latency on a log axis when it spans more than 20x); a
  variant whose metric is far below the rest is drawn on the bottom edge as a down arrow with
  its value, so one bad variant does not squeeze the others into a blob.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping

__all__ = ["pareto_front", "plot_pareto", "pareto_figure"]


def pareto_front(points: Mapping[str, tuple[float, float]]) -> list[str]:
    """Ids not dominated by another point (lower latency ``x`` and higher metric ``y`` are better),
    sorted by latency."""
    ids = sorted(points, key=lambda k: (points[k][0], -points[k][1]))
    front, best_y = [], float("-inf")
    for k in ids:
        if points[k][1] > best_y:
            front.append(k)
            best_y = points[k][1]
    return front


def _point(rec: Any) -> tuple[float, float, float, tuple[float, float] | None] | None:
    """(p95 ms, metric, size bytes, p95 interval) of a Measurement or a manifest entry."""
    try:
        if hasattr(rec, "latency_ms"):  # a fulcrum.costs.Measurement
            x = float(rec.latency_ms["p95"])
            y = float(rec.metric_value)
            size = float(rec.size_bytes)
            ci = (rec.latency_ci_ms or {}).get("p95")
        else:
            x = float(rec["latency_ms"]["b1"]["p95"])
            y = float(rec["metric"]["value"])
            size = float(rec["size_bytes"])
            ci = ((rec.get("latency_ci_ms") or {}).get("b1") or {}).get("p95")
    except (KeyError, TypeError, ValueError):
        return None
    return x, y, size, (float(ci[0]), float(ci[1])) if ci else None


def metric_rows_label(manifest: Mapping[str, Any]) -> str:
    """Where the variants' metric was measured: the test split, or (after refit on all rows) rows the model fitted."""
    if (manifest.get("data") or {}).get("test_rows_in_final_fit"):
        return "on the test split, rows the model fitted (refit on all rows)"
    return "on the test split"


def pareto_figure(variants: Mapping[str, Any], *, metric_name: str = "metric", greater_is_better: bool = True,
                  selected: str | None = None, title: str | None = None, constraints: list[Any] | None = None,
                  rows: str = "on the test split") -> Any:
    """The plot as a matplotlib ``Figure`` (see :func:`plot_pareto`)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from ..costs._labels import place_labels
    from ..costs._record import format_size

    pts = {vid: p for vid, rec in variants.items() if (p := _point(rec)) is not None}
    fig = Figure(figsize=(9, 6), dpi=110)
    FigureCanvasAgg(fig)  # text extents for label placement
    ax = fig.add_subplot()
    sign = 1.0 if greater_is_better else -1.0
    ax.set_xlabel("p95 latency at batch 1, ms (bar: interval over rounds; lower is better)")
    # two lines: the refit note made one line longer than the axis (clipped at the top in the demo's plot)
    ax.set_ylabel(f"{metric_name} ({'higher' if greater_is_better else 'lower'} is better)\n{rows}")
    ax.set_title(title or "Variants: metric vs latency (marker area ~ file size)", fontsize=11)
    ax.grid(True, alpha=0.3)
    if not pts:
        ax.text(0.5, 0.5, "no measured variants", ha="center", va="center", transform=ax.transAxes)
        fig.tight_layout()
        return fig

    # ---- which points set the y range: those near the best; far-worse ones go to the edge
    ys = {k: p[1] for k, p in pts.items()}
    best_y = max(ys.values(), key=lambda v: sign * v)
    base_y = pts["base"][1] if "base" in pts else best_y
    drops = [c.value for c in constraints or [] if getattr(c, "key", None) == "metric_drop"]
    floor = [c.value for c in constraints or [] if getattr(c, "key", None) == "metric"]
    tol = max([0.05, *(3 * d for d in drops)])
    near = {k for k, y in ys.items() if sign * (best_y - y) <= tol or k in ("base", selected)}
    near_y = [ys[k] for k in near]
    lo_y, hi_y = min(near_y), max(near_y)
    bounds_y = [base_y - sign * d for d in drops] + floor
    for b in bounds_y:  # a quality bound near the points is shown; a far one is only named
        if min(lo_y, hi_y) - 2 * max(hi_y - lo_y, 0.01) <= b <= max(lo_y, hi_y) + 2 * max(hi_y - lo_y, 0.01):
            lo_y, hi_y = min(lo_y, b), max(hi_y, b)
    pad_y = max(0.004, 0.12 * (hi_y - lo_y))
    y0, y1 = lo_y - pad_y, hi_y + pad_y
    far = {k for k in pts if not (y0 <= ys[k] <= y1)}

    # ---- x range: every point and its interval
    xs = [p[0] for p in pts.values()] + [v for p in pts.values() if p[3] for v in p[3]]
    x_lo, x_hi = min(xs), max(xs)
    log_x = x_lo > 0 and x_hi / x_lo > 20
    lat_bounds = [c for c in constraints or [] if getattr(c, "key", None) == "p95_ms"]
    for c in lat_bounds:
        if x_lo / 3 <= c.value <= x_hi * 3 if log_x else x_lo - (x_hi - x_lo) <= c.value <= x_hi + (x_hi - x_lo):
            x_lo, x_hi = min(x_lo, c.value), max(x_hi, c.value)
    if log_x:
        ax.set_xscale("log")
        ax.set_xlim(x_lo / 1.4, x_hi * 1.4)
    else:
        pad_x = max(1e-4, 0.1 * (x_hi - x_lo) or 0.1 * x_hi)
        ax.set_xlim(max(0.0, x_lo - pad_x), x_hi + pad_x)
    ax.set_ylim(y0, y1)
    xl = ax.get_xlim()

    # ---- constraint regions: shade what fails, line at the bound, or a note when off the chart
    notes: list[str] = []
    handles: list[Any] = []
    shade = {"color": "tab:red", "alpha": 0.07, "lw": 0}
    for c in lat_bounds:
        if xl[0] < c.value < xl[1]:
            ax.axvspan(c.value, xl[1], **shade)
            ax.axvline(c.value, color="tab:red", ls="--", lw=1)
        else:
            notes.append(f"{c}: {'every' if c.value >= xl[1] else 'no'} variant within it (off the chart)")
    for c, b in [(c, base_y - sign * c.value) for c in constraints or [] if getattr(c, "key", None) == "metric_drop"] + \
                [(c, c.value) for c in constraints or [] if getattr(c, "key", None) == "metric"]:
        if y0 < b < y1:
            ax.axhspan(y0, b, **shade) if greater_is_better else ax.axhspan(b, y1, **shade)
            ax.axhline(b, color="tab:red", ls=":", lw=1)
        else:
            notes.append(f"{c}: bound at {b:.4g}, off the chart")
    if lat_bounds or drops or floor:
        handles.append(Patch(facecolor="tab:red", alpha=0.15, label="fails a constraint: " +
                             ", ".join(str(c) for c in constraints or [])))
    for c in constraints or []:
        if getattr(c, "key", None) not in ("p95_ms", "metric", "metric_drop"):
            notes.append(f"{c}: not an axis of this plot")

    # ---- the Pareto front and the points
    on_chart = {k: p for k, p in pts.items() if k not in far}
    front = pareto_front({k: (p[0], sign * p[1]) for k, p in on_chart.items()})
    if len(front) > 1:
        ax.step([on_chart[k][0] for k in front], [on_chart[k][1] for k in front], where="post", color="tab:blue",
                lw=1, alpha=0.5, zorder=1)
        handles.append(Line2D([], [], color="tab:blue", lw=1, alpha=0.5, label="Pareto front"))
    smax = max(p[2] for p in pts.values()) or 1.0
    order = sorted(pts, key=lambda k: (k != selected, k != "base", pts[k][0]))  # label the important ones first
    label_pts, label_txt, radii = [], [], []
    bars: list[tuple[float, float, float, float]] = []
    same_y: dict[float, list[str]] = {}  # interval bars of points at one metric value are drawn side by side
    for vid in order:
        same_y.setdefault(round(pts[vid][1], 9), []).append(vid)
    for vid in order:
        x, y, size, ci = pts[vid]
        color = "tab:green" if vid == selected else ("0.55" if vid == "base" else "tab:blue")
        area = 50 + 450 * size / smax
        shown_y = y if vid not in far else (y0 + 0.02 * (y1 - y0) if sign * (y - y0) < 0 else y1 - 0.02 * (y1 - y0))
        if ci and vid not in far:  # an off-scale point is a marker on the edge, without its bar
            group = same_y[round(y, 9)]
            dodge = (group.index(vid) - (len(group) - 1) / 2) * 0.011 * (y1 - y0)
            ax.plot(ci, [shown_y + dodge] * 2, color=color, lw=1.6, alpha=0.7, zorder=2, solid_capstyle="butt")
            half = 0.004 * (y1 - y0)
            bars.append((ci[0], shown_y + dodge - half, ci[1], shown_y + dodge + half))
        marker = "o" if vid not in far else ("v" if y < shown_y else "^")
        ax.scatter([x], [shown_y], s=area if vid not in far else 70, marker=marker, color=color, alpha=0.7,
                   edgecolors="black", linewidths=0.6, zorder=3)
        text = f"{vid} ({format_size(size)})" + (" selected" if vid == selected else "")
        if vid in far:
            text += f": {metric_name} {y:.4g}, off scale"
        label_pts.append((x, shown_y))
        label_txt.append(text)
        radii.append(math.sqrt(area if vid not in far else 70) / 2 * fig.dpi / 72)
    handles += [
        Line2D([], [], marker="o", ls="none", color="0.55", mec="black", label="parent (base)"),
        Line2D([], [], marker="o", ls="none", color="tab:blue", mec="black", label="variant"),
    ]
    if selected in pts:
        handles.insert(0, Line2D([], [], marker="o", ls="none", color="tab:green", mec="black",
                                                  label="selected"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.11), ncol=min(4, len(handles)),
              fontsize=8, frameon=False)
    if notes:
        ax.text(0.01, 0.99, "\n".join(notes), transform=ax.transAxes, ha="left", va="top", fontsize=7.5,
                color="0.3", bbox={"facecolor": "white", "alpha": 0.8, "lw": 0})
    fig.tight_layout()
    place_labels(ax, label_pts, label_txt, marker_px=radii)  # after the layout: display positions are final
    return fig


def plot_pareto(variants: Mapping[str, Any], path: str | os.PathLike[str], *, metric_name: str = "metric",
                greater_is_better: bool = True, selected: str | None = None, title: str | None = None,
                constraints: list[Any] | None = None, rows: str = "on the test split") -> Path:
    """Write the plot to ``path`` (PNG) and return the path. ``variants``: id -> a
    :class:`fulcrum.costs.Measurement` (what the CLI passes) or a manifest entry."""
    fig = pareto_figure(variants, metric_name=metric_name, greater_is_better=greater_is_better, selected=selected,
                        title=title, constraints=constraints, rows=rows)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out
