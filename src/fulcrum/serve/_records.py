"""Where serving records live, how they are bounded, and what is recorded.

Serving records are everything a server writes while it serves: the inputs and predictions of
recorded requests, ground-truth feedback, usage counters and monitor snapshots. They live in
their own SQLite database, never in the registry's ``index.sqlite``:

    <registry>.serving.sqlite        beside the registry directory, named after it
                                     ($FULCRUM_HOME/registry.serving.sqlite by default)

or wherever ``--records-db PATH`` (``ServeSettings.records_db``) says. Named after the registry
directory, two registries in one folder never share records.

Tables::

    predictions       one row per recorded input row: model, version, request_id, row, bytes,
                      labelled, inputs_json, prediction_json, output_json, created
    feedback          ground truth per predicted row (deleted with its prediction)
    record_totals     rows and bytes held in ``predictions``, without / with feedback (kept exact
                      by triggers)
    serving_usage     predictions and compute seconds per model version per UTC day
    monitor_snapshots the newest monitor snapshots per model version
    records_meta      bookkeeping (e.g. that a registry index's legacy records were moved in)

Records an older Fulcrum kept in the registry index are moved here on the first open and
dropped from the index (:mod:`._legacy`).

Bounds: ``predictions`` holds at most ``max_rows`` rows and ``max_bytes`` bytes of recorded JSON
(plus a fixed per-row overhead). Before each write, room is made by dropping the oldest rows
without feedback first, then the oldest with feedback, down to 90 % of the bound, so the file
stays near its bound (SQLite reuses the freed pages). Usage counters (one row per model version
per day) and snapshots (the newest few per version) are small and always kept.

What is recorded (``--record``): ``all`` (default), ``sample:RATE`` (that share of requests, at
random) or ``none`` (no inputs or predictions; feedback then has nothing to attach to).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = [
    "DEFAULT_MAX_MB",
    "DEFAULT_MAX_ROWS",
    "RecordPolicy",
    "connect_records",
    "records_path",
]

SUFFIX = ".serving.sqlite"
DEFAULT_MAX_ROWS = 1_000_000
DEFAULT_MAX_MB = 256.0
ROW_OVERHEAD = 48  # bytes per row beyond its JSON and key text: row header, ids, index entries
LOW_WATER = 0.9  # when over a bound, drop down to this share of it
BUSY_TIMEOUT_S = 60.0
WAL_LIMIT_BYTES = 4 << 20  # the write-ahead log is truncated back to this after a checkpoint

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS predictions (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        model           TEXT    NOT NULL,
        version         INTEGER,
        request_id      TEXT    NOT NULL,
        row             INTEGER NOT NULL,
        bytes           INTEGER NOT NULL DEFAULT 0,
        labelled        INTEGER NOT NULL DEFAULT 0,
        created         TEXT    NOT NULL,
        prediction_json TEXT,
        output_json     TEXT,
        inputs_json     TEXT    NOT NULL,
        UNIQUE (model, request_id, row)
    )""",
    "CREATE INDEX IF NOT EXISTS predictions_model_version ON predictions (model, version)",
    "CREATE INDEX IF NOT EXISTS predictions_eviction ON predictions (labelled, id)",
    """CREATE TABLE IF NOT EXISTS feedback (
        model      TEXT    NOT NULL,
        request_id TEXT    NOT NULL,
        row        INTEGER NOT NULL,
        truth_json TEXT    NOT NULL,
        created    TEXT    NOT NULL,
        PRIMARY KEY (model, request_id, row)
    )""",
    """CREATE TABLE IF NOT EXISTS record_totals (
        labelled INTEGER PRIMARY KEY CHECK (labelled IN (0, 1)),
        rows     INTEGER NOT NULL,
        bytes    INTEGER NOT NULL
    )""",
    "INSERT OR IGNORE INTO record_totals (labelled, rows, bytes) VALUES (0, 0, 0), (1, 0, 0)",
    """CREATE TRIGGER IF NOT EXISTS predictions_added AFTER INSERT ON predictions BEGIN
        UPDATE record_totals SET rows = rows + 1, bytes = bytes + NEW.bytes WHERE labelled = NEW.labelled;
    END""",
    """CREATE TRIGGER IF NOT EXISTS predictions_dropped AFTER DELETE ON predictions BEGIN
        UPDATE record_totals SET rows = rows - 1, bytes = bytes - OLD.bytes WHERE labelled = OLD.labelled;
        DELETE FROM feedback WHERE model = OLD.model AND request_id = OLD.request_id AND row = OLD.row;
    END""",
    """CREATE TRIGGER IF NOT EXISTS predictions_labelled AFTER UPDATE OF labelled ON predictions
        WHEN OLD.labelled != NEW.labelled BEGIN
        UPDATE record_totals SET rows = rows - 1, bytes = bytes - OLD.bytes WHERE labelled = OLD.labelled;
        UPDATE record_totals SET rows = rows + 1, bytes = bytes + NEW.bytes WHERE labelled = NEW.labelled;
    END""",
    """CREATE TABLE IF NOT EXISTS serving_usage (
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
    )""",
    """CREATE TABLE IF NOT EXISTS monitor_snapshots (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        model         TEXT    NOT NULL,
        version       INTEGER,
        created       TEXT    NOT NULL,
        snapshot_json TEXT    NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS monitor_snapshots_model ON monitor_snapshots (model, version, id)",
    """CREATE TABLE IF NOT EXISTS records_meta (
        key   TEXT PRIMARY KEY,
        value TEXT
    )""",
)


def records_path(registry: Any = None, path: str | Path | None = None) -> Path:
    """The serving-records database: ``path`` when given, else ``<registry root>.serving.sqlite``
    (``registry`` is a :class:`~fulcrum.artifact.Registry`, a registry directory, or None for the
    default registry)."""
    if path is not None:
        p = Path(path).expanduser()
        if p.is_dir():
            raise ConfigError(f"The records database {p} is a directory; give a file path such as {p / 'serving.sqlite'}.")
        return p
    from ..artifact import Registry
    from ..artifact._registry import default_registry_root

    if isinstance(registry, Registry):
        root = registry.root
    elif registry is not None:
        root = Path(registry).expanduser()
    else:
        root = default_registry_root()
    root = root.absolute()
    return root.parent / (root.name + SUFFIX)


def connect_records(path: str | Path, *, registry: Any = None, max_rows: int = DEFAULT_MAX_ROWS,
                    max_mb: float = DEFAULT_MAX_MB) -> sqlite3.Connection:
    """A connection to the records database at ``path`` (created with its tables if missing):
    WAL mode, busy timeout, a bounded write-ahead log. The caller closes it.

    On the first open in a process, serving records an older Fulcrum left in the registry index
    (``registry``'s, or the one ``path`` is named after) are moved in, within ``max_rows`` rows and
    ``max_mb`` megabytes, and dropped from the index (see :mod:`._legacy`)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(p), timeout=BUSY_TIMEOUT_S, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")  # durable at checkpoints; safe in WAL mode
        conn.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_BYTES}")
        conn.execute("PRAGMA recursive_triggers = ON")  # INSERT OR REPLACE keeps the totals exact
        with conn:
            for statement in SCHEMA:
                conn.execute(statement)
    except BaseException:
        conn.close()
        raise
    from ._legacy import migrate_legacy

    migrate_legacy(conn, p, registry, max_rows=max_rows, max_bytes=check_bounds(max_rows, max_mb)[1])
    return conn


class RecordPolicy:
    """What a server records: ``"all"``, ``"none"`` or ``"sample:RATE"`` (0 < RATE <= 1), and the
    bounds of what it keeps (``max_rows`` rows, ``max_mb`` megabytes of recorded JSON)."""

    __slots__ = ("mode", "rate", "max_rows", "max_bytes")

    def __init__(self, mode: str = "all", *, max_rows: int = DEFAULT_MAX_ROWS, max_mb: float = DEFAULT_MAX_MB) -> None:
        self.mode, self.rate = parse_record_mode(mode)
        self.max_rows, self.max_bytes = check_bounds(max_rows, max_mb)

    @property
    def records(self) -> bool:
        return self.rate > 0.0

    def describe(self) -> str:
        what = {"all": "every request", "none": "no request"}.get(self.mode, f"a random {self.rate:.0%} of requests")
        return f"{what} (kept: at most {self.max_rows:,} rows and {self.max_bytes / 1e6:g} MB, oldest dropped first)"


def parse_record_mode(mode: Any) -> tuple[str, float]:
    """``"all"`` -> ("all", 1.0), ``"none"`` -> ("none", 0.0), ``"sample:0.1"`` -> ("sample:0.1", 0.1)."""
    text = str(mode).strip().lower() if isinstance(mode, str) else None
    if text == "all":
        return "all", 1.0
    if text == "none":
        return "none", 0.0
    if text is not None and text.startswith("sample:"):
        raw = text[len("sample:"):]
        try:
            rate = float(raw)
        except ValueError:
            rate = float("nan")
        if not 0.0 < rate <= 1.0:  # NaN fails too
            raise ConfigError(
                f"--record sample:RATE needs a RATE between 0 and 1 (the share of requests recorded), got {raw!r}; "
                "e.g. --record sample:0.1."
            )
        return f"sample:{rate:g}", rate
    raise ConfigError(
        f"--record must be none, sample:RATE or all (what the server stores of each request), got {mode!r}."
    )


def check_bounds(max_rows: Any, max_mb: Any) -> tuple[int, int]:
    """(rows, bytes) from the user's record_max_rows and record_max_mb; ConfigError when not positive."""
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
        raise ConfigError(f"record_max_rows must be an integer >= 1 (recorded rows kept), got {max_rows!r}.")
    if isinstance(max_mb, bool) or not isinstance(max_mb, (int, float)) or not max_mb > 0 or max_mb == float("inf"):
        raise ConfigError(f"record_max_mb must be a number of megabytes > 0 (recorded data kept), got {max_mb!r}.")
    return max_rows, max(1, int(max_mb * 1e6))
