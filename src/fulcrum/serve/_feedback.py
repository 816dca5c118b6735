"""Ground-truth feedback: predictions recorded by request id, truth joined later, a live metric,
and the labelled rows for retraining. Plus the retrain recommendation.

The tables live in the serving-records database (see :mod:`fulcrum.serve._records`), never in
the registry index::

    predictions (model, version, request_id, row, bytes, labelled, inputs_json, prediction_json, ...)
    feedback    (model, request_id, row, truth_json, created)          -- one truth per predicted row

Recorded rows are bounded (``max_rows``, ``max_mb``): before a write, the oldest requests without
feedback are dropped first, then the oldest with feedback. Feedback is checked against the
model that made the prediction: a label it does not know, or a regression truth that is not a
finite number, is refused (DataError, HTTP 422) and nothing is stored.

::

    store = FeedbackStore(registry)                       # its records DB; or a .sqlite path, or a connection
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

from ..data._coerce import CellError, parse_number
from ..errors import ConfigError, DataError, NotFoundError
from ._records import DEFAULT_MAX_MB, DEFAULT_MAX_ROWS, LOW_WATER, ROW_OVERHEAD, SCHEMA, check_bounds, connect_records, records_path

__all__ = ["FeedbackStore", "recommend", "DEFAULT_THRESHOLDS"]

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


def _nbytes(s: str | None) -> int:
    if s is None:
        return 0
    return len(s) if s.isascii() else len(s.encode("utf-8"))


def _label(v: Any) -> str:
    """Class labels compare as the profile spells categories: 3, 3.0 and "3" are one label."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


def _finite_number(v: Any) -> float | None:
    """``v`` as a finite float when it is a number or a plain decimal string (the one value rule
    of :func:`fulcrum.data._coerce.parse_number`: booleans are not numbers); else None."""
    try:
        x = parse_number(v)
    except CellError:
        return None
    return x if math.isfinite(x) else None


class FeedbackStore:
    """Predictions and their ground truth, in the serving-records SQLite database.

    ``path_or_conn``: a :class:`~fulcrum.artifact.Registry` (its records database
    ``<registry>.serving.sqlite``; the default registry when None), a registry directory, a
    ``.sqlite`` file path, or an open ``sqlite3.Connection`` (which stays the caller's to close).
    ``registry``: where manifests (task, target, labels) are read when ``path_or_conn`` is a path
    or a connection. ``max_rows`` / ``max_mb`` bound the recorded rows (oldest dropped first).
    Safe to share between threads: one connection behind a lock.
    """

    def __init__(
        self,
        path_or_conn: Any = None,
        *,
        registry: Any = None,
        max_rows: int = DEFAULT_MAX_ROWS,
        max_mb: float = DEFAULT_MAX_MB,
    ) -> None:
        from ..artifact import Registry

        self.max_rows, self.max_bytes = check_bounds(max_rows, max_mb)
        self.dropped = 0  # requests too large for the bounds, never stored
        self._owns = True
        self._registry = registry
        self.path: Path | None = None  # the database file (None for a caller's connection)
        if isinstance(path_or_conn, sqlite3.Connection):
            self._conn, self._owns = path_or_conn, False
            with self._conn:
                for statement in SCHEMA:
                    self._conn.execute(statement)
        else:
            if path_or_conn is None or isinstance(path_or_conn, Registry):
                self._registry = path_or_conn if path_or_conn is not None else (registry or Registry())
                path = records_path(self._registry)
            else:
                path = Path(path_or_conn).expanduser()
                if path.is_dir():
                    self._registry = Registry(path)
                    path = records_path(self._registry)
            self.path = path
            self._conn = connect_records(path, registry=self._registry, max_rows=max_rows, max_mb=max_mb)
        self._lock = threading.RLock()
        self._manifests: dict[tuple[str, int], dict[str, Any] | None] = {}
        self._targets: dict[tuple[str, int | None], str | None] = {}

    def close(self) -> None:
        if self._owns:
            with self._lock:
                self._conn.close()

    def __enter__(self) -> FeedbackStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- manifest lookups (the registry's versions table) ----------------------

    def _manifest(self, model: str, version: int | None = None) -> dict[str, Any] | None:
        if self._registry is None:
            return None
        key = (model, int(version)) if version is not None else None
        if key is not None and key in self._manifests:  # versions are immutable
            return self._manifests[key]
        try:
            conn = self._registry.connect()
            try:
                if version is None:
                    row = conn.execute(
                        "SELECT manifest_json FROM versions WHERE name = ? ORDER BY version DESC LIMIT 1", (model,)
                    ).fetchone()
                else:
                    row = conn.execute(
                        "SELECT manifest_json FROM versions WHERE name = ? AND version = ?", (model, int(version))
                    ).fetchone()
            finally:
                conn.close()
        except sqlite3.OperationalError:  # not a registry database
            return None
        manifest: dict[str, Any] | None = json.loads(row[0]) if row is not None and row[0] else None
        if key is not None:
            self._manifests[key] = manifest
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
        (probabilities), which is kept too. Recording the same request id again replaces its rows
        (and drops their feedback). A request larger than the bounds is not stored (0 is returned).
        """
        return self.record_many([(model, version, request_id, inputs, outputs)])

    def record_many(
        self, records: Sequence[tuple[str, int | None, str, Sequence[Mapping[str, Any]], Sequence[Any]]]
    ) -> int:
        """``record`` for many requests in ONE transaction (the server's recorder drains its queue here)."""
        created = _now()
        groups = [rows for rows in (self._rows(*rec, created=created) for rec in records) if rows]
        if not groups:
            return 0
        return self._insert(groups)

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
        request_id = str(request_id)
        fixed = ROW_OVERHEAD + _nbytes(model) + _nbytes(request_id) + len(created)
        rows = []
        for i, (inp, out) in enumerate(zip(inputs, outputs)):
            inputs_json = _dumps(dict(inp))
            prediction_json = _dumps(self._prediction_of(out, target))
            output_json = _dumps(out) if isinstance(out, Mapping) else None
            size = fixed + _nbytes(inputs_json) + _nbytes(prediction_json) + _nbytes(output_json)
            rows.append((model, None if version is None else int(version), request_id, i, size, created,
                         prediction_json, output_json, inputs_json))
        return rows

    def _insert(self, groups: list[list[tuple[Any, ...]]]) -> int:
        """Write the requests ``groups`` (oldest first, each a list of rows) in one transaction,
        within the bounds; returns the rows written."""
        with self._lock:
            conn = self._conn
            if conn.in_transaction:
                conn.commit()
            conn.execute("BEGIN IMMEDIATE")  # totals read, room made and rows written under one write lock
            try:
                rows = self._fit(groups)
                if rows:
                    self._make_room(len(rows), sum(r[4] for r in rows))
                    conn.executemany(
                        "INSERT OR REPLACE INTO predictions (model, version, request_id, row, bytes, created,"
                        " prediction_json, output_json, inputs_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        rows,
                    )
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
        return len(rows)

    def _fit(self, groups: list[list[tuple[Any, ...]]]) -> list[tuple[Any, ...]]:
        """The rows of the requests to write now, as if they had been written one at a time: the
        newest that fit beside the requests with feedback (which unlabelled ones never displace),
        and at least the newest request when it fits the bounds at all. A request larger than the
        bounds is never stored (counted in ``dropped``)."""
        (lab_rows, lab_bytes), = self._conn.execute("SELECT rows, bytes FROM record_totals WHERE labelled = 1").fetchall()
        room_rows, room_bytes = self.max_rows - lab_rows, self.max_bytes - lab_bytes
        kept: list[list[tuple[Any, ...]]] = []
        n_rows = n_bytes = 0
        for rows in reversed(groups):  # newest first
            n, b = len(rows), sum(r[4] for r in rows)
            if n > self.max_rows or b > self.max_bytes:
                self.dropped += 1
                continue
            if kept and (n_rows + n > room_rows or n_bytes + b > room_bytes):
                break  # older ones would have been dropped by the newer ones anyway
            kept.append(rows)
            n_rows += n
            n_bytes += b
        return [r for rows in reversed(kept) for r in rows]

    def _make_room(self, n_rows: int, n_bytes: int) -> None:
        """Drop the oldest requests (without feedback first) so that ``n_rows`` rows and
        ``n_bytes`` bytes more fit; when anything must go, go down to LOW_WATER of the bounds."""
        conn = self._conn
        rows, nbytes = conn.execute("SELECT SUM(rows), SUM(bytes) FROM record_totals").fetchone()
        if rows + n_rows <= self.max_rows and nbytes + n_bytes <= self.max_bytes:
            return
        need_rows = rows + n_rows - int(self.max_rows * LOW_WATER)
        need_bytes = nbytes + n_bytes - int(self.max_bytes * LOW_WATER)
        for labelled in (0, 1):
            if need_rows <= 0 and need_bytes <= 0:
                return
            last = None
            cur = conn.execute("SELECT id, bytes FROM predictions WHERE labelled = ? ORDER BY id", (labelled,))
            while need_rows > 0 or need_bytes > 0:
                chunk = cur.fetchmany(4096)
                if not chunk:
                    break
                for id_, b in chunk:
                    last = id_
                    need_rows -= 1
                    need_bytes -= b
                    if need_rows <= 0 and need_bytes <= 0:
                        break
            cur.close()
            if last is None:
                continue
            # whole requests go: extend to the last row of the request the cut falls in
            model, request_id = conn.execute("SELECT model, request_id FROM predictions WHERE id = ?", (last,)).fetchone()
            end = conn.execute("SELECT MAX(id), SUM(bytes), COUNT(*) FROM predictions WHERE model = ? AND request_id = ?"
                               " AND id > ?", (model, request_id, last)).fetchone()
            if end[0] is not None:
                last = end[0]
                need_rows -= int(end[2])
                need_bytes -= int(end[1] or 0)
            conn.execute("DELETE FROM predictions WHERE labelled = ? AND id <= ?", (labelled, last))

    def _check_truth(self, model: str, version: int | None, request_id: str, row: int, truth: Any) -> Any:
        """The truth as stored (a label spelled as the model spells it, or a float), or DataError."""
        if isinstance(truth, np.generic):
            truth = truth.item()
        if truth is None or isinstance(truth, (dict, list)):
            raise DataError(f"Truth for row {row} of request {request_id!r} must be a label or a number, got {truth!r}.")
        task = self._task(model, version)
        kind, labels = task.get("kind"), task.get("labels")
        ref = f"{model}@{version}" if version is not None else model
        if kind == "classification" and labels:
            known = {_label(x): x for x in labels}
            key = _label(truth)
            if key not in known or (isinstance(truth, float) and not math.isfinite(truth)):
                names = ", ".join(str(x) for x in labels)
                raise DataError(
                    f"Unknown label {truth!r} for row {row} of request {request_id!r}: {ref} knows only {names}; "
                    "send one of those as the truth."
                )
            return _plain(known[key])
        if kind == "regression":
            x = _finite_number(truth)
            if x is None:
                raise DataError(
                    f"Truth for row {row} of request {request_id!r} must be a finite number ({ref} is a regression "
                    f"model), got {truth!r}."
                )
            return x
        if isinstance(truth, float) and not math.isfinite(truth):
            raise DataError(f"Truth for row {row} of request {request_id!r} must be a finite number or a label, got {truth!r}.")
        return truth

    def add_feedback(self, model: str, request_id: str, truth: Any, row: int | None = None) -> dict[str, Any]:
        """Attach the ground truth to a recorded request; returns what was stored.

        ``truth`` is one value (a one-row request, or the row given by ``row``) or a list with one
        value per row of the request. Sending feedback again for a row replaces it. The truth must
        be one of the model's labels (classification) or a finite number (regression).
        Raises NotFoundError for an unknown request id (or row), DataError for a bad truth; nothing
        is stored then.
        """
        request_id = str(request_id)
        with self._lock:
            found = self._conn.execute(
                "SELECT row, version FROM predictions WHERE model = ? AND request_id = ? ORDER BY row", (model, request_id)
            ).fetchall()
        if not found:
            raise NotFoundError(
                f"No recorded prediction of model {model!r} has request id {request_id!r}; send feedback with the "
                "request id the server returned for that prediction (its X-Request-ID header or 'id' field). "
                "A request the server did not record (see `fulcrum serve --record`), or dropped by the records' "
                "retention bound (--record-max-rows, --record-max-mb), cannot take feedback."
            )
        n_rows, version = len(found), found[0][1]
        truths = truth.tolist() if isinstance(truth, (np.ndarray, pd.Series)) else truth
        if isinstance(truths, tuple):
            truths = list(truths)
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
        pairs = [(i, self._check_truth(model, version, request_id, i, t)) for i, t in pairs]
        created = _now()
        with self._lock, self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO feedback (model, request_id, row, truth_json, created) VALUES (?, ?, ?, ?, ?)",
                [(model, request_id, i, _dumps(t), created) for i, t in pairs],
            )
            # a request with ground truth is kept longest (dropped only after every unlabelled one)
            self._conn.execute("UPDATE predictions SET labelled = 1 WHERE model = ? AND request_id = ?", (model, request_id))
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
            if task is not None:
                raise ConfigError(f"task must be 'classification' or 'regression', got {kind!r}.")
            # the manifest's kind has a metric of its own (a transcriber's WER, a recommender's ranking): the rows
            # with feedback are counted, no live metric is computed here (`fulcrum evaluate` on them gives it)
            return {"model": model, "version": version, "task": kind, "n": len(rows)}
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
