"""Live work counters for the cost ledger: predictions served and compute seconds per model version.

Counted in memory on every batch, persisted as *deltas* to the ``serving_usage`` table of the
registry's index every few seconds and at shutdown (so several server processes add up).
``fulcrum costs`` reads them with :func:`read_usage`.

Table ``serving_usage`` (one row per model version per UTC day; the columns
``fulcrum.costs`` reads: SUM(predictions), SUM(compute_s), MIN(first_seen), MAX(last_seen))::

    model TEXT, version INTEGER, day TEXT (YYYY-MM-DD),
    requests INTEGER, predictions INTEGER, batches INTEGER, compute_s REAL,
    first_seen TEXT, last_seen TEXT (ISO 8601, UTC)
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Any

__all__ = ["UsageCounter", "read_usage", "USAGE_SCHEMA"]

USAGE_SCHEMA = """
CREATE TABLE IF NOT EXISTS serving_usage (
    model       TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    day         TEXT    NOT NULL,
    requests    INTEGER NOT NULL DEFAULT 0,
    predictions INTEGER NOT NULL DEFAULT 0,
    batches     INTEGER NOT NULL DEFAULT 0,
    compute_s   REAL    NOT NULL DEFAULT 0,
    first_seen  TEXT    NOT NULL,
    last_seen   TEXT    NOT NULL,
    PRIMARY KEY (model, version, day)
)
"""


def ensure_table(registry: Any) -> None:
    conn = registry.connect()
    try:
        conn.execute(USAGE_SCHEMA)
        conn.commit()
    finally:
        conn.close()


class UsageCounter:
    """Thread-safe running totals, flushed as deltas into the registry database."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, int], list[float]] = {}  # [requests, predictions, batches, seconds]
        self.totals: dict[tuple[str, int], list[float]] = {}
        self._first: dict[tuple[str, int], str] = {}  # when this process first served each version

    def add(self, name: str, version: int, requests: int, predictions: int, compute_s: float) -> None:
        key = (name, int(version))
        if key not in self._first:
            self._first[key] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with self._lock:
            for store in (self._pending, self.totals):
                row = store.setdefault(key, [0, 0, 0, 0.0])
                row[0] += requests
                row[1] += predictions
                row[2] += 1
                row[3] += compute_s

    def flush(self, registry: Any) -> int:
        """Write pending deltas; returns rows touched. On failure the deltas are kept for next time."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return 0
        now = datetime.now(timezone.utc)
        day, stamp = now.date().isoformat(), now.isoformat(timespec="seconds")
        try:
            conn = registry.connect()
            try:
                conn.execute(USAGE_SCHEMA)
                conn.executemany(
                    "INSERT INTO serving_usage (model, version, day, requests, predictions, batches, compute_s,"
                    " first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (model, version, day)"
                    " DO UPDATE SET requests = requests + excluded.requests,"
                    " predictions = predictions + excluded.predictions, batches = batches + excluded.batches,"
                    " compute_s = compute_s + excluded.compute_s, last_seen = excluded.last_seen",
                    [(n, v, day, int(r[0]), int(r[1]), int(r[2]), float(r[3]), self._first.get((n, v), stamp), stamp)
                     for (n, v), r in pending.items()],
                )
                conn.commit()
            finally:
                conn.close()
        except Exception:
            with self._lock:  # put them back; the next flush retries
                for key, row in pending.items():
                    cur = self._pending.setdefault(key, [0, 0, 0, 0.0])
                    for i in range(4):
                        cur[i] += row[i]
            raise
        return len(pending)


def read_usage(registry: Any, name: str | None = None) -> list[dict[str, Any]]:
    """Persisted serving usage, one dict per (model, version, day); empty when nothing was served."""
    conn = registry.connect()
    try:
        conn.execute(USAGE_SCHEMA)
        sql = ("SELECT model, version, day, requests, predictions, batches, compute_s, first_seen, last_seen"
               " FROM serving_usage")
        args: tuple[Any, ...] = ()
        if name is not None:
            sql += " WHERE model = ?"
            args = (name,)
        rows = conn.execute(sql + " ORDER BY model, version, day", args).fetchall()
    finally:
        conn.close()
    keys = ("model", "version", "day", "requests", "predictions", "batches", "compute_s", "first_seen", "last_seen")
    return [dict(zip(keys, r)) for r in rows]
