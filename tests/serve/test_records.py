"""Serving records (inputs, predictions, feedback, usage) live in their own bounded database,
never in the registry index, and what is recorded is the user's choice; against a real server."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from fulcrum.cli import main

from .conftest import PENGUIN_ROW

BIG = 1000  # rows per request: ~150 kB of JSON per request


def _files_size(path: Path) -> int:
    """The database file and its write-ahead log."""
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def _rows(db: Path) -> list[tuple[str, int]]:
    with contextlib.closing(sqlite3.connect(str(db))) as conn:
        return conn.execute("SELECT request_id, COUNT(*) FROM predictions GROUP BY request_id ORDER BY MIN(id)").fetchall()


def _post_big(c, i: int, prefix: str = "big") -> None:
    r = c.post("/v1/models/penguins/predict", json={"records": [PENGUIN_ROW] * BIG}, headers={"X-Request-ID": f"{prefix}-{i}"})
    assert r.status_code == 200, r.text


def test_registry_index_does_not_grow_with_requests(serve, registry):
    srv = serve(usage_flush_s=0.2)
    with srv.client() as c:
        _post_big(c, 0, "warm")
        srv.state.recorder.drain()
        srv.state.flush()
        before = _files_size(registry.index_path)
        for i in range(12):
            _post_big(c, i)
    srv.stop()  # flushes usage and monitor snapshots, writes the last records
    assert _files_size(registry.index_path) == before
    with contextlib.closing(registry.connect()) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert not tables & {"predictions", "feedback", "serving_usage", "monitor_snapshots"}
    # the records went to the serving database beside the registry
    db = registry.root.parent / f"{registry.root.name}.serving.sqlite"
    assert [n for _, n in _rows(db)] == [BIG] * 13


def test_records_stay_within_their_bounds_oldest_dropped_first(serve, tmp_path):
    db = tmp_path / "records" / "serving.sqlite"
    bound = 600_000
    srv = serve(records_db=str(db), record_max_mb=bound / 1e6)
    with srv.client() as c:
        for i in range(30):  # ~6 MB of records offered, 10x the bound
            _post_big(c, i)
        srv.state.recorder.drain()
        kept = _rows(db)
        ids = [rid for rid, _ in kept]
        assert 0 < len(ids) < 30 and ids == [f"big-{i}" for i in range(30 - len(ids), 30)]  # the newest, in order
        with contextlib.closing(sqlite3.connect(str(db))) as conn:
            stored = conn.execute("SELECT COALESCE(SUM(bytes), 0), COUNT(*) FROM predictions").fetchone()
        assert stored[0] <= bound and stored[1] == BIG * len(ids)
        assert db.stat().st_size <= 2 * bound + 256_000  # the file itself, not only the accounting
        # feedback works for a kept request, and says why for a dropped one
        r = c.post("/v1/models/penguins/feedback", json={"id": "big-29", "truth": ["Gentoo"] * BIG})
        assert r.status_code == 200, r.text
        r = c.post("/v1/models/penguins/feedback", json={"id": "big-0", "truth": ["Gentoo"] * BIG})
        assert r.status_code == 404 and "retention" in r.json()["error"]

    # rows: the same, counted in rows (a labelled request outlives unlabelled older ones)
    srv = serve(records_db=str(tmp_path / "rows.sqlite"), record_max_rows=2500)
    with srv.client() as c:
        _post_big(c, 0, "first")
        srv.state.recorder.drain()
        assert c.post("/v1/models/penguins/feedback", json={"id": "first-0", "truth": ["Gentoo"] * BIG}).status_code == 200
        for i in range(5):
            _post_big(c, i)
        srv.state.recorder.drain()
    kept = _rows(tmp_path / "rows.sqlite")
    assert sum(n for _, n in kept) <= 2500
    assert kept[0][0] == "first-0" and kept[-1][0] == "big-4" and "big-0" not in dict(kept)


def test_record_none_stores_no_inputs(serve, registry, tmp_path):
    from fulcrum.serve import read_usage

    db = tmp_path / "none.sqlite"
    srv = serve(records_db=str(db), record="none", usage_flush_s=0.2)
    with srv.client() as c:
        for i in range(5):
            r = c.post("/v1/models/penguins/predict", json={"records": [PENGUIN_ROW]}, headers={"X-Request-ID": f"n-{i}"})
            assert r.status_code == 200
        r = c.post("/v1/models/penguins/feedback", json={"id": "n-0", "truth": "Gentoo"})
        assert r.status_code == 404 and "--record" in r.json()["error"]
    srv.stop()
    with contextlib.closing(sqlite3.connect(str(db))) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "predictions" not in tables or conn.execute("SELECT COUNT(*) FROM predictions").fetchone()[0] == 0
    usage = read_usage(registry, "penguins", records_db=db)  # usage counters are kept in every mode
    assert sum(u["requests"] for u in usage) == 5


def test_record_sample_keeps_a_share(serve, tmp_path):
    db = tmp_path / "sample.sqlite"
    srv = serve(records_db=str(db), record="sample:0.25")
    with srv.client() as c:
        for i in range(120):
            assert c.post("/v1/models/penguins/predict", json={"records": [PENGUIN_ROW]}).status_code == 200
        srv.state.recorder.drain()
    n = len(_rows(db))
    assert 8 <= n <= 60, n  # binomial(120, 0.25): mean 30, sd 4.7


@pytest.mark.parametrize(("argv", "message"), [
    (["--record", "some"], "none, sample:RATE or all"),
    (["--record", "sample:1.5"], "between 0 and 1"),
    (["--record-max-mb", "0"], "record_max_mb"),
    (["--record-max-rows", "0"], "record_max_rows"),
])
def test_bad_record_options_are_one_line_errors(registry, capsys, argv, message):
    rc = main(["serve", "penguins", "--registry", str(registry.root), *argv])
    err = capsys.readouterr().err
    assert rc == 1 and message in err and "Traceback" not in err


def test_shutdown_saves_the_last_monitor_snapshot(serve, registry):
    from fulcrum.serve import load_latest_snapshot
    from fulcrum.serve._records import connect_records, records_path

    srv = serve(usage_flush_s=3600)  # no periodic flush: only the shutdown's
    with srv.client() as c:
        for _ in range(7):
            assert c.post("/v1/models/penguins/predict", json={"records": [PENGUIN_ROW] * 3}).status_code == 200
    srv.stop()
    with contextlib.closing(connect_records(records_path(registry))) as conn:
        snap = load_latest_snapshot(conn, "penguins")
    assert snap is not None and snap["counts"]["rows_observed"] == 21
