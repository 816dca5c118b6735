"""Measure ONNX graphs on this machine: task metric on held-out rows, latency, throughput, size, energy.

How a graph is timed (the same way for the parent and every variant):

- one ONNX Runtime session per graph, created once with the serving settings
  (:class:`fulcrum.runtime.OnnxEngine`: ORT_ENABLE_ALL, physical-core threads), then
  ``warmup`` untimed runs;
- **interleaved rounds**: ``rounds`` times, every graph in turn (the order alternating
  between rounds) gets a short timed window at batch 1 (``session.run`` on single held-out
  rows, cycling) and one at ``batch`` rows (one block of the test split, repeated); a
  window lasts ``round_s`` seconds and at least ``min_calls_b1`` / ``min_calls_big`` calls.
  A burst of load from other processes therefore hits every graph alike, and shows up as
  round-to-round spread instead of as one graph's "speed";
- inputs are encoded before timing (the graph is what is measured, not pandas);
- per round: p50/p95/p99 of that window's call times and its throughput (rows / summed
  wall time of the batch calls); the reported figure is the **median over rounds**, with a
  distribution-free interval (:func:`fulcrum.costs._compare.median_interval`, about 95%);
  two graphs differ in speed only when their intervals separate;
- energy and CPU time: each window runs inside :func:`fulcrum.costs.measure` (its record
  says whether energy was measured through RAPL or estimated); the windows are kept per
  round, so a cost per prediction gets an interval too.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from ..costs._compare import median_interval

__all__ = ["BenchSettings", "GraphBench", "benchmark_graphs", "percentiles", "evaluate_graph", "METHOD"]

#: How the graphs were timed, in words (stored with every measurement).
METHOD = ("ONNX Runtime session.run on pre-encoded inputs (the graph only; request parsing excluded); "
          "interleaved rounds, median over rounds of each round's percentile, order-statistic interval")


@dataclass
class BenchSettings:
    """Rounds and window lengths; the defaults take about a second per graph."""

    warmup: int = 20
    rounds: int = 15
    round_s: float = 0.02  # timed window per graph, per batch size, per round
    min_calls_b1: int = 20
    min_calls_big: int = 3
    batch: int = 256
    threads: int | None = None  # None: OnnxEngine's default (physical cores)
    level: float = 0.95

    def __post_init__(self) -> None:
        from ..errors import ConfigError

        if int(self.rounds) < 2:
            raise ConfigError(f"BenchSettings.rounds must be at least 2 (an interval needs repeated rounds); "
                              f"got {self.rounds!r}.")
        if not float(self.round_s) >= 0 or int(self.min_calls_b1) < 1 or int(self.min_calls_big) < 1:
            raise ConfigError("BenchSettings: round_s must be >= 0 and min_calls_b1 / min_calls_big >= 1.")

    def to_dict(self) -> dict[str, Any]:
        return {"warmup": self.warmup, "rounds": self.rounds, "round_s": self.round_s,
                "min_calls_b1": self.min_calls_b1, "min_calls_big": self.min_calls_big, "batch": self.batch,
                "threads": self.threads, "level": self.level}


@dataclass
class GraphBench:
    """Timings of one graph, one list of call times per round and batch size."""

    b1: list[list[float]] = field(default_factory=list)
    big: list[list[float]] = field(default_factory=list)
    load_ms: float = 0.0
    metered: bool = False
    # per batch size: one CostRecord dict and its predictions per round
    windows: dict[str, list[tuple[dict[str, Any], int]]] = field(default_factory=dict)


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


def _session(model: bytes, output: str, warm: Mapping[str, np.ndarray] | None, threads: int | None,
             custom_ops: list[str] | tuple[str, ...] = ()) -> Any:
    """An engine whose ``output`` is the graph output named ``output`` ("probabilities", "value"; the old
    "classification" / "regression" name the same two)."""
    from ..runtime import OnnxEngine

    if output in ("classification", "regression"):
        return OnnxEngine(model, kind=output, warmup=warm, threads=threads, custom_ops=custom_ops)
    return OnnxEngine(model, output=output, warmup=warm, threads=threads, custom_ops=custom_ops)


@contextlib.contextmanager
def _window(measure: Callable[..., Any] | None) -> Iterator[Any]:
    if measure is None:
        yield None
        return
    with measure(sample_memory=False) as meter:
        yield meter


def _timed(run: Callable[[Any], Any], feeds: list[Any], offset: int, min_calls: int, round_s: float) -> list[float]:
    """Call ``run`` (cycling over ``feeds`` from ``offset``) until ``round_s`` has passed and at
    least ``min_calls`` calls were made."""
    times: list[float] = []
    start = time.perf_counter()
    i = 0
    while i < min_calls or time.perf_counter() - start < round_s:
        x = feeds[(offset + i) % len(feeds)]
        t0 = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - t0)
        i += 1
    return times


def _summary(rounds: list[list[float]], level: float) -> tuple[dict[str, float], dict[str, list[float]]]:
    """(median over rounds of each round's p50/p95/p99 in ms, their intervals)."""
    per = [percentiles(t) for t in rounds]
    point, ci = {}, {}
    for q in ("p50", "p95", "p99"):
        iv = median_interval([p[q] for p in per], level)
        point[q] = round(iv.point, 5)
        ci[q] = iv.to_list(5)
    return point, ci


def benchmark_graphs(
    graphs: Mapping[str, bytes],
    kind: str,
    rows_b1: list[dict[str, np.ndarray]],
    block: dict[str, np.ndarray],
    settings: BenchSettings | None = None,
    *,
    custom_ops: list[str] | tuple[str, ...] = (),
) -> dict[str, dict[str, Any]]:
    """Latency p50/p95/p99 at batch 1 and at ``settings.batch``, throughput and energy of each graph,
    each with an interval over interleaved rounds (see the module docstring). ``kind``: the graph output
    timed ("probabilities" / "value", or the prediction kind naming one of them); ``custom_ops``: custom
    operator libraries the graphs need (``fulcrum.runtime._engines.custom_op_libraries``).

    ``rows_b1``: encoded single rows (feeds of shape [1, 1] per column); ``block``: one encoded
    batch of ``settings.batch`` rows. Returns ``{id: {"latency_ms": {"b1": {...}, "b256": {...}},
    "latency_ci_ms": {...}, "throughput_rps", "throughput_ci_rps", "timing", "load_ms",
    "energy_per_1k_kwh", "cost": {...} | None, "costs": {...}}}``.
    """
    s = settings or BenchSettings()
    measure = _meter()
    engines: dict[str, Any] = {}
    stats: dict[str, GraphBench] = {}
    for gid, model in graphs.items():
        t0 = time.perf_counter()
        eng = _session(model, kind, rows_b1[0], s.threads, custom_ops)
        load_ms = (time.perf_counter() - t0) * 1e3
        for i in range(s.warmup):
            eng.output(rows_b1[i % len(rows_b1)])
        for _ in range(max(2, s.warmup // 5)):
            eng.output(block)
        engines[gid] = eng
        stats[gid] = GraphBench(load_ms=load_ms)

    n_block = len(next(iter(block.values())))
    big_key = f"batch_{s.batch}"
    order = list(graphs)
    cursor = 0
    for r in range(int(s.rounds)):
        ids = order if r % 2 == 0 else order[::-1]  # alternate who goes first
        for gid in ids:
            run = engines[gid].output
            st = stats[gid]
            # batch 1 and the large batch are metered as separate windows: what one prediction
            # costs differs by orders of magnitude between them
            with _window(measure) as m1:
                b1 = _timed(run, rows_b1, cursor, s.min_calls_b1, s.round_s)
            with _window(measure) as m2:
                big = _timed(run, [block], 0, s.min_calls_big, s.round_s)
            st.b1.append(b1)
            st.big.append(big)
            for key, meter, n in (("batch_1", m1, len(b1)), (big_key, m2, len(big) * n_block)):
                if meter is not None and meter.record is not None:
                    st.metered = True
                    st.windows.setdefault(key, []).append((meter.record.to_dict(), n))
        cursor += s.min_calls_b1

    out: dict[str, dict[str, Any]] = {}
    for gid, st in stats.items():
        big_lat = f"b{s.batch}"
        b1_point, b1_ci = _summary(st.b1, s.level)
        big_point, big_ci = _summary(st.big, s.level)
        thr = median_interval([n_block * len(t) / sum(t) for t in st.big], s.level)
        entry: dict[str, Any] = {
            "latency_ms": {"b1": b1_point, big_lat: big_point},
            "latency_ci_ms": {"b1": b1_ci, big_lat: big_ci},
            "throughput_rps": round(thr.point, 1),
            "throughput_ci_rps": thr.to_list(1),
            "load_ms": round(st.load_ms, 3),
            "timed_runs": {"b1": sum(map(len, st.b1)), big_lat: sum(map(len, st.big))},
            "timing": {"rounds": len(st.b1), "level": thr.level, "round_s": s.round_s, "method": METHOD},
        }
        if st.metered:
            entry.update(_cost_fields(st))
        else:
            entry["energy_per_1k_kwh"] = None
            entry["cost"] = None
        out[gid] = entry
    return out


def _cost_fields(st: GraphBench) -> dict[str, Any]:
    """The metered windows: totals, and per batch size the summed window plus each round's."""
    costs: dict[str, Any] = {}
    cpu = kwh = 0.0
    predictions = 0
    method = detail = None
    for key, rounds in st.windows.items():
        total = {"wall_s": 0.0, "cpu_s": 0.0, "gpu_s": None, "peak_rss_mb": None, "flops": None, "energy_kwh": 0.0}
        per_round = []
        for rec, n in rounds:
            for f in ("wall_s", "cpu_s", "energy_kwh"):
                total[f] += float(rec[f])
            per_round.append({"wall_s": float(rec["wall_s"]), "cpu_s": float(rec["cpu_s"]),
                              "energy_kwh": float(rec["energy_kwh"]), "n": n})
            method, detail = str(rec["energy_method"]), str(rec["energy_detail"])
        total.update(energy_method=method, energy_detail=detail)
        n_key = sum(r["n"] for r in per_round)
        costs[key] = {"n_predictions": n_key, "window": total, "rounds": per_round}
        cpu += total["cpu_s"]
        kwh += total["energy_kwh"]
        predictions += n_key
    return {
        "energy_per_1k_kwh": kwh / predictions * 1000.0 if predictions else None,
        "cost": {"predictions": predictions, "cpu_s": round(cpu, 6), "energy_kwh": kwh, "energy_method": method,
                 "energy_detail": detail, "cpu_s_per_1k": cpu / predictions * 1000.0 if predictions else None},
        "costs": costs,
    }


def evaluate_graph(model: bytes, output: str, feeds: Mapping[str, np.ndarray], truth: Any, *, task: Any,
                   manifest: Mapping[str, Any], custom_ops: list[str] | tuple[str, ...] = ()) -> tuple[dict[str, Any], np.ndarray]:
    """(the task's metrics, the primary output) of ``model`` on the encoded held-out rows ``feeds``, scored by
    ``task.evaluate`` against ``truth`` (the rows' target values)."""
    eng = _session(model, output, None, None, custom_ops)
    outputs = eng.run(dict(feeds))
    main = outputs[eng.primary]
    named = {**outputs, output: main}
    return task.evaluate(manifest, truth, named), main
