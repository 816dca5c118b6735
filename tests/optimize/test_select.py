"""Constraints: parsing, choosing the best variant that meets them, the failure message; the Pareto plot."""

from __future__ import annotations

import pytest

from fulcrum.costs._compare import SIMPLICITY, simplicity_key
from fulcrum.errors import ConstraintError
from fulcrum.optimize import Constraint, pareto_front, parse_constraints, plot_pareto, select_variant
from fulcrum.optimize._select import with_quality_default


def entry(p95, size_bytes, metric, drop, thr=1000.0, p50=None, p99=None):
    return {
        "latency_ms": {"b1": {"p50": p50 or p95 / 2, "p95": p95, "p99": p99 or p95 * 2}},
        "throughput_rps": thr,
        "size_bytes": size_bytes,
        "metric": {"name": "accuracy", "value": metric},
        "metric_drop": drop,
    }


VARIANTS = {
    "base": entry(0.50, 400_000, 0.95, 0.0, thr=50_000),
    "int8-dynamic": entry(0.40, 120_000, 0.945, 0.005, thr=70_000),
    "pruned-80": entry(0.20, 90_000, 0.90, 0.05, thr=90_000),
    "distilled": entry(0.30, 60_000, 0.94, 0.01, thr=80_000),
}


def test_parse_constraints_forms():
    cs = parse_constraints(" p95_ms<=1, size_mb <= 0.5 ;metric_drop<=1% , throughput>2000, metric>=0.9")
    assert cs == [Constraint("p95_ms", "<=", 1.0), Constraint("size_mb", "<=", 0.5),
                  Constraint("metric_drop", "<=", 0.01), Constraint("throughput", ">", 2000.0),
                  Constraint("metric", ">=", 0.9)]
    assert parse_constraints(None) == [] and parse_constraints("  ") == []
    assert str(cs[0]) == "p95_ms<=1"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("p95<=1", ["Unknown constraint key 'p95'", "Did you mean 'p95_ms'", "Known keys: p50_ms", "metric_drop", "KEY OP VALUE"]),
        ("p95_ms is small", ["Cannot parse constraint 'p95_ms is small'", "Known keys", "KEY OP VALUE"]),
        ("p95_ms>=1", ["upper bound", "<= or <"]),
        ("throughput<=5", ["lower bound", ">= or >"]),
        ("size_mb=1", ["use <="]),
        ("size_mb<=5%", ["'%' is only meaningful"]),
        (",,", ["No constraints"]),
    ],
)
def test_parse_errors_name_keys_and_syntax(text, expected):
    with pytest.raises(ConstraintError) as err:
        parse_constraints(text)
    for piece in expected:
        assert piece in str(err.value)


def test_select_lowest_p95_meeting_every_constraint():
    sel = select_variant(VARIANTS, parse_constraints("metric_drop<=0.01, size_mb<=0.2"))
    assert sel.chosen == "distilled"  # pruned-80 is faster but loses 5 points; base is too large
    assert sel.passing == ["distilled", "int8-dynamic"]
    assert sel.to_dict()["constraints"] == ["metric_drop<=0.01", "size_mb<=0.2"]


def test_select_objectives():
    cs = parse_constraints("metric_drop<=0.01")
    assert select_variant(VARIANTS, cs, "size_mb").chosen == "distilled"
    assert select_variant(VARIANTS, cs, "throughput").chosen == "distilled"
    assert select_variant(VARIANTS, cs, "metric").chosen == "base"
    assert select_variant(VARIANTS, parse_constraints("metric>=0.5"), "p95_ms").chosen == "pruned-80"
    with pytest.raises(ConstraintError, match="Unknown objective"):
        select_variant(VARIANTS, cs, "speed")


def test_no_variant_meets_says_which_constraint_and_by_how_much():
    with pytest.raises(ConstraintError) as err:
        select_variant(VARIANTS, parse_constraints("p95_ms<=0.1, metric_drop<=0.01"))
    msg = str(err.value)
    assert "No variant meets p95_ms<=0.1, metric_drop<=0.01" in msg
    # distilled: 0.3 ms (over by 0.2, 200%), drop ok; pruned-80: over by 0.1 (100%) AND drop over by 0.04 (400%)
    assert "Closest: 'distilled'" in msg
    assert "p95_ms is 0.3, over by 0.2, 200% over" in msg
    assert err.value.closest == "distilled"
    assert err.value.failures["pruned-80"][1]["constraint"] == "metric_drop<=0.01"
    assert err.value.failures["pruned-80"][1]["shortfall"] == pytest.approx(0.04)


def test_lower_bound_failure_says_under():
    with pytest.raises(ConstraintError, match=r"throughput is 9e\+04, under by 1e\+04"):
        select_variant(VARIANTS, parse_constraints("throughput>=100000"))


def test_unmeasured_variants_are_ignored_and_nothing_measured_is_an_error():
    with pytest.raises(ConstraintError, match="No measured variants"):
        select_variant({"x": {"kind": "int8-dynamic"}}, parse_constraints("p95_ms<=1"))


def _timed(p95, ci, metric=0.95, drop=0.0, size=100_000, kind=None):
    e = entry(p95, size, metric, drop)
    e["latency_ci_ms"] = {"b1": {"p50": [p95 / 2, p95 / 2], "p95": list(ci), "p99": [p95 * 2, p95 * 2]}}
    if kind:
        e["kind"] = kind
    return e


def test_within_noise_the_simpler_variant_wins():
    # int8-static is "faster" by point value, but its p95 interval overlaps the parent's: keep the parent
    variants = {"base": _timed(0.50, (0.40, 0.60)), "int8-static": _timed(0.45, (0.38, 0.55)),
                "onnx-fp32": _timed(0.48, (0.39, 0.58))}
    sel = select_variant(variants, parse_constraints("metric_drop<=0.01"))
    assert sel.chosen == "base"
    assert sel.best_by_point == "int8-static" and sel.within_noise == ["base", "onnx-fp32", "int8-static"]
    assert "within noise" in sel.reason and sel.to_dict()["best_by_point"] == "int8-static"
    # without the parent, the simpler of the two remaining wins
    del variants["base"]
    assert select_variant(variants, parse_constraints("metric_drop<=0.01")).chosen == "onnx-fp32"


def test_beyond_noise_the_faster_variant_wins():
    variants = {"base": _timed(0.50, (0.45, 0.55)), "distilled": _timed(0.20, (0.18, 0.23)),
                "int8-dynamic": _timed(0.48, (0.40, 0.56))}
    sel = select_variant(variants, parse_constraints("metric_drop<=0.01"))
    assert sel.chosen == "distilled" and sel.within_noise == ["distilled"] and "beyond noise" in sel.reason


def test_simplicity_order_is_explicit():
    assert SIMPLICITY == ("base", "onnx-fp32", "int8-dynamic", "int8-static", "trees", "pruned", "shallow",
                          "distilled")
    ids = ["distilled", "pruned-80", "int8-static", "pruned-50", "onnx-fp32", "base", "int8-dynamic", "trees-25",
           "trees-50", "shallow"]
    assert sorted(ids, key=simplicity_key) == ["base", "onnx-fp32", "int8-dynamic", "int8-static", "trees-50",
                                               "trees-25", "pruned-50", "pruned-80", "shallow", "distilled"]


def test_quality_constraint_is_added_unless_given():
    cs, added = with_quality_default(parse_constraints("p95_ms<=1"))
    assert added and [str(c) for c in cs] == ["p95_ms<=1", "metric_drop<=0.01"]
    cs, added = with_quality_default(parse_constraints("p95_ms<=1, metric>=0.9"))
    assert not added and [str(c) for c in cs] == ["p95_ms<=1", "metric>=0.9"]


def test_pareto_front():
    pts = {"a": (1.0, 0.9), "b": (2.0, 0.95), "c": (2.5, 0.93), "d": (0.5, 0.8), "e": (3.0, 0.95)}
    assert pareto_front(pts) == ["d", "a", "b"]


def test_plot_writes_png(tmp_path):
    out = plot_pareto(VARIANTS, tmp_path / "p.png", metric_name="accuracy", selected="distilled",
                      constraints=parse_constraints("p95_ms<=0.45, metric_drop<=0.01"))
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def _crowded():
    """Seven variants at one accuracy and nearly one latency, and one far worse (the finding's blob)."""
    v = {vid: _timed(p95, (p95 * 0.6, p95 * 2.5), metric=0.9855, size=size)
         for vid, p95, size in [("base", 0.105, 43_900), ("onnx-fp32", 0.094, 44_200), ("int8-dynamic", 0.108, 19_200),
                                ("int8-static", 0.132, 21_300), ("pruned-50", 0.101, 15_700),
                                ("distilled", 0.092, 7_800)]}
    v["pruned-80"] = _timed(0.098, (0.06, 0.2), metric=0.6232, drop=0.3623, size=6_800)
    return v


def test_pareto_plot_is_readable_with_a_constraint():
    from fulcrum.costs._labels import overlaps
    from fulcrum.optimize._plot import pareto_figure

    fig = pareto_figure(_crowded(), metric_name="accuracy", selected="onnx-fp32",
                        constraints=parse_constraints("p95_ms<=0.1, metric_drop<=0.01, size_mb<=5"))
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    from matplotlib.text import Text

    labels = [t for t in ax.texts if "kB" in t.get_text()]
    assert len(labels) == 7
    boxes = [Text.get_window_extent(t, renderer) for t in labels]
    assert overlaps(boxes) == []  # no label overprints another
    axes = ax.get_window_extent(renderer)
    assert all(axes.x0 <= b.x0 and b.x1 <= axes.x1 and axes.y0 <= b.y0 and b.y1 <= axes.y1 for b in boxes)
    # the far-worse variant does not stretch the axis: it sits on the edge, its value written out
    y0, y1 = ax.get_ylim()
    assert y1 - y0 < 0.05
    assert any(t.get_text().startswith("pruned-80 (6.8 kB): accuracy 0.6232, off scale") for t in labels)
    # the constraint region is shaded, and a constraint that is not an axis is named
    assert any(p.get_facecolor()[0] > 0.5 for p in ax.patches)  # tab:red shading
    assert any("size_mb<=5: not an axis" in t.get_text() for t in ax.texts)


def test_pareto_plot_names_a_far_latency_bound_instead_of_stretching_the_axis():
    from fulcrum.optimize._plot import pareto_figure

    fig = pareto_figure(_crowded(), constraints=parse_constraints("p95_ms<=100"))
    ax = fig.axes[0]
    assert ax.get_xlim()[1] < 1.0
    assert any("p95_ms<=100: every variant within it (off the chart)" in t.get_text() for t in ax.texts)


def test_pareto_axis_says_when_the_metric_is_on_rows_the_model_fitted(tmp_path):
    """After refit on all rows, the Pareto plot's metric is on rows the model fitted; its axis says so."""
    import fulcrum
    from fulcrum.optimize._plot import metric_rows_label, pareto_figure

    reg = fulcrum.Registry(tmp_path / "reg")
    kw = dict(model="linear", registry=reg, progress=False, measure_inference=False)
    full = fulcrum.train("builtin:iris", name="full", refit_full=True, **kw)
    held = fulcrum.train("builtin:iris", name="held", refit_full=False, **kw)
    assert "fitted" in metric_rows_label(full.manifest)
    assert metric_rows_label(held.manifest) == "on the test split"
    fig = pareto_figure(VARIANTS, metric_name="accuracy", rows=metric_rows_label(full.manifest))
    assert "rows the model fitted" in fig.axes[0].get_ylabel()
