"""The live page's data: what a running server counts, read from its Prometheus metrics.

The counters are the ones ``/metrics`` exports (``fulcrum.serve._metrics.ServeMetrics``): read
in-process from the app's collector registry when the dashboard is mounted in ``fulcrum serve``,
or scraped from ``--server URL/metrics`` by a standalone ``fulcrum ui``. Each read is a sample
(time, cumulative counts); rates and windowed percentiles are differences between samples, the
way Prometheus' ``rate`` and ``histogram_quantile`` work. The monitor (OOD rate, drift per
column) and the live metric from feedback are the server's own: its monitor snapshot and feedback
store in-process, else the snapshots and feedback it saved to the serving records.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from typing import Any, Callable, Iterable

__all__ = ["LiveSampler", "histogram_quantile"]

WINDOW_S = 60.0  # rates and percentiles over the last minute of samples
MIN_INTERVAL_S = 0.5  # one sample per half second, however many pages poll
KEPT = 720


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Quantile ``q`` of a cumulative histogram ``[(upper bound, count <= bound), ...]`` (bounds
    ascending, the last one +Inf), interpolated linearly inside its bucket as Prometheus does."""
    if not buckets:
        return None
    total = buckets[-1][1]
    if total <= 0:
        return None
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return prev_bound  # beyond the last finite bound: its lower edge
            width = count - prev_count
            frac = (rank - prev_count) / width if width > 0 else 1.0
            return prev_bound + (bound - prev_bound) * frac
        prev_bound, prev_count = bound, count
    return prev_bound


class _Sample:
    __slots__ = ("t", "status", "latency", "batch", "predictions", "ood_rows")

    def __init__(self, t: float) -> None:
        self.t = t
        self.status: dict[str, float] = collections.Counter()
        self.latency: dict[float, float] = collections.Counter()
        self.batch: dict[float, float] = collections.Counter()
        self.predictions = 0.0
        self.ood_rows = 0.0


def _sample_from(families: Iterable[Any], model: str | None, t: float) -> _Sample:
    s = _Sample(t)
    for fam in families:
        for sample in fam.samples:
            name, labels, value = sample.name, sample.labels, float(sample.value)
            m = labels.get("model")
            if model is not None and m is not None and m != model:
                continue
            if name == "fulcrum_requests_total":
                status = str(labels.get("status", ""))
                s.status[status[:1] + "xx" if status[:1].isdigit() else "other"] += value
            elif name == "fulcrum_request_latency_seconds_bucket":
                s.latency[float(labels["le"])] += value
            elif name == "fulcrum_batch_size_bucket":
                s.batch[float(labels["le"])] += value
            elif name == "fulcrum_predictions_total":
                s.predictions += value
            elif name == "fulcrum_ood_rows_total":
                s.ood_rows += value
    return s


def _delta(new: dict[float, float], old: dict[float, float] | None) -> list[tuple[float, float]]:
    old = old or {}
    return [(b, max(0.0, new[b] - old.get(b, 0.0))) for b in sorted(new)]


class LiveSampler:
    """Samples of one metrics source, kept per model filter (``None`` = the whole server)."""

    def __init__(self, families: Callable[[], Iterable[Any]]) -> None:
        self._families = families
        self._lock = threading.Lock()
        self._series: dict[str | None, collections.deque[_Sample]] = {}

    def sample(self, model: str | None) -> dict[str, Any]:
        now = time.time()
        with self._lock:
            series = self._series.setdefault(model, collections.deque(maxlen=KEPT))
            if not series or now - series[-1].t >= MIN_INTERVAL_S:
                series.append(_sample_from(self._families(), model, now))
            samples = list(series)
        return self._summary(samples)

    @staticmethod
    def _summary(samples: list[_Sample]) -> dict[str, Any]:
        last = samples[-1]
        # the oldest sample within the window (else the previous one): rates and percentiles over it
        base = next((s for s in samples if last.t - s.t <= WINDOW_S and s is not last), None)
        span = last.t - base.t if base is not None else 0.0
        lat = _delta(last.latency, base.latency if base else None) if base else sorted(last.latency.items())
        bat = _delta(last.batch, base.batch if base else None) if base else sorted(last.batch.items())
        windowed = base is not None and (lat[-1][1] if lat else 0) > 0
        if not windowed:  # nothing new within the window: figures since the server started
            lat, bat = sorted(last.latency.items()), sorted(last.batch.items())

        def per_s(key: str) -> float | None:
            if base is None or span <= 0:
                return None
            return max(0.0, last.status.get(key, 0.0) - base.status.get(key, 0.0)) / span

        total_now = sum(last.status.values())
        total_then = sum(base.status.values()) if base else 0.0
        batches = bat[-1][1] if bat else 0.0
        series = []
        for prev, cur in zip(samples, samples[1:]):
            dt = cur.t - prev.t
            if dt <= 0:
                continue
            d_lat = _delta(cur.latency, prev.latency)
            d_bat = _delta(cur.batch, prev.batch)
            d_req = sum(cur.status.values()) - sum(prev.status.values())
            series.append({
                "t": cur.t, "rate_per_s": max(0.0, d_req) / dt,
                "p50_ms": _ms(histogram_quantile(0.5, d_lat)), "p95_ms": _ms(histogram_quantile(0.95, d_lat)),
                "p99_ms": _ms(histogram_quantile(0.99, d_lat)),
                "errors_4xx_per_s": max(0.0, cur.status.get("4xx", 0) - prev.status.get("4xx", 0)) / dt,
                "errors_5xx_per_s": max(0.0, cur.status.get("5xx", 0) - prev.status.get("5xx", 0)) / dt,
                "batch_p50": histogram_quantile(0.5, d_bat),
            })
        return {
            "sampled_at": last.t, "window_s": round(span, 3) if windowed else None,
            "window": "last %.0f s" % span if windowed else "since the server started",
            "requests": {"total": total_now, "by_status": dict(last.status),
                         "rate_per_s": (total_now - total_then) / span if base is not None and span > 0 else None,
                         "errors_4xx": last.status.get("4xx", 0.0), "errors_5xx": last.status.get("5xx", 0.0),
                         "errors_4xx_per_s": per_s("4xx"), "errors_5xx_per_s": per_s("5xx")},
            "latency_ms": {q: _ms(histogram_quantile(v, lat)) for q, v in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))},
            "batch_size": {"batches": batches, "p50": histogram_quantile(0.5, bat), "p95": histogram_quantile(0.95, bat),
                           "max_bucket": next((b for b, c in reversed(bat) if c > 0 and not math.isinf(b)), None),
                           "histogram": [[None if math.isinf(b) else b, c] for b, c in _per_bucket(bat)]},
            "predictions": last.predictions, "ood_rows": last.ood_rows,
            "series": series[-240:],
        }


def _per_bucket(cum: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out, prev = [], 0.0
    for b, c in cum:
        out.append((b, max(0.0, c - prev)))
        prev = c
    return out


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0
