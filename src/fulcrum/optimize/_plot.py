"""Pareto plot of variants: task metric against p95 latency at batch 1, marker area ~ file size."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

__all__ = ["pareto_front", "plot_pareto"]


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


def plot_pareto(variants: Mapping[str, Mapping[str, Any]], path: str | os.PathLike[str], *, metric_name: str = "metric",
                greater_is_better: bool = True, selected: str | None = None, title: str | None = None,
                constraints: list[Any] | None = None) -> Path:
    """Write the plot to ``path`` (PNG through matplotlib's Agg backend) and return the path."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    pts: dict[str, tuple[float, float, float]] = {}
    for vid, e in variants.items():
        try:
            x = float(e["latency_ms"]["b1"]["p95"])
            y = float(e["metric"]["value"])
            size = float(e["size_bytes"])
        except (KeyError, TypeError, ValueError):
            continue
        pts[vid] = (x, y, size)
    path = Path(path)
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    try:
        if pts:
            smax = max(p[2] for p in pts.values()) or 1.0
            sign = 1.0 if greater_is_better else -1.0
            front = pareto_front({k: (p[0], sign * p[1]) for k, p in pts.items()})
            fx = [pts[k][0] for k in front]
            fy = [pts[k][1] for k in front]
            ax.step(fx, fy, where="post", color="tab:red", lw=1.2, alpha=0.8, label="Pareto front", zorder=1)
            xs_all = [p[0] for p in pts.values()]
            ys_all = [p[1] for p in pts.values()]
            xr = (max(xs_all) - min(xs_all)) or 1.0
            yr = (max(ys_all) - min(ys_all)) or 1.0
            placed: list[tuple[float, float]] = []
            for vid, (x, y, size) in sorted(pts.items(), key=lambda kv: (kv[1][0], -kv[1][1])):
                area = 40 + 900 * size / smax
                color = "tab:green" if vid == selected else ("tab:gray" if vid == "base" else "tab:blue")
                ax.scatter([x], [y], s=area, color=color, alpha=0.55, edgecolors="black", linewidths=0.6, zorder=2)
                # points on top of each other get their labels stacked instead of overprinted
                near = sum(1 for px, py in placed if abs(px - x) / xr < 0.12 and abs(py - y) / yr < 0.08)
                placed.append((x, y))
                label = f"{vid} ({size / 1e3:.1f} KB)" + (" selected" if vid == selected else "")
                ax.annotate(label, (x, y), textcoords="offset points", xytext=(9, 4 - 12 * near), fontsize=8, zorder=3,
                            arrowprops={"arrowstyle": "-", "lw": 0.4, "color": "0.5"} if near else None)
            for c in constraints or []:
                key = getattr(c, "key", None)
                if key == "p95_ms":
                    ax.axvline(c.value, color="tab:orange", ls="--", lw=1, label=f"{c}")
                elif key == "metric":
                    ax.axhline(c.value, color="tab:orange", ls=":", lw=1, label=f"{c}")
                elif key == "metric_drop" and "base" in pts:
                    base_y = pts["base"][1]
                    ax.axhline(base_y - sign * c.value, color="tab:orange", ls=":", lw=1, label=f"{c}")
            xs = [p[0] for p in pts.values()]
            if min(xs) > 0 and max(xs) / min(xs) > 20:
                ax.set_xscale("log")
            ys = [p[1] for p in pts.values()]
            pad = max(0.005, 0.15 * (max(ys) - min(ys)))
            ax.set_ylim(min(ys) - pad, max(ys) + 2 * pad)
        else:
            ax.text(0.5, 0.5, "no measured variants", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel("p95 latency at batch 1 (ms, lower is better)")
        ax.set_ylabel(f"{metric_name} on the test split ({'higher' if greater_is_better else 'lower'} is better)")
        ax.set_title(title or "Variants: metric vs latency (marker area ~ file size)")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return path
