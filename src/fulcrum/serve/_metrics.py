"""Prometheus metrics of one app, in the app's own CollectorRegistry (several apps per process
— tests, benchmarks — never collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST

__all__ = ["ServeMetrics", "CONTENT_TYPE_LATEST", "TIMEOUT_PHASES"]

TIMEOUT_PHASES = ("idle", "headers", "body")

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServeMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("fulcrum_requests", "HTTP requests by model, version, route and status",
                                ["model", "version", "route", "status"], registry=r)
        self.latency = Histogram("fulcrum_request_latency_seconds", "Request latency (arrival to response)",
                                 ["model", "route"], buckets=_LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("fulcrum_batch_size", "Rows per computed batch", ["model", "version"],
                                    buckets=_BATCH_BUCKETS, registry=r)
        self.batch_seconds = Histogram("fulcrum_batch_compute_seconds", "Compute time per batch", ["model", "version"],
                                       buckets=_LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge("fulcrum_queue_depth", "Requests waiting for a batch", ["model", "version"], registry=r)
        self.rejected = Counter("fulcrum_rejected_requests", "Requests refused before computing, by reason",
                                ["model", "reason"], registry=r)
        self.load_seconds = Gauge("fulcrum_model_load_seconds", "Time to load and warm up a model version",
                                  ["model", "version"], registry=r)
        self.load_failures = Counter("fulcrum_model_load_failures", "Model versions that failed to load or warm up",
                                     ["model", "version"], registry=r)
        self.loaded = Gauge("fulcrum_model_loaded", "1 while a model version is loaded", ["model", "version"], registry=r)
        self.predictions = Counter("fulcrum_predictions", "Rows predicted", ["model", "version"], registry=r)
        self.compute_seconds = Counter("fulcrum_compute_seconds", "Sum of batch compute time", ["model", "version"],
                                       registry=r)
        self.ood_rows = Counter("fulcrum_ood_rows", "Rows scored out-of-distribution", ["model", "version"], registry=r)
        self.ood_score = Histogram("fulcrum_ood_score", "Per-row out-of-distribution score", ["model", "version"],
                                   buckets=(0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0, 2.0, 5.0, 10.0), registry=r)
        self.ood_rate = Gauge("fulcrum_ood_rate", "Share of recent rows scored out-of-distribution",
                              ["model", "version"], registry=r)
        self.timed_out = Counter("fulcrum_connections_timed_out",
                                 "Connections closed for a client too slow: idle (no request byte within the "
                                 "header timeout), headers (headers not complete in time), body (body not in time)",
                                 ["phase"], registry=r)
        for phase in TIMEOUT_PHASES:
            self.timed_out.labels(phase)
        self.drift = Gauge("fulcrum_drift_score", "Drift score per input over the monitor's sliding window",
                           ["model", "version", "column"], registry=r)

    def forget(self, model: str, version: str) -> None:
        """Drop the per-version gauges of an unloaded version (counters stay: they are totals)."""
        for gauge in (self.queue_depth, self.load_seconds):
            try:
                gauge.remove(model, version)
            except KeyError:
                pass
        self.loaded.labels(model, version).set(0)

    def render(self) -> bytes:
        return generate_latest(self.registry)

