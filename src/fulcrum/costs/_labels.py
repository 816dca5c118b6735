"""Point labels that never overprint each other or a marker (used by the Pareto and cost plots).

Greedy placement in display space: for each point (in the order given), try offsets around
it, nearest first, and keep the one with the lowest cost: overlap with labels placed before
(full weight), with markers and other obstacles (reduced weight: grazing a marker beats a long
leader line), outside the axes (heavy), plus the length of its leader line. Far offsets get a
thin leader line.
"""

from __future__ import annotations

from typing import Any, Sequence

__all__ = ["place_labels", "overlaps"]

# directions (dx, dy) with the text's horizontal / vertical alignment, nearest-looking first
_DIRECTIONS = [(1, 0.5, "left", "bottom"), (1, -0.5, "left", "top"), (-1, 0.5, "right", "bottom"),
               (-1, -0.5, "right", "top"), (0, 1, "center", "bottom"), (0, -1, "center", "top"),
               (1, 0, "left", "center"), (-1, 0, "right", "center")]
_STEPS_PT = (0.0, 14.0, 28.0, 44.0, 64.0, 88.0, 116.0)  # extra distance beyond the marker; > 0: leader line
_THIN = 0.25  # weight of an obstacle such as an interval bar: crossing one is better than hiding text
_MARKER = 0.3  # weight of a marker: a label may graze one rather than sit far away on a long leader
_PER_PT = 10.0  # cost (px^2 of overlap) of each point of leader line


def _area(a: Any, b: Any) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def overlaps(boxes: Sequence[Any]) -> list[tuple[int, int]]:
    """Index pairs of display-space boxes (``Bbox``) that overlap."""
    return [(i, j) for i in range(len(boxes)) for j in range(i + 1, len(boxes)) if _area(boxes[i], boxes[j]) > 0]


def place_labels(ax: Any, points: Sequence[tuple[float, float]], texts: Sequence[str], *,
                 marker_px: Sequence[float] | float = 8.0, fontsize: float = 8.0,
                 colors: Sequence[Any] | None = None,
                 obstacles: Sequence[tuple[float, float, float, float]] = ()) -> list[Any]:
    """Annotate ``points`` (data coordinates) with ``texts`` without overlaps; returns the
    ``Annotation`` artists. ``marker_px``: each marker's radius in pixels (kept clear);
    ``obstacles``: more boxes to keep clear, ``(x0, y0, x1, y1)`` in data coordinates."""
    from matplotlib.text import Text
    from matplotlib.transforms import Bbox

    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    radii = [float(marker_px)] * len(points) if isinstance(marker_px, (int, float)) else [float(r) for r in marker_px]
    disp = [ax.transData.transform(p) for p in points]
    taken: list[tuple[Any, float]] = [(Bbox.from_extents(x - r, y - r, x + r, y + r), _MARKER)
                                      for (x, y), r in zip(disp, radii)]
    for x0, y0, x1, y1 in obstacles:
        (a, b), (c, d) = ax.transData.transform((x0, y0)), ax.transData.transform((x1, y1))
        taken.append((Bbox.from_extents(min(a, c), min(b, d), max(a, c), max(b, d)), _THIN))
    inside = ax.get_window_extent(renderer)
    placed: list[Any] = []
    pt = fig.dpi / 72.0  # pixels per point
    for i, ((x, y), text) in enumerate(zip(points, texts)):
        best: tuple[float, Any, Any] | None = None
        near = radii[i] / pt + 3.0
        for step in _STEPS_PT:
            for ux, uy, ha, va in _DIRECTIONS:
                d = near + step
                ann = ax.annotate(text, (x, y), xytext=(ux * d, uy * d), textcoords="offset points", ha=ha, va=va,
                                  fontsize=fontsize, zorder=6, color=None if colors is None else colors[i],
                                  arrowprops={"arrowstyle": "-", "lw": 0.7, "color": "0.3"} if step else None,
                                  annotation_clip=False)
                ann.update_positions(renderer)  # applies the offset (otherwise done at draw time)
                box = Text.get_window_extent(ann, renderer).padded(2)  # the text alone, not its leader line
                clash = sum(w * _area(box, t) for t, w in taken)
                outside = box.width * box.height - _area(box, inside)
                score = clash + 4 * outside + step * _PER_PT
                if best is None or score < best[0]:
                    if best is not None:
                        best[1].remove()
                    best = (score, ann, box)
                else:
                    ann.remove()
            later = [t for t in _STEPS_PT if t > step]
            if best is not None and (not later or best[0] <= later[0] * _PER_PT):
                break  # no farther place can score better
        assert best is not None
        taken.append((best[2], 1.0))
        placed.append(best[1])
    return placed
