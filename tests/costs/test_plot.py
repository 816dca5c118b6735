from __future__ import annotations

import struct

from fulcrum.costs import CostModel, CostRecord, per_prediction_cost, plot_cumulative_cost, project

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _rec(cpu_s: float) -> CostRecord:
    energy = cpu_s * 6.75 / 3.6e6
    return CostRecord(cpu_s, cpu_s, energy, "estimated-tdp", "t")


def _report(rate: str = "2/s") -> dict:
    cm = CostModel()
    variants = {
        "onnx-fp32": per_prediction_cost(_rec(3.0), 1000, cm),
        "int8-dynamic": per_prediction_cost(_rec(1.0), 1000, cm),
        "free": per_prediction_cost(_rec(0.0), 1000, cm),  # break-even never: must not break the plot
    }
    return project(_rec(40 * 3600), variants, cm, rate, "12mo", optimization={"int8-dynamic": 0.6, "free": 3.0})


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_plot_writes_a_sane_png(tmp_path):
    out = plot_cumulative_cost(_report(), tmp_path / "sub" / "costs.png")
    assert out == tmp_path / "sub" / "costs.png" and out.is_file()
    assert 10_000 < out.stat().st_size < 2_000_000
    width, height = _png_size(out)
    assert 600 <= width <= 2000 and 400 <= height <= 1500


def test_plot_with_early_break_even_points(tmp_path):
    report = _report("5000/s")
    out = plot_cumulative_cost(report, str(tmp_path / "busy.png"))
    assert _png_size(out)[0] > 0


def _busy_report() -> dict:
    """Seven variants whose break-even points all fall in the first hours of a year (the finding)."""
    cm = CostModel()
    variants = {name: per_prediction_cost(_rec(cpu), 10_000, cm) for name, cpu in
                [("base", 0.010), ("onnx-fp32", 0.008), ("int8-dynamic", 0.0085), ("int8-static", 0.009),
                 ("pruned-50", 0.006), ("pruned-80", 0.0065), ("distilled", 0.007)]}
    return project(_rec(11.0), variants, cm, "10/s", "12mo", baseline="base",
                   optimization={"pruned-50": 0.00005, "distilled": 0.0002})


def test_cost_plot_spreads_break_even_points_and_keeps_the_legend_small():
    from fulcrum.costs._plot import cost_figure

    report = _busy_report()
    fig = cost_figure(report)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    x0, x1 = ax.get_xlim()
    events = [line for line in ax.lines if line.get_marker() in ("o", "D") and len(line.get_xdata()) == 1]
    assert len(events) >= len(report["variants"])  # every break-even is drawn
    xs = sorted(float(line.get_xdata()[0]) for line in events)
    assert all(x0 < x < x1 for x in xs)
    # on the axis they are apart: the earliest and the latest break-even differ by a visible distance
    px = [ax.transData.transform((x, 1.0))[0] for x in xs]
    assert px[-1] - px[0] > 40
    renderer = fig.canvas.get_renderer()
    legend = ax.get_legend().get_window_extent(renderer)
    axes = ax.get_window_extent(renderer)
    assert legend.height < 0.6 * axes.height and legend.width < 0.8 * axes.width
    assert axes.x0 <= legend.x0 and legend.x1 <= axes.x1 and axes.y0 <= legend.y0 and legend.y1 <= axes.y1 + 1


def test_cost_plot_marks_recommended_and_excluded_variants():
    from fulcrum.costs._plot import cost_figure

    report = _busy_report()
    report["best"] = "onnx-fp32"
    report["variants"]["pruned-80"]["excluded"] = "accuracy 0.62: 0.36 worse, over the allowed drop of 0.01"
    texts = [t.get_text() for t in cost_figure(report).axes[0].get_legend().get_texts()]
    assert any(t.startswith("onnx-fp32:") and "(recommended)" in t for t in texts)
    assert any(t.startswith("pruned-80:") and "(excluded: quality)" in t for t in texts)
