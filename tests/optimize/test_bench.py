"""Timing ONNX graphs: percentiles, the measurement record, and verdicts that never flatter a variant."""

from __future__ import annotations

import numpy as np
import pytest

from fulcrum.costs._compare import median_interval, ratio_interval, separated
from fulcrum.errors import ConfigError
from fulcrum.optimize import BenchSettings, benchmark_graphs
from fulcrum.optimize._bench import percentiles
from fulcrum.optimize._variants import verdict


def _graph(extra_nodes: int = 0) -> bytes:
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Cast", ["x"], ["v0"], to=TensorProto.FLOAT)]
    for i in range(extra_nodes):  # a slower graph: more elementwise work
        nodes.append(helper.make_node("Sqrt", [f"v{i}"], [f"v{i + 1}"]))
    nodes.append(helper.make_node("Reshape", [f"v{extra_nodes}", "flat"], ["value"]))
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["N", 1])],
                          [helper.make_tensor_value_info("value", TensorProto.FLOAT, ["N"])],
                          initializer=[helper.make_tensor("flat", TensorProto.INT64, [1], [-1])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)])
    onnx.checker.check_model(m)
    return m.SerializeToString()


def test_percentiles_in_ms():
    p = percentiles([i / 1000 for i in range(1, 101)])  # 1..100 ms
    assert p["p50"] == pytest.approx(50.5) and p["p95"] == pytest.approx(95.05) and p["p99"] == pytest.approx(99.01)


def test_median_interval_is_the_order_statistic_interval():
    # 15 rounds: the binomial rule gives [x_(4), x_(12)], coverage 1 - 2 P(Bin(15, 1/2) <= 3) = 0.9648
    iv = median_interval(list(range(15, 0, -1)))
    assert (iv.point, iv.lo, iv.hi, iv.n) == (8.0, 4.0, 12.0, 15)
    assert iv.level == pytest.approx(1 - 2 * 576 / 2**15, abs=1e-4)
    few = median_interval([3.0, 1.0, 2.0])  # too few rounds for 95%: min..max, with the coverage it has
    assert (few.point, few.lo, few.hi) == (2.0, 1.0, 3.0) and few.level == pytest.approx(0.75)
    assert median_interval([1.0, 2.0, 3.0, 4.0]).point == 2.5


def test_ratio_interval_brackets_the_pooled_ratio():
    iv = ratio_interval([1.0, 2.0, 3.0, 2.0, 2.5], [10, 20, 30, 20, 20])
    assert iv.point == pytest.approx(10.5 / 100)
    assert iv.lo <= iv.point <= iv.hi and iv.lo < iv.hi
    assert ratio_interval([1.0, 2.0, 3.0, 2.0, 2.5], [10, 20, 30, 20, 20]) == iv  # fixed seed: same rounds, same interval


def test_separated():
    assert separated((1.0, 2.0), (2.5, 3.0)) == -1
    assert separated((2.5, 3.0), (1.0, 2.0)) == 1
    assert separated((1.0, 2.6), (2.5, 3.0)) == 0


def test_bench_settings_need_repeated_rounds():
    with pytest.raises(ConfigError, match="at least 2"):
        BenchSettings(rounds=1)


def test_benchmark_graphs_record():
    rows = [{"x": np.array([[float(i)]])} for i in range(8)]
    block = {"x": np.arange(256, dtype=np.float64).reshape(-1, 1)}
    s = BenchSettings(warmup=2, rounds=4, round_s=0.0, min_calls_b1=5, min_calls_big=2)
    out = benchmark_graphs({"a": _graph(), "b": _graph(5)}, "regression", rows, block, s)
    for gid in ("a", "b"):
        e = out[gid]
        assert set(e["latency_ms"]) == {"b1", "b256"}
        assert 0 < e["latency_ms"]["b1"]["p50"] <= e["latency_ms"]["b1"]["p95"] <= e["latency_ms"]["b1"]["p99"]
        # round_s=0: exactly the minimum calls per round, in 4 interleaved rounds
        assert e["timed_runs"] == {"b1": 4 * 5, "b256": 4 * 2}
        assert e["timing"]["rounds"] == 4 and e["timing"]["method"].startswith("ONNX Runtime session.run")
        for b in ("b1", "b256"):  # an interval for every percentile, around the median over rounds
            for q in ("p50", "p95", "p99"):
                lo, hi = e["latency_ci_ms"][b][q]
                assert lo <= e["latency_ms"][b][q] <= hi
        lo, hi = e["throughput_ci_rps"]
        assert 0 < lo <= e["throughput_rps"] <= hi and e["load_ms"] > 0
        assert e["energy_per_1k_kwh"] >= 0 and e["cost"]["predictions"] == 4 * 5 + 4 * 2 * 256
        assert e["cost"]["energy_method"]
        rounds = e["costs"]["batch_1"]["rounds"]
        assert len(rounds) == 4 and [r["n"] for r in rounds] == [5] * 4  # one metered window per round
        assert e["costs"]["batch_256"]["n_predictions"] == 4 * 2 * 256


def _m(p50, thr, size, drop, ci=None, ci_big=None):
    """b1 median ``p50`` ms (interval ``ci``, default: the point); batch 256 median from ``thr`` rows/s."""
    big = 256e3 / thr
    return {"latency_ms": {"b1": {"p50": p50}, "b256": {"p50": big}},
            "latency_ci_ms": {"b1": {"p50": list(ci or (p50, p50))}, "b256": {"p50": list(ci_big or (big, big))}},
            "throughput_rps": thr, "size_bytes": size, "metric_drop": drop}


def test_verdict_reports_slower_and_worse_as_such():
    base = _m(1.0, 1000.0, 1000, 0.0)
    v = verdict(_m(1.5, 800.0, 400, 0.02), base, True)
    assert v["faster_than_parent"] is False and v["slower_than_parent"] is True
    assert v["worse_than_parent"] is True and v["smaller_than_parent"] is True
    assert v["verdict"] == "slower, smaller, metric worse by 0.02"
    assert v["speed_vs_parent"]["b1_p50_ratio"] == 1.5


def test_verdict_within_overlapping_intervals_is_same_speed():
    # the finding: 0.034 vs 0.036 ms p50 was called "faster"; the rounds spread more than that
    base = _m(0.036, 1000.0, 1000, 0.0, ci=(0.033, 0.041), ci_big=(250.0, 262.0))
    v = verdict(_m(0.034, 1000.0, 1000, 0.0, ci=(0.031, 0.039), ci_big=(251.0, 263.0)), base, True)
    assert v["faster_than_parent"] is False and v["slower_than_parent"] is False
    assert v["verdict"] == "same speed within noise, same size, same metric"
    assert v["speed_vs_parent"]["b1"] == "same within noise"


def test_verdict_faster_only_where_intervals_separate():
    base = _m(1.0, 1000.0, 1000, 0.0, ci=(0.95, 1.05), ci_big=(250.0, 262.0))
    fast = verdict(_m(0.5, 2000.0, 1000, 0.0, ci=(0.45, 0.55), ci_big=(120.0, 135.0)), base, True)
    assert fast["faster_than_parent"] is True and fast["verdict"].startswith("faster,")
    assert fast["speed_vs_parent"]["b1_speedup"] == 2.0
    b1_only = verdict(_m(0.5, 1000.0, 1000, 0.0, ci=(0.45, 0.55), ci_big=(240.0, 270.0)), base, True)
    assert b1_only["verdict"].startswith("faster at b1 (same within noise at b256)")
    mixed = verdict(_m(1.3, 2000.0, 1000, -0.01, ci=(1.2, 1.4), ci_big=(120.0, 135.0)), base, True)
    assert mixed["faster_than_parent"] is False
    assert mixed["verdict"].startswith("mixed (faster at b256, slower at b1)")
    assert mixed["verdict"].endswith("metric better by 0.01")
