"""Live work counters for the cost ledger: predictions served and compute seconds per model version.

Counted in memory on every batch, persisted as *deltas* to the ``serving_usage`` table of the
serving-records database (``<registry>.serving.sqlite``, never the registry index) every few
seconds and at shutdown (so several server processes add up). ``fulcrum costs`` reads them
(:func:`read_usage`, or ``fulcrum.costs._ledger.live_usage``).

Table ``serving_usage`` (one row per model version per UTC day; the columns
``fulcrum.costs`` reads: SUM(predictions), SUM(compute_s), MIN(first_seen), MAX(last_seen))::

    model TEXT, version INTEGER, day TEXT (YYYY-MM-DD),
    requests INTEGER, predictions INTEGER, batches INTEGER, compute_s REAL,
    first_seen TEXT, last_seen TEXT (ISO 8601, UTC)
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ._records import connect_records, records_path

__all__ = ["UsageCounter", "read_usage"]


def _db(target: Any, records_db: str | Path | None = None) -> Path:
    """The records database of ``target``: a registry (its default records DB) or a path."""
    from ..artifact import Registry

    if records_db is not None:
        return records_path(path=records_db)
    if target is None or isinstance(target, Registry) or Path(target).is_dir():
        return records_path(target)
    return records_path(path=target)


class UsageCounter:
    """Thread-safe running totals, flushed as deltas into the serving-records database."""

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

    def flush(self, target: Any) -> int:
        """Write pending deltas to ``target`` (a records DB path, or a registry: its records DB);
        returns rows touched. On failure the deltas are kept for next time."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return 0
        now = datetime.now(timezone.utc)
        day, stamp = now.date().isoformat(), now.isoformat(timespec="seconds")
        try:
            conn = connect_records(_db(target))
            try:
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


def read_usage(registry: Any, name: str | None = None, *, records_db: str | Path | None = None) -> list[dict[str, Any]]:
    """Persisted serving usage, one dict per (model, version, day); empty when nothing was served.
    Read from ``records_db``, else the registry's records database."""
    path = _db(registry, records_db)
    from ..artifact import Registry

    if isinstance(registry, Registry):  # records an older Fulcrum left in the registry index move in first
        from ._legacy import migrate_if_needed

        migrate_if_needed(path, registry)
    if not path.exists():
        return []
    sql = ("SELECT model, version, day, requests, predictions, batches, compute_s, first_seen, last_seen"
           " FROM serving_usage")
    args: tuple[Any, ...] = ()
    if name is not None:
        sql += " WHERE model = ?"
        args = (name,)
    try:
        with contextlib.closing(sqlite3.connect(str(path), timeout=60)) as conn:
            rows = conn.execute(sql + " ORDER BY model, version, day", args).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    keys = ("model", "version", "day", "requests", "predictions", "batches", "compute_s", "first_seen", "last_seen")
    return [dict(zip(keys, r)) for r in rows]
