"""Measure ONNX graphs on this machine: task metric on held-out rows, latency, throughput, size, energy.

How a graph is timed (the same way for the parent and every variant):

- one ONNX Runtime session per graph, created once with the serving settings
  (:class:`fulcrum.runtime.OnnxEngine`: ORT_ENABLE_ALL, physical-core threads), then
  ``warmup`` untimed runs;
- batch 1: ``runs_b1`` timed ``session.run`` calls cycling over single held-out rows;
  batch 256: ``runs_b256`` timed calls on one block of 256 rows (the test split repeated);
- the graphs are timed in round-robin rounds (every graph gets a slice of each round), so
  a burst of load from other processes on the machine hits all of them alike instead of
  whichever happened to be measured at that moment;
- inputs are encoded before timing (the graph is what is measured, not pandas);
- p50/p95/p99 are order statistics of the per-call wall times; throughput is rows
  divided by the summed wall time of the batch-256 calls;
- energy: the timed calls run inside :func:`fulcrum.costs.measure` when it exists (its
  record says whether energy was measured through RAPL or estimated); energy per 1,000
  predictions is the window's energy divided by the predictions it served.
"""

from __future__ import annotations

import contextlib

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

import numpy as np

__all__ = ["BenchSettings", "GraphBench", "benchmark_graphs", "percentiles", "evaluate_graph"]

BATCHES = (1, 256)


@dataclass
class BenchSettings:
    """Counts of timed runs; the defaults take about a second per graph on a small tabular model."""

    warmup: int = 20
    runs_b1: int = 300
    runs_b256: int = 40
    rounds: int = 5
    batch: int = 256
    threads: int | None = None  # None: OnnxEngine's default (physical cores)

    def to_dict(self) -> dict[str, Any]:
        return {"warmup": self.warmup, "runs_b1": self.runs_b1, "runs_b256": self.runs_b256,
                "rounds": self.rounds, "batch": self.batch, "threads": self.threads}


@dataclass
class GraphBench:
    """Timings of one graph, filled round by round."""

    b1_s: list[float] = field(default_factory=list)
    big_s: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    energy_kwh: float = 0.0
    energy_method: str | None = None
    energy_detail: str | None = None
    predictions: int = 0
    metered: bool = False
    load_ms: float = 0.0
    # one measured window per batch size (summed over rounds): CostRecord fields and predictions
    windows: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add_window(self, key: str, rec: Any, n: int) -> None:
        w = self.windows.setdefault(key, {"wall_s": 0.0, "cpu_s": 0.0, "energy_kwh": 0.0, "n": 0})
        w["wall_s"] += float(rec.wall_s)
        w["cpu_s"] += float(rec.cpu_s)
        w["energy_kwh"] += float(rec.energy_kwh)
        w["n"] += n
        w["energy_method"], w["energy_detail"] = str(rec.energy_method), str(rec.energy_detail)


def percentiles(times_s: list[float]) -> dict[str, float]:
    """p50/p95/p99 in milliseconds (linear interpolation between order statistics)."""
    arr = np.asarray(times_s, dtype=np.float64) * 1e3
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    return {"p50": round(float(p50), 5), "p95": round(float(p95), 5), "p99": round(float(p99), 5)}


def _meter() -> Callable[..., Any] | None:
    try:
        from ..costs import measure
    except ImportError:  # the cost ledger is not in this build
        return None
    return measure


def _session(model: bytes, kind: str, warm: Mapping[str, np.ndarray], threads: int | None) -> Any:
    from ..runtime import OnnxEngine

    return OnnxEngine(model, kind=kind, warmup=warm, threads=threads)


@contextlib.contextmanager
def _window(measure: Callable[..., Any] | None) -> Iterator[Any]:
    if measure is None:
        yield None
        return
    with measure(sample_memory=False) as meter:
        yield meter


def benchmark_graphs(
    graphs: Mapping[str, bytes],
    kind: str,
    rows_b1: list[dict[str, np.ndarray]],
    block: dict[str, np.ndarray],
    settings: BenchSettings | None = None,
) -> dict[str, dict[str, Any]]:
    """Latency p50/p95/p99 at batch 1 and at ``settings.batch``, throughput and energy of each graph.

    ``rows_b1``: encoded single rows (feeds of shape [1, 1] per column); ``block``: one encoded
    batch of ``settings.batch`` rows. Returns ``{id: {"latency_ms": {"b1": {...}, "b256": {...}},
    "throughput_rps", "load_ms", "energy_per_1k_kwh", "cost": {...} | None}}``.
    """
    s = settings or BenchSettings()
    measure = _meter()
    engines: dict[str, Any] = {}
    stats: dict[str, GraphBench] = {}
    for gid, model in graphs.items():
        t0 = time.perf_counter()
        eng = _session(model, kind, rows_b1[0], s.threads)
        load_ms = (time.perf_counter() - t0) * 1e3
        for i in range(s.warmup):
            eng.output(rows_b1[i % len(rows_b1)])
        for _ in range(max(2, s.warmup // 5)):
            eng.output(block)
        engines[gid] = eng
        stats[gid] = GraphBench(load_ms=load_ms)

    per_round_b1 = max(1, math.ceil(s.runs_b1 / s.rounds))
    per_round_big = max(1, math.ceil(s.runs_b256 / s.rounds))
    n_block = len(next(iter(block.values())))
    order = list(graphs)
    for r in range(s.rounds):
        ids = order if r % 2 == 0 else order[::-1]  # alternate who goes first
        for gid in ids:
            run = engines[gid].output
            st = stats[gid]
            b1, big = st.b1_s, st.big_s
            # batch 1 and the large batch are metered as separate windows: what one prediction
            # costs differs by orders of magnitude between them
            with _window(measure) as m1:
                for i in range(per_round_b1):
                    feeds = rows_b1[(r * per_round_b1 + i) % len(rows_b1)]
                    t0 = time.perf_counter()
                    run(feeds)
                    b1.append(time.perf_counter() - t0)
            with _window(measure) as m2:
                for _ in range(per_round_big):
                    t0 = time.perf_counter()
                    run(block)
                    big.append(time.perf_counter() - t0)
            st.predictions += per_round_b1 + per_round_big * n_block
            for key, meter, n in (("batch_1", m1, per_round_b1), (f"batch_{s.batch}", m2, per_round_big * n_block)):
                if meter is not None and meter.record is not None:
                    rec = meter.record
                    st.metered = True
                    st.cpu_s += float(rec.cpu_s)
                    st.energy_kwh += float(rec.energy_kwh)
                    st.energy_method = str(rec.energy_method)
                    st.energy_detail = str(rec.energy_detail)
                    st.add_window(key, rec, n)

    out: dict[str, dict[str, Any]] = {}
    for gid, st in stats.items():
        big_key = f"b{s.batch}"
        entry: dict[str, Any] = {
            "latency_ms": {"b1": percentiles(st.b1_s), big_key: percentiles(st.big_s)},
            "throughput_rps": round(n_block * len(st.big_s) / sum(st.big_s), 1),
            "load_ms": round(st.load_ms, 3),
            "timed_runs": {"b1": len(st.b1_s), big_key: len(st.big_s)},
        }
        if st.metered and st.predictions:
            entry["energy_per_1k_kwh"] = st.energy_kwh / st.predictions * 1000.0
            entry["cost"] = {
                "predictions": st.predictions,
                "cpu_s": round(st.cpu_s, 6),
                "energy_kwh": st.energy_kwh,
                "energy_method": st.energy_method,
                "energy_detail": st.energy_detail,
                "cpu_s_per_1k": st.cpu_s / st.predictions * 1000.0,
            }
            # per batch size, in the ledger's shape: the window as a CostRecord and its predictions
            entry["costs"] = {
                key: {"n_predictions": w["n"], "window": {
                    "wall_s": w["wall_s"], "cpu_s": w["cpu_s"], "gpu_s": None, "peak_rss_mb": None, "flops": None,
                    "energy_kwh": w["energy_kwh"], "energy_method": w["energy_method"],
                    "energy_detail": w["energy_detail"]}}
                for key, w in st.windows.items()
            }
        else:
            entry["energy_per_1k_kwh"] = None
            entry["cost"] = None
        out[gid] = entry
    return out


def evaluate_graph(model: bytes, kind: str, feeds: Mapping[str, np.ndarray], y: np.ndarray, n_classes: int) -> tuple[dict[str, Any], np.ndarray]:
    """(task metrics, primary output) of ``model`` on the encoded held-out rows ``feeds``."""
    from ..tasks import evaluate_outputs

    eng = _session(model, kind, None, None)  # type: ignore[arg-type]
    out = eng.output(dict(feeds))
    return evaluate_outputs(kind, y, out, n_classes), out
