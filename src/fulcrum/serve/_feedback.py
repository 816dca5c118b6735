"""Ground-truth feedback: predictions recorded by request id, truth joined later, a live metric,
and the labelled rows for retraining. Plus the retrain recommendation.

Tables (in the registry's SQLite index by default, next to ``versions`` and ``aliases``)::

    predictions (model, version, request_id, row, inputs_json, prediction_json, output_json, created)
    feedback    (model, request_id, row, truth_json, created)          -- one truth per predicted row

::

    store = FeedbackStore(registry)                       # or a .sqlite path, or a sqlite3 connection
    store.record("iris", 3, "req-1", [{"sepal length (cm)": 5.1, ...}], ["setosa"])
    store.add_feedback("iris", "req-1", "versicolor")
    store.live_metric("iris")                             # {"task": "classification", "n": 1, "accuracy": 0.0, ...}
    store.feedback_frame("iris")                          # input columns + "target", for `fulcrum retrain`
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError, NotFoundError

__all__ = ["FeedbackStore", "recommend", "DEFAULT_THRESHOLDS"]

_SCHEMA = (
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
)
BUSY_TIMEOUT_S = 60.0
_PREDICTION_KEYS = ("prediction", "label", "value")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _plain(v: Any) -> Any:
    """JSON-ready: numpy scalars/arrays to Python, NaN/inf to None."""
    t = type(v)
    if t is str or t is int or t is bool or v is None:  # the common cases first, without isinstance chains
        return v
    if t is float:
        return v if math.isfinite(v) else None
    if t is dict:
        return {k if type(k) is str else str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, np.ndarray):
        return [_plain(x) for x in v.tolist()]
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (pd.Timestamp, datetime)):
        return v.isoformat()
    return v


try:
    import orjson as _orjson
except ImportError:  # pragma: no cover
    _orjson = None


def _dumps(v: Any) -> str:
    plain = _plain(v)
    if _orjson is not None:
        try:
            return _orjson.dumps(plain, default=str).decode()
        except TypeError:  # e.g. an integer beyond 64 bits
            pass
    return json.dumps(plain, separators=(",", ":"), allow_nan=False, default=str)


def _label(v: Any) -> str:
    """Class labels compare as the profile spells categories: 3, 3.0 and "3" are one label."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


class FeedbackStore:
    """Predictions and their ground truth, in SQLite.

    ``path_or_conn``: a :class:`~fulcrum.artifact.Registry` (its index database, the default when
    None), a registry directory, a ``.sqlite`` file path, or an open ``sqlite3.Connection`` (which
    stays the caller's to close). Safe to share between threads: one connection behind a lock.
    """

    def __init__(self, path_or_conn: Any = None) -> None:
        self._owns = True
        self._registry = None
        if isinstance(path_or_conn, sqlite3.Connection):
            self._conn, self._owns = path_or_conn, False
        else:
            from ..artifact import Registry

            if path_or_conn is None or isinstance(path_or_conn, Registry):
                self._registry = path_or_conn if path_or_conn is not None else Registry()
                path = Path(self._registry.index_path)
            else:
                path = Path(path_or_conn).expanduser()
                if path.is_dir():
                    self._registry = Registry(path)
                    path = Path(self._registry.index_path)
            self._conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, check_same_thread=False)
            self._conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")  # durable at checkpoints; safe in WAL mode
        self._lock = threading.RLock()
        self._targets: dict[tuple[str, int | None], str | None] = {}
        with self._lock, self._conn:
            for statement in _SCHEMA:
                self._conn.execute(statement)

    def close(self) -> None:
        if self._owns:
            with self._lock:
                self._conn.close()

    def __enter__(self) -> FeedbackStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- manifest lookups (the registry's versions table, when this is the registry DB) ---------

    def _manifest(self, model: str, version: int | None = None) -> dict[str, Any] | None:
        try:
            if version is None:
                row = self._conn.execute(
                    "SELECT manifest_json FROM versions WHERE name = ? ORDER BY version DESC LIMIT 1", (model,)
                ).fetchone()
            else:
                row = self._conn.execute(
                    "SELECT manifest_json FROM versions WHERE name = ? AND version = ?", (model, int(version))
                ).fetchone()
        except sqlite3.OperationalError:  # not a registry database
            return None
        if row is None or not row[0]:
            return None
        manifest: dict[str, Any] = json.loads(row[0])
        return manifest

    def _task(self, model: str, version: int | None) -> dict[str, Any]:
        m = self._manifest(model, version) or {}
        task = m.get("task")
        return task if isinstance(task, dict) else {}

    def _target(self, model: str, version: int | None) -> str | None:
        key = (model, version)
        if key not in self._targets:
            with self._lock:
                self._targets[key] = self._task(model, version).get("target")
        return self._targets[key]

    # -- writing -------------------------------------------------------------

    def _prediction_of(self, output: Any, target: str | None) -> Any:
        if isinstance(output, Mapping):
            for key in ((target,) if target else ()) + _PREDICTION_KEYS:
                if key in output:
                    return output[key]
            plain = [k for k in output if not str(k).startswith("proba")]
            return output[plain[0]] if plain else None
        return output

    def record(
        self, model: str, version: int | None, request_id: str, inputs: Sequence[Mapping[str, Any]], outputs: Sequence[Any]
    ) -> int:
        """Store one request's rows (inputs as JSON, the prediction per row); returns the rows stored.

        ``outputs`` holds one entry per input row: the prediction itself (a label or a value), or a
        dict holding it under the target's name (or "prediction"/"label"/"value") plus anything else
        (probabilities), which is kept too. Recording the same request id again replaces its rows.
        """
        rows = self._rows(model, version, request_id, inputs, outputs)
        self._insert(rows)
        return len(rows)

    def record_many(
        self, records: Sequence[tuple[str, int | None, str, Sequence[Mapping[str, Any]], Sequence[Any]]]
    ) -> int:
        """``record`` for many requests in ONE transaction (the server's recorder drains its queue here)."""
        created = _now()
        rows = [r for rec in records for r in self._rows(*rec, created=created)]
        self._insert(rows)
        return len(rows)

    def _rows(
        self, model: str, version: int | None, request_id: str, inputs: Sequence[Mapping[str, Any]], outputs: Sequence[Any],
        created: str | None = None,
    ) -> list[tuple[Any, ...]]:
        if isinstance(outputs, (pd.DataFrame, pd.Series)):
            outputs = outputs.to_dict("records") if isinstance(outputs, pd.DataFrame) else outputs.tolist()
        if isinstance(outputs, np.ndarray):
            outputs = list(outputs)
        if len(inputs) != len(outputs):
            raise DataError(f"record got {len(inputs)} input row(s) but {len(outputs)} output(s); pass one output per row.")
        target = self._target(model, version)
        created = created or _now()
        return [
            (
                model,
                None if version is None else int(version),
                str(request_id),
                i,
                _dumps(dict(inp)),
                _dumps(self._prediction_of(out, target)),
                _dumps(out) if isinstance(out, Mapping) else None,
                created,
            )
            for i, (inp, out) in enumerate(zip(inputs, outputs))
        ]

    def _insert(self, rows: list[tuple[Any, ...]]) -> None:
        with self._lock, self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO predictions (model, version, request_id, row, inputs_json, prediction_json,"
                " output_json, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def add_feedback(self, model: str, request_id: str, truth: Any, row: int | None = None) -> dict[str, Any]:
        """Attach the ground truth to a recorded request; returns what was stored.

        ``truth`` is one value (a one-row request, or the row given by ``row``) or a list with one
        value per row of the request. Sending feedback again for a row replaces it.
        Raises NotFoundError for an unknown request id (or row), DataError for a bad truth.
        """
        request_id = str(request_id)
        with self._lock:
            found = self._conn.execute(
                "SELECT row, version FROM predictions WHERE model = ? AND request_id = ? ORDER BY row", (model, request_id)
            ).fetchall()
        if not found:
            raise NotFoundError(
                f"No recorded prediction of model {model!r} has request id {request_id!r}; send feedback with the "
                "request id the server returned for that prediction (its X-Request-ID header or 'id' field)."
            )
        n_rows, version = len(found), found[0][1]
        truths = _plain(truth.tolist() if isinstance(truth, (np.ndarray, pd.Series)) else truth)
        if row is not None:
            if isinstance(row, bool) or not isinstance(row, (int, np.integer)) or not 0 <= int(row) < n_rows:
                raise NotFoundError(
                    f"Request {request_id!r} of model {model!r} has {n_rows} row(s) (0-{n_rows - 1}); row {row!r} is not one of them."
                )
            if isinstance(truths, list):
                raise DataError(f"With row={row} give one truth value, not a list of {len(truths)}.")
            pairs = [(int(row), truths)]
        elif isinstance(truths, list):
            if len(truths) != n_rows:
                raise DataError(
                    f"Request {request_id!r} has {n_rows} row(s) but {len(truths)} truth value(s) were given; "
                    "give one per row, in request order, or name a single row with row=."
                )
            pairs = list(enumerate(truths))
        elif n_rows == 1:
            pairs = [(0, truths)]
        else:
            raise DataError(
                f"Request {request_id!r} has {n_rows} rows; give a list of {n_rows} truth values, or one value with row=."
            )
        for i, t in pairs:
            if t is None or isinstance(t, (dict, list)):
                raise DataError(f"Truth for row {i} of request {request_id!r} must be a label or a number, got {t!r}.")
        created = _now()
        with self._lock, self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO feedback (model, request_id, row, truth_json, created) VALUES (?, ?, ?, ?, ?)",
                [(model, request_id, i, _dumps(t), created) for i, t in pairs],
            )
        return {"model": model, "version": version, "request_id": request_id, "rows": [i for i, _ in pairs],
                "stored": len(pairs)}

    # -- reading -------------------------------------------------------------

    def _joined(self, model: str, version: int | None) -> list[tuple[Any, ...]]:
        sql = (
            "SELECT p.version, p.inputs_json, p.prediction_json, f.truth_json FROM predictions p JOIN feedback f"
            " ON f.model = p.model AND f.request_id = p.request_id AND f.row = p.row WHERE p.model = ?"
        )
        params: list[Any] = [model]
        if version is not None:
            sql += " AND p.version = ?"
            params.append(int(version))
        with self._lock:
            return self._conn.execute(sql + " ORDER BY p.id", params).fetchall()

    def counts(self, model: str, version: int | None = None) -> dict[str, int]:
        """Rows predicted and rows with feedback for ``model`` (one version, or all)."""
        where, params = "WHERE model = ?", [model]
        if version is not None:
            where += " AND version = ?"
            params.append(int(version))
        with self._lock:
            predicted = self._conn.execute(f"SELECT COUNT(*) FROM predictions {where}", params).fetchone()[0]
        return {"predictions": int(predicted), "feedback": len(self._joined(model, version))}

    def live_metric(self, model: str, version: int | None = None, *, task: str | None = None) -> dict[str, Any]:
        """Metric over the predictions that have feedback: accuracy (classification) or MAE and RMSE
        (regression), with ``n`` (``n == 0``: the metric is None). The task comes from ``task=``, else
        the registry's manifest; without either it is regression when every prediction and truth is
        a number and some are non-integral, else classification."""
        rows = self._joined(model, version)
        kind = task or self._task(model, version).get("kind")
        preds = [json.loads(r[2]) if r[2] is not None else None for r in rows]
        truths = [json.loads(r[3]) for r in rows]
        if kind is None:
            numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in preds + truths)
            kind = "regression" if numbers and any(isinstance(v, float) and not v.is_integer() for v in preds + truths) else "classification"
        if kind not in ("classification", "regression"):
            raise ConfigError(f"task must be 'classification' or 'regression', got {kind!r}.")
        out: dict[str, Any] = {"model": model, "version": version, "task": kind, "n": len(rows)}
        if kind == "classification":
            hits = [p is not None and _label(p) == _label(t) for p, t in zip(preds, truths)]
            out["accuracy"] = float(np.mean(hits)) if hits else None
            return out
        pairs = [(p, t) for p, t in zip(preds, truths) if p is not None]
        try:
            err = np.asarray([float(p) - float(t) for p, t in pairs], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(f"Regression feedback for {model!r} holds a non-numeric value ({exc}); send numbers as truth.") from exc
        out["n"] = int(err.size)
        out["mae"] = float(np.mean(np.abs(err))) if err.size else None
        out["rmse"] = float(math.sqrt(float(np.mean(err**2)))) if err.size else None
        return out

    def feedback_frame(self, model: str, *, target: str | None = None) -> pd.DataFrame:
        """One row per prediction with feedback (any version, oldest first): the recorded input
        columns plus the truth under the target's name from the manifest (or ``target=``)."""
        target = target or self._target(model, None)
        if not target:
            raise ConfigError(
                f"The target column of {model!r} is unknown (no registry manifest in this database); pass target='...'."
            )
        rows = self._joined(model, None)
        records = []
        for _, inputs_json, _, truth_json in rows:
            rec = json.loads(inputs_json)
            rec.pop(target, None)
            rec[target] = json.loads(truth_json)
            records.append(rec)
        if not records:
            manifest = self._manifest(model) or {}
            columns = [str(c["name"]) for c in manifest.get("inputs", [])] + [target]
            return pd.DataFrame(columns=columns)
        return pd.DataFrame.from_records(records)


# --------------------------------------------------------------------------- recommendation

DEFAULT_THRESHOLDS: dict[str, float] = {
    "drifted_share": 0.3,  # share of judged input columns whose drift verdict is True
    "ood_rate": 0.1,  # share of windowed rows with an OOD score >= the monitor's threshold
    "metric_drop": 0.05,  # accuracy: absolute drop; MAE: relative rise (0.05 = 5 % worse)
    "min_feedback": 30,  # fewer rows with feedback: no verdict on the live metric
}


def recommend(
    snapshot: Mapping[str, Any] | None,
    live_metric: Mapping[str, Any] | None,
    trained_metric: Mapping[str, Any] | None,
    thresholds: Mapping[str, float] | None = None,
    *,
    data_source: str | None = None,
    feedback_rows: int | None = None,
) -> dict[str, Any]:
    """Whether to retrain, and why: ``{"retrain": bool, "reasons": [...], "checks": {...}, "data": {...}}``.

    Checks (each ``crossed`` True/False, or None when there is too little data to judge):

    - ``drift``: ``snapshot["drifted_share"] >= drifted_share``;
    - ``ood``: ``snapshot["ood"]["rate"] >= ood_rate`` (only with at least the monitor's min_rows);
    - ``metric``: with ``live_metric["n"] >= min_feedback``, classification accuracy
      ``trained - live >= metric_drop``; regression MAE ``(live - trained) / trained >= metric_drop``.
      ``trained_metric`` is the package's test metrics (``manifest["metrics"]["test"]``).

    ``data`` names what to retrain on: the original source (``data_source``, else the snapshot's) and
    the rows with feedback (``feedback_rows``, else ``live_metric["n"]``).
    """
    th = dict(DEFAULT_THRESHOLDS)
    for key, value in (thresholds or {}).items():
        if key not in th:
            raise ConfigError(f"Unknown threshold {key!r}; the thresholds are {', '.join(DEFAULT_THRESHOLDS)}.")
        th[key] = float(value)
    snap = snapshot or {}
    live = live_metric or {}
    trained = trained_metric or {}
    checks: dict[str, dict[str, Any]] = {}
    reasons: list[str] = []

    enough_rows = snap.get("status") in ("ok", "drift")
    share = snap.get("drifted_share")
    crossed = bool(share >= th["drifted_share"]) if enough_rows and share is not None else None
    checks["drift"] = {"value": share, "threshold": th["drifted_share"], "crossed": crossed,
                       "columns": list(snap.get("drifted_columns") or [])}
    if crossed:
        reasons.append(
            f"input drift: {len(checks['drift']['columns'])} column(s) drifted ({share:.0%} of those judged, "
            f"threshold {th['drifted_share']:.0%}): {', '.join(checks['drift']['columns'])}"
        )

    rate = (snap.get("ood") or {}).get("rate")
    crossed = bool(rate >= th["ood_rate"]) if enough_rows and rate is not None else None
    checks["ood"] = {"value": rate, "threshold": th["ood_rate"], "crossed": crossed}
    if crossed:
        reasons.append(f"out-of-distribution inputs: {rate:.1%} of the window (threshold {th['ood_rate']:.1%})")

    task = live.get("task")
    n = int(live.get("n") or 0)
    name = "accuracy" if task == "classification" else "mae" if task == "regression" else None
    live_v = live.get(name) if name else None
    train_v = trained.get(name) if name else None
    drop = None
    if live_v is not None and train_v is not None:
        if name == "accuracy":
            drop = float(train_v) - float(live_v)
        elif float(train_v) > 0:
            drop = (float(live_v) - float(train_v)) / float(train_v)
    crossed = bool(drop >= th["metric_drop"]) if drop is not None and n >= th["min_feedback"] else None
    checks["metric"] = {"name": name, "live": live_v, "trained": train_v, "drop": drop, "threshold": th["metric_drop"],
                        "n": n, "min_feedback": int(th["min_feedback"]), "crossed": crossed}
    if crossed:
        how = f"{drop:.3f} below" if name == "accuracy" else f"{drop:.0%} above"
        reasons.append(f"live {name} {live_v:.4f} on {n} feedback row(s) is {how} the training test {name} {train_v:.4f}")

    rows = feedback_rows if feedback_rows is not None else n
    source = data_source if data_source is not None else snap.get("data_source")
    return {
        "retrain": bool(reasons),
        "reasons": reasons,
        "checks": checks,
        "thresholds": th,
        "data": {"source": source, "feedback_rows": int(rows)},
    }
