"""Timing ONNX graphs: percentiles, the measurement record, and verdicts that never flatter a variant."""

from __future__ import annotations

import numpy as np
import pytest

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


def test_benchmark_graphs_record():
    rows = [{"x": np.array([[float(i)]])} for i in range(8)]
    block = {"x": np.arange(256, dtype=np.float64).reshape(-1, 1)}
    s = BenchSettings(warmup=2, runs_b1=20, runs_b256=6, rounds=2)
    out = benchmark_graphs({"a": _graph(), "b": _graph(5)}, "regression", rows, block, s)
    for gid in ("a", "b"):
        e = out[gid]
        assert set(e["latency_ms"]) == {"b1", "b256"}
        assert 0 < e["latency_ms"]["b1"]["p50"] <= e["latency_ms"]["b1"]["p95"] <= e["latency_ms"]["b1"]["p99"]
        assert e["timed_runs"] == {"b1": 20, "b256": 6}
        assert e["throughput_rps"] > 0 and e["load_ms"] > 0
        try:
            import fulcrum.costs  # noqa: F401
        except ImportError:  # the cost ledger is not in this build: the fields exist, empty
            assert e["energy_per_1k_kwh"] is None and e["cost"] is None
        else:
            assert e["energy_per_1k_kwh"] >= 0 and e["cost"]["predictions"] == 20 + 6 * 256
            assert e["cost"]["energy_method"]


def _m(p50, thr, size, drop):
    """b1 median ``p50`` ms; batch 256 median from ``thr`` rows/s."""
    return {"latency_ms": {"b1": {"p50": p50}, "b256": {"p50": 256e3 / thr}}, "throughput_rps": thr,
            "size_bytes": size, "metric_drop": drop}


def test_verdict_reports_slower_and_worse_as_such():
    base = _m(1.0, 1000.0, 1000, 0.0)
    v = verdict(_m(1.5, 800.0, 400, 0.02), base, True)
    assert v["faster_than_parent"] is False and v["slower_than_parent"] is True
    assert v["worse_than_parent"] is True and v["smaller_than_parent"] is True
    assert v["verdict"] == "slower, smaller, metric worse by 0.02"
    assert v["speed_vs_parent"]["b1_p50_ratio"] == 1.5


def test_verdict_noise_band_and_mixed():
    base = _m(1.0, 1000.0, 1000, 0.0)
    assert verdict(_m(1.02, 990.0, 1000, 0.0), base, True)["verdict"] == "same speed, same size, same metric"
    mixed = verdict(_m(1.3, 2000.0, 1000, -0.01), base, True)
    assert mixed["faster_than_parent"] is False
    assert mixed["verdict"].startswith("mixed (slower at b1, faster at b256)")
    assert mixed["verdict"].endswith("metric better by 0.01")
    fast = verdict(_m(0.5, 2000.0, 1000, 0.0), base, True)
    assert fast["faster_than_parent"] is True and fast["speed_vs_parent"]["b1_speedup"] == 2.0
