"""Serving records left in a registry index by Fulcrum before they got their own database.

Until serving records moved to ``<registry>.serving.sqlite`` (see :mod:`._records`), a server
wrote them into the registry's ``index.sqlite``: tables ``predictions``, ``feedback``,
``serving_usage`` and ``monitor_snapshots``, unbounded. The first time the records store is
opened for such a registry, :func:`migrate_legacy` moves them, once:

- recorded predictions go in within the store's bounds (rows and bytes), as if they had been
  written there: the rows with feedback are kept first, then the newest without; those that do
  not fit are dropped, oldest first, whole requests at a time. They keep their age: they sit
  before everything the store already holds, so eviction still drops the oldest first.
- feedback is checked against the model's labels as the server checks it today (a label the
  model does not know, such as ``"Emperor"`` for a three-species penguin model, is not moved).
- usage counters are added to the store's; the newest monitor snapshots per model version move.
- then the legacy tables are dropped from the index (and its file compacted), and one notice says
  what moved, what was dropped and where the records are now.

The copy and a marker commit in one transaction of the records database; dropping the legacy
tables follows. A process stopped in between finds the marker on the next open and only drops
them, so nothing is counted twice. A failure leaves both databases as they were and is retried
on the next open.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

__all__ = ["LEGACY_TABLES", "legacy_index_of", "migrate_legacy", "migrate_if_needed"]

log = logging.getLogger("fulcrum.serve")

LEGACY_TABLES = ("predictions", "feedback", "serving_usage", "monitor_snapshots")
_MARKER = "legacy_index_migrated:"
_checked: set[str] = set()  # index files known to hold no legacy tables (or already emptied) in this process
_lock = threading.Lock()


def _root_of(records_db: Path, registry: Any = None) -> Path | None:
    from ._records import SUFFIX

    if registry is not None:
        return Path(getattr(registry, "root", registry)).expanduser()
    if records_db.name.endswith(SUFFIX) and len(records_db.name) > len(SUFFIX):
        return records_db.parent / records_db.name[: -len(SUFFIX)]
    return None


def legacy_index_of(records_db: Path, registry: Any = None) -> Path | None:
    """The registry index whose legacy tables belong in ``records_db``: ``registry``'s, or, for a
    records database with the default name ``<registry>.serving.sqlite``, that registry's."""
    root = _root_of(records_db, registry)
    if root is None:
        return None
    index = root / "index.sqlite"
    return index if index.is_file() else None


def migrate_legacy(conn: sqlite3.Connection, records_db: Path, registry: Any = None, *,
                   max_rows: int, max_bytes: int) -> dict[str, Any] | None:
    """Move the legacy serving tables of the registry index (see the module doc) into the records
    database open on ``conn``; returns what moved, or None when there was nothing to move. Never
    raises: a failure is logged and retried on the next open."""
    index = legacy_index_of(records_db, registry)
    if index is None:
        return None
    key = str(index.resolve())
    if key in _checked:
        return None
    with _lock:
        if key in _checked:
            return None
        try:
            present = _legacy_tables(index)
            if not present:
                _checked.add(key)
                return None
            if registry is None or not hasattr(registry, "connect"):  # its manifests check the moved feedback
                from ..artifact import Registry

                registry = Registry(index.parent)
            summary = _copy(conn, index, key, present, registry, max_rows=max_rows, max_bytes=max_bytes)
            _drop(index, present)
            _checked.add(key)
        except Exception as exc:  # noqa: BLE001 - the records store stays usable; the move is retried
            log.warning("could not move the serving records left in the registry index %s to %s (%s: %s); "
                        "they stay there and the move is retried the next time the records are opened.",
                        index, records_db, type(exc).__name__, exc)
            return None
    if summary is not None:
        log.warning(_notice(summary, index, records_db))
    return summary


def migrate_if_needed(records_db: Path, registry: Any = None) -> None:
    """For readers that do not open the records store through :func:`._records.connect_records`:
    open it once (moving the legacy records in) when the registry index still holds legacy tables."""
    index = legacy_index_of(records_db, registry)
    if index is None or str(index.resolve()) in _checked:
        return
    try:
        present = _legacy_tables(index)
    except sqlite3.Error:
        return
    if not present:
        _checked.add(str(index.resolve()))
        return
    from ._records import connect_records

    connect_records(records_db, registry=registry).close()


def _legacy_tables(index: Path) -> list[str]:
    with _connect(index) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return [t for t in LEGACY_TABLES if t in names]


class _connect:
    """A connection to the registry index as a context manager that closes."""

    def __init__(self, path: Path) -> None:
        from ._records import BUSY_TIMEOUT_S

        self.conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S)
        self.conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")

    def __enter__(self) -> sqlite3.Connection:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.conn.close()


def _copy(conn: sqlite3.Connection, index: Path, key: str, present: list[str], registry: Any, *,
          max_rows: int, max_bytes: int) -> dict[str, Any] | None:
    """Copy the legacy rows into ``conn``'s database in one transaction, with the marker; None
    when the marker says an earlier run already copied them."""
    from ._feedback import FeedbackStore

    if conn.in_transaction:
        conn.commit()
    # the store's bounds and feedback checks, on this connection (built before the transaction:
    # it commits its schema statements)
    store = FeedbackStore(conn, registry=registry, max_rows=max_rows, max_mb=max_bytes / 1e6)
    conn.execute("ATTACH DATABASE ? AS legacy", (str(index),))
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            done = conn.execute("SELECT 1 FROM records_meta WHERE key = ?", (_MARKER + key,)).fetchone()
            summary = None if done else _copy_rows(conn, store, present, max_rows=max_rows, max_bytes=max_bytes)
            if not done:
                conn.execute("INSERT INTO records_meta (key, value) VALUES (?, ?)", (_MARKER + key, json.dumps(summary)))
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            for temp in ("legacy_feedback", "legacy_rows", "legacy_keep"):
                conn.execute(f"DROP TABLE IF EXISTS temp.{temp}")
    finally:
        conn.execute("DETACH DATABASE legacy")
    return summary


def _copy_rows(conn: sqlite3.Connection, store: Any, present: list[str], *,
               max_rows: int, max_bytes: int) -> dict[str, Any]:
    from ..errors import DataError
    from ._records import ROW_OVERHEAD

    summary: dict[str, Any] = {"rows": 0, "labelled": 0, "dropped_rows": 0, "feedback_refused": 0,
                               "refused_examples": [], "usage": 0, "snapshots": 0}
    if "predictions" in present:
        # feedback, checked against the labels of the version that made the prediction
        conn.execute("CREATE TEMP TABLE legacy_feedback (model TEXT, request_id TEXT, row INTEGER, truth_json TEXT,"
                     " created TEXT, PRIMARY KEY (model, request_id, row))")
        if "feedback" in present:
            cur = conn.execute(
                "SELECT f.model, f.request_id, f.row, f.truth_json, f.created, p.version FROM legacy.feedback f"
                " JOIN legacy.predictions p ON p.model = f.model AND p.request_id = f.request_id AND p.row = f.row")
            good = []
            for model, rid, row, truth_json, created, version in cur:
                try:
                    truth = store._check_truth(model, version, rid, row, json.loads(truth_json))
                except (DataError, ValueError, TypeError):
                    summary["feedback_refused"] += 1
                    if len(summary["refused_examples"]) < 3:
                        summary["refused_examples"].append(_shown(truth_json))
                    continue
                good.append((model, rid, row, json.dumps(truth), created))
            conn.executemany("INSERT OR IGNORE INTO legacy_feedback VALUES (?, ?, ?, ?, ?)", good)
        # each legacy row's size as the store counts it, and whether it has (good) feedback
        conn.execute(
            "CREATE TEMP TABLE legacy_rows AS SELECT p.id AS id, p.model AS model, p.request_id AS request_id,"
            f" {ROW_OVERHEAD} + length(CAST(p.model AS BLOB)) + length(CAST(p.request_id AS BLOB))"
            " + length(CAST(p.created AS BLOB)) + length(CAST(p.inputs_json AS BLOB))"
            " + coalesce(length(CAST(p.prediction_json AS BLOB)), 0) + coalesce(length(CAST(p.output_json AS BLOB)), 0)"
            " AS bytes, EXISTS (SELECT 1 FROM legacy_feedback f WHERE f.model = p.model AND f.request_id = p.request_id"
            " AND f.row = p.row) AS labelled FROM legacy.predictions p")
        total = conn.execute("SELECT COUNT(*) FROM legacy_rows").fetchone()[0]
        conn.execute("CREATE TEMP TABLE legacy_keep (model TEXT, request_id TEXT, labelled INTEGER,"
                     " PRIMARY KEY (model, request_id, labelled))")
        (lab_rows, lab_bytes), = conn.execute("SELECT rows, bytes FROM record_totals WHERE labelled = 1").fetchall()
        (unl_rows, unl_bytes), = conn.execute("SELECT rows, bytes FROM record_totals WHERE labelled = 0").fetchall()
        # rows with feedback first (they outlive those without), newest first, whole requests
        kept_rows, kept_bytes = _select(conn, 1, max_rows - lab_rows, max_bytes - lab_bytes)
        # then the newest without feedback, in the room left (all of them older than the store's own)
        _select(conn, 0, max_rows - lab_rows - kept_rows - unl_rows, max_bytes - lab_bytes - kept_bytes - unl_bytes)
        # ids below everything the store holds, in the legacy order: the moved rows are the oldest
        low = conn.execute("SELECT MIN(id) FROM main.predictions").fetchone()[0]
        high = conn.execute("SELECT MAX(id) FROM legacy.predictions").fetchone()[0] or 0
        offset = 0 if low is None else int(low) - int(high) - 1
        before = conn.execute("SELECT SUM(rows) FROM record_totals").fetchone()[0]
        conn.execute(
            "INSERT OR IGNORE INTO main.predictions (id, model, version, request_id, row, bytes, labelled, created,"
            " prediction_json, output_json, inputs_json)"
            " SELECT p.id + ?, p.model, p.version, p.request_id, p.row, r.bytes, r.labelled, p.created,"
            " p.prediction_json, p.output_json, p.inputs_json FROM legacy.predictions p"
            " JOIN legacy_rows r ON r.id = p.id JOIN legacy_keep k ON k.model = r.model AND k.request_id = r.request_id"
            " AND k.labelled = r.labelled ORDER BY p.id", (offset,))
        conn.execute(
            "INSERT OR IGNORE INTO main.feedback (model, request_id, row, truth_json, created)"
            " SELECT f.model, f.request_id, f.row, f.truth_json, f.created FROM legacy_feedback f"
            " JOIN legacy.predictions p ON p.model = f.model AND p.request_id = f.request_id AND p.row = f.row"
            " JOIN main.predictions m ON m.id = p.id + ? AND m.labelled = 1", (offset,))
        moved = conn.execute("SELECT SUM(rows) FROM record_totals").fetchone()[0] - before
        summary["rows"] = int(moved)
        summary["labelled"] = int(conn.execute(
            "SELECT COUNT(*) FROM main.predictions WHERE id <= ? AND labelled = 1", (offset + high,)).fetchone()[0])
        summary["dropped_rows"] = int(total) - int(moved)
        store._make_room(0, 0)  # the store's own rows too, should the moved feedback leave too little room
    if "serving_usage" in present:
        summary["usage"] = conn.execute("SELECT COUNT(*) FROM legacy.serving_usage").fetchone()[0]
        conn.execute(
            "INSERT INTO main.serving_usage (model, version, day, requests, predictions, batches, compute_s,"
            " first_seen, last_seen) SELECT model, version, day, requests, predictions, batches, compute_s,"
            " first_seen, last_seen FROM legacy.serving_usage WHERE true ON CONFLICT (model, version, day) DO UPDATE"
            " SET requests = requests + excluded.requests, predictions = predictions + excluded.predictions,"
            " batches = batches + excluded.batches, compute_s = compute_s + excluded.compute_s,"
            " first_seen = min(first_seen, excluded.first_seen), last_seen = max(last_seen, excluded.last_seen)")
    if "monitor_snapshots" in present:
        from ._monitor import SNAPSHOTS_KEPT

        low = conn.execute("SELECT MIN(id) FROM main.monitor_snapshots").fetchone()[0]
        high = conn.execute("SELECT MAX(id) FROM legacy.monitor_snapshots").fetchone()[0] or 0
        offset = 0 if low is None else int(low) - int(high) - 1
        cur = conn.execute(
            "INSERT INTO main.monitor_snapshots (id, model, version, created, snapshot_json)"
            " SELECT id + ?, model, version, created, snapshot_json FROM (SELECT *, ROW_NUMBER() OVER"
            " (PARTITION BY model, version ORDER BY id DESC) AS newest FROM legacy.monitor_snapshots)"
            " WHERE newest <= ? ORDER BY id", (offset, SNAPSHOTS_KEPT))
        summary["snapshots"] = cur.rowcount
        conn.execute(
            "DELETE FROM main.monitor_snapshots WHERE id IN (SELECT id FROM (SELECT id, ROW_NUMBER() OVER"
            " (PARTITION BY model, version ORDER BY id DESC) AS newest FROM main.monitor_snapshots) WHERE newest > ?)",
            (SNAPSHOTS_KEPT,))
    return summary


def _select(conn: sqlite3.Connection, labelled: int, room_rows: int, room_bytes: int) -> tuple[int, int]:
    """Mark in ``legacy_keep`` the newest legacy requests (their rows with ``labelled``) that fit
    in the room; stop at the first that does not (older ones would go before it). Returns
    (rows, bytes) kept."""
    kept_rows = kept_bytes = 0
    cur = conn.execute(
        "SELECT model, request_id, COUNT(*), SUM(bytes) FROM legacy_rows WHERE labelled = ?"
        " GROUP BY model, request_id ORDER BY MAX(id) DESC", (labelled,))
    keep = []
    for model, rid, n, b in cur:
        if kept_rows + n > room_rows or kept_bytes + b > room_bytes:
            break
        keep.append((model, rid, labelled))
        kept_rows += n
        kept_bytes += b
    cur.close()
    conn.executemany("INSERT INTO legacy_keep VALUES (?, ?, ?)", keep)
    return kept_rows, kept_bytes


def _drop(index: Path, present: list[str]) -> None:
    """Drop the legacy tables from the registry index, then compact it (best effort)."""
    with _connect(index) as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for table in present:
                conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        try:
            conn.execute("VACUUM")  # give the space back: legacy records could be hundreds of MB
        except sqlite3.OperationalError as exc:  # busy: the freed pages are reused by the index instead
            log.info("registry index %s not compacted after moving its serving records (%s)", index, exc)


def _shown(truth_json: str) -> str:
    try:
        return repr(json.loads(truth_json))
    except ValueError:
        return repr(truth_json)


def _notice(summary: dict[str, Any], index: Path, records_db: Path) -> str:
    parts = [f"{summary['rows']} recorded prediction rows ({summary['labelled']} with feedback)"]
    if summary["usage"]:
        parts.append(f"{summary['usage']} usage counter row(s)")
    if summary["snapshots"]:
        parts.append(f"{summary['snapshots']} monitor snapshots")
    text = (f"Moved the serving records this registry's index held (written by an older Fulcrum): "
            f"{', '.join(parts)} from {index} to {records_db}, where serving records live now; the index no longer "
            "holds them.")
    if summary["dropped_rows"]:
        text += (f" Dropped {summary['dropped_rows']} older rows without room under the records' bounds "
                 "(--record-max-rows, --record-max-mb).")
    if summary["feedback_refused"]:
        text += (f" Left out {summary['feedback_refused']} feedback value(s) the model does not accept as a truth "
                 f"(e.g. {', '.join(summary['refused_examples'])}).")
    return text
