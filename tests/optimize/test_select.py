"""Constraints: parsing, choosing the best variant that meets them, the failure message; the Pareto plot."""

from __future__ import annotations

import pytest

from fulcrum.errors import ConstraintError
from fulcrum.optimize import Constraint, pareto_front, parse_constraints, plot_pareto, select_variant


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


def test_pareto_front():
    pts = {"a": (1.0, 0.9), "b": (2.0, 0.95), "c": (2.5, 0.93), "d": (0.5, 0.8), "e": (3.0, 0.95)}
    assert pareto_front(pts) == ["d", "a", "b"]


def test_plot_writes_png(tmp_path):
    out = plot_pareto(VARIANTS, tmp_path / "p.png", metric_name="accuracy", selected="distilled",
                      constraints=parse_constraints("p95_ms<=0.45, metric_drop<=0.01"))
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
