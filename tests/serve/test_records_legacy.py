"""Registries written before serving records moved out of the registry index (commit ca349af)
hold predictions, feedback, usage and monitor snapshots in ``index.sqlite``. The first open of
the records store moves them into ``<registry>.serving.sqlite`` (within the bounds, feedback
checked against the model's labels), drops the legacy tables once, and says so."""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3

import pytest

from fulcrum.cli import main

from .conftest import PENGUIN_ROW

# The old schema, verbatim: serve/_feedback.py, serve/_usage.py and serve/_monitor.py before ca349af.
LEGACY_SQL = (
    """CREATE TABLE IF NOT EXISTS predictions (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        model           TEXT    NOT NULL,
        version         INTEGER,
        request_id      TEXT    NOT NULL,
        row             INTEGER NOT NULL,
        inputs_json     TEXT    NOT NULL,
        prediction_json TEXT,
        output_json     TEXT,
        created         TEXT    NOT NULL,
        UNIQUE (model, request_id, row)
    )""",
    "CREATE INDEX IF NOT EXISTS predictions_model_version ON predictions (model, version)",
    """CREATE TABLE IF NOT EXISTS feedback (
        model      TEXT    NOT NULL,
        request_id TEXT    NOT NULL,
        row        INTEGER NOT NULL,
        truth_json TEXT    NOT NULL,
        created    TEXT    NOT NULL,
        PRIMARY KEY (model, request_id, row)
    )""",
    """
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
""",
    """
CREATE TABLE IF NOT EXISTS monitor_snapshots (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    model         TEXT    NOT NULL,
    version       INTEGER,
    created       TEXT    NOT NULL,
    snapshot_json TEXT    NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS monitor_snapshots_model ON monitor_snapshots (model, version, id)",
)
LEGACY_TABLES = {"predictions", "feedback", "serving_usage", "monitor_snapshots"}
# request id -> (rows, truth per row or None); oldest first
REQUESTS = {
    "old-0": (1, ["Adelie"]),
    "old-1": (1, None),
    "old-2": (2, ["Gentoo", "Chinstrap"]),
    "old-3": (1, ["Emperor"]),  # stored by the old code, which did not check labels
    "old-4": (1, None),
    "old-5": (1, None),
}


def _legacy_index(registry) -> None:
    """Write serving records into the registry index with the old schema's SQL, as a server did."""
    with contextlib.closing(registry.connect()) as conn:
        for statement in LEGACY_SQL:
            conn.execute(statement)
        t = 0
        for rid, (n, truth) in REQUESTS.items():
            for row in range(n):
                t += 1
                created = f"2026-11-30T10:00:{t:02d}.000+00:00"
                conn.execute(
                    "INSERT INTO predictions (model, version, request_id, row, inputs_json, prediction_json,"
                    " output_json, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    ("penguins", 1, rid, row, json.dumps(PENGUIN_ROW), json.dumps("Gentoo"),
                     json.dumps({"species": "Gentoo", "probabilities": {"Gentoo": 0.9}}), created),
                )
                if truth is not None:
                    conn.execute("INSERT INTO feedback VALUES (?, ?, ?, ?, ?)",
                                 ("penguins", rid, row, json.dumps(truth[row]), created))
        conn.execute("INSERT INTO serving_usage VALUES ('penguins', 1, '2026-11-30', 6, 7, 5, 0.25,"
                     " '2026-11-30T10:00:00+00:00', '2026-11-30T10:05:00+00:00')")
        for i in range(3):
            snap = {"model": "penguins", "version": 1, "created": f"2026-11-30T10:0{i}:00", "counts": {"rows_observed": 10 * (i + 1)},
                    "status": "ok"}
            conn.execute("INSERT INTO monitor_snapshots (model, version, created, snapshot_json) VALUES (?, ?, ?, ?)",
                         ("penguins", 1, snap["created"], json.dumps(snap)))
        conn.commit()


def _tables(path) -> set[str]:
    with contextlib.closing(sqlite3.connect(str(path))) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


@pytest.fixture
def notices():
    """Warnings of the fulcrum.serve logger (the server's JSON log; the CLI prints them)."""
    got: list[str] = []

    class _Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                got.append(record.getMessage())

    handler = _Keep()
    logger = logging.getLogger("fulcrum.serve")
    logger.addHandler(handler)
    yield got
    logger.removeHandler(handler)


def test_legacy_records_move_out_of_the_index_once(registry, notices, capsys):
    from fulcrum.serve import FeedbackStore, load_latest_snapshot
    from fulcrum.serve._records import connect_records, records_path
    from fulcrum.serve._usage import read_usage

    _legacy_index(registry)
    db = records_path(registry)
    rc = main(["monitor", "penguins@1", "--json", "--registry", str(registry.root)])  # the first open
    report = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert len(notices) == 1, notices
    notice = notices[0]
    assert "7 recorded prediction rows" in notice and str(db) in notice and "index" in notice
    assert "1 feedback value" in notice and "'Emperor'" in notice  # refused as the live server refuses it
    assert not _tables(registry.index_path) & LEGACY_TABLES  # dropped from the index
    assert report["predictions"] == 7 and report["live_metric"]["n"] == 3  # Adelie, Gentoo, Chinstrap
    assert report["snapshot"]["counts"]["rows_observed"] == 30  # the newest legacy snapshot
    usage = read_usage(registry)
    assert [(u["model"], u["version"], u["requests"], u["predictions"]) for u in usage] == [("penguins", 1, 6, 7)]
    with FeedbackStore(registry) as store:  # opened again: nothing more to move, no second notice
        assert store.counts("penguins")["feedback"] == 3
    assert len(notices) == 1, notices
    with contextlib.closing(connect_records(db)) as conn:
        labelled = dict(conn.execute("SELECT labelled, rows FROM record_totals").fetchall())
        assert labelled == {0: 4, 1: 3}
        assert load_latest_snapshot(conn, "penguins", 1)["counts"]["rows_observed"] == 30


def test_legacy_records_are_bounded_and_older_than_new_ones(serve, registry, notices):
    """Moved within the records' bounds (oldest without feedback dropped first), and placed before
    what the server has recorded since: eviction still drops the oldest first."""
    from fulcrum.serve._records import records_path

    def order() -> list[str]:
        with contextlib.closing(sqlite3.connect(str(records_path(registry)))) as conn:
            return [r[0] for r in conn.execute("SELECT request_id FROM predictions ORDER BY id")]

    _legacy_index(registry)
    srv = serve(record_max_rows=5)
    assert len(notices) == 1 and "Dropped 2" in notices[0], notices
    assert not _tables(registry.index_path) & LEGACY_TABLES
    # 7 legacy rows offered to a bound of 5: the 3 with feedback stay, and the newest without
    # feedback that fit (old-5, old-4); old-3 (its 'Emperor' feedback refused) and old-1 are dropped
    assert order() == ["old-0", "old-2", "old-2", "old-4", "old-5"]
    with srv.client() as c:
        r = c.post("/v1/models/penguins/predict", json={"records": [PENGUIN_ROW]}, headers={"X-Request-ID": "new-0"})
        assert r.status_code == 200
        srv.state.recorder.drain()
    # the new request is the newest; making room for it drops the oldest without feedback first
    assert order() == ["old-0", "old-2", "old-2", "new-0"]


def test_reading_usage_first_moves_the_legacy_records(registry, notices):
    from fulcrum.serve._usage import read_usage

    _legacy_index(registry)
    usage = read_usage(registry)
    assert [(u["model"], u["version"], u["requests"], u["predictions"]) for u in usage] == [("penguins", 1, 6, 7)]
    assert len(notices) == 1 and not _tables(registry.index_path) & LEGACY_TABLES
