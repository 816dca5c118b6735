"""The thin HTTP layer: KServe Open Inference Protocol v2 plus a friendly JSON route, on FastAPI.

Cross-cutting work happens once per request in :class:`_Edge`, a plain ASGI middleware (no
BaseHTTPMiddleware overhead): request id, body-size limit, API-key check, per-key rate limit,
Prometheus counters and the JSON access log. Handlers decode the body against the model's
schema, submit it to the model's batcher and format the answer.

Routes (``{name}`` may be ``name``, ``name@3`` or ``name@alias``)::

    GET  /v2/health/live | /v2/health/ready                        no key needed
    GET  /v2                                                       server metadata
    GET  /v2/models/{name}[/versions/{v}][/ready]                  model metadata / readiness
    POST /v2/models/{name}[/versions/{v}]/infer                    v2 inference
    POST /v1/models/{name}/predict     {"records": [{col: value}]} friendly inference
    POST /v1/models/{name}/feedback    {"id": request_id, "truth": ...}   (also /v2/models/{name}/feedback)
    GET  /v1/models | /v1/models/{name}/metric | /v1/models/{name}/monitor
    GET  /metrics                                                  Prometheus
    GET  /admin/models; POST /admin/models/{name}/alias {"alias", "version"[, "force"]}  (through
         fulcrum.artifact.promote: 422 for a version worse beyond noise unless "force": true)
         POST /admin/models/{ref}/load | .../unload
         (admin key, and only with enable_admin)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import re
import secrets
import sys
import threading
import time
from typing import Any, AsyncIterator, Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from .. import __version__
from ..artifact import Registry
from ..errors import FulcrumError, NotFoundError, ServeError
from ._auth import Authenticator, KeyStore
from ._docs import install_docs
from ._feedback import FeedbackStore
from ._limits import RateLimiter
from ._metrics import CONTENT_TYPE_LATEST, ServeMetrics
from ._model import ServedModel, column_datatypes
from ._models import ModelSet, promotion_summary
from ._outputs import friendly_body, v2_outputs
from ._recorder import Recorder
from ._records import RecordPolicy, connect_records, records_path
from ._spec import ServeSettings
from ._timeouts import TIMEOUT_HOOK
from ._upload import is_multipart, name_files, parse_upload
from ._usage import UsageCounter

__all__ = ["create_app", "ServerState"]

log = logging.getLogger("fulcrum.serve")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_JSON = "application/json"


try:  # orjson: several times faster than json for response bodies and access-log lines
    import orjson as _orjson
except ImportError:  # pragma: no cover - the json module does the same, slower
    _orjson = None


def _dumps(body: Any) -> bytes:
    """Compact JSON bytes (NaN/inf never reach here: outputs carry them as null)."""
    if _orjson is not None:
        try:
            return _orjson.dumps(body, option=_orjson.OPT_NON_STR_KEYS | _orjson.OPT_SERIALIZE_NUMPY)
        except TypeError:  # e.g. an integer beyond 64 bits: let json say what it can
            pass
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


def _log_line(fields: dict[str, Any]) -> str:
    if _orjson is not None:
        try:
            return _orjson.dumps(fields, default=str, option=_orjson.OPT_NON_STR_KEYS).decode()
        except TypeError:
            pass
    return json.dumps(fields, default=str)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_dumps(body), status, headers, media_type=_JSON)


# Request ids are unguessable (128 random bits): feedback is keyed by them, so a client must not
# be able to predict another client's id and attach false ground truth to its predictions.
# os.urandom costs a system call; one call fills ids for 256 requests. The pool belongs to the
# process that drew it (a forked worker draws its own, so workers never share ids).
_RID_BYTES = 16
_rid_pool = {"pid": -1, "buf": b"", "pos": 0}


def _new_rid() -> str:
    pool = _rid_pool
    pos = pool["pos"]
    if pos >= len(pool["buf"]) or pool["pid"] != os.getpid():
        pool["pid"], pool["buf"], pos = os.getpid(), secrets.token_bytes(_RID_BYTES * 256), 0
    pool["pos"] = pos + _RID_BYTES
    return pool["buf"][pos:pos + _RID_BYTES].hex()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, and any ``extra={"fields": {...}}``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "info") -> None:
    """JSON lines on stderr for the ``fulcrum.serve`` loggers (once per process)."""
    logger = logging.getLogger("fulcrum.serve")
    if not any(getattr(h, "_fulcrum", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler._fulcrum = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(level.upper())


class AccessLog:
    """The JSON access log: one line per request, buffered and written to stderr in one call per
    flush (a logging record and a write per request cost more than the rest of a small request).
    Flushed every poll interval, when 256 lines are waiting, and at shutdown."""

    def __init__(self, max_lines: int = 256) -> None:
        self.max_lines = max_lines
        self._buf: list[str] = []
        self._second = -1
        self._stamp = ""

    def write(self, fields: dict[str, Any]) -> None:
        now = time.time()
        second = int(now)
        if second != self._second:  # strftime once a second, not once a request
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        fields["ts"] = f"{self._stamp}.{int(now % 1 * 1000):03d}Z"
        self._buf.append(_log_line(fields))
        if len(self._buf) >= self.max_lines:
            self.flush()

    def flush(self) -> None:
        if not self._buf:
            return
        lines, self._buf = self._buf, []
        try:
            sys.stderr.write("\n".join(lines) + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):  # stderr closed: drop the lines rather than fail requests
            pass


# --------------------------------------------------------------------------- state


class ServerState:
    """Everything one app owns: registry, models, auth, limits, metrics, usage, feedback."""

    def __init__(self, refs: list[str], settings: ServeSettings, registry: Any) -> None:
        self.settings = settings
        self.registry = registry
        self.metrics = ServeMetrics()
        self.usage = UsageCounter()
        self.keys = KeyStore(registry)
        self.auth = Authenticator.from_store(self.keys)  # keyed for good once any key ever existed
        self.limiter = RateLimiter(settings.rate_limit, settings.rate_burst)
        # Serving records (inputs, predictions, feedback, usage, monitor snapshots) go to their own
        # bounded database, never to the registry index.
        self.records_db = records_path(registry, settings.records_db)
        self.record_policy = RecordPolicy(settings.record if settings.feedback else "none",
                                          max_rows=settings.record_max_rows, max_mb=settings.record_max_mb)
        # created (and checked writable) before the first request; records an older Fulcrum left in
        # the registry index move in now, within this server's bounds
        connect_records(self.records_db, registry=registry, max_rows=settings.record_max_rows,
                        max_mb=settings.record_max_mb).close()
        self.recorder = (Recorder(self.records_db, registry=registry, policy=self.record_policy)
                         if self.record_policy.records else None)
        self.access = AccessLog() if settings.access_log else None
        self._request_children: dict[tuple[str, str, str, int], tuple[Any, Any]] = {}
        self._batch_children: dict[tuple[str, int], tuple[Any, ...]] = {}
        self.models = ModelSet(
            registry, refs, settings,
            on_batch=self._on_batch, on_loaded=self._on_loaded, on_failed=self._on_failed, on_retired=self._on_retired,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._openapi: tuple[int, dict[str, Any]] | None = None
        self._flush_lock = threading.Lock()

    # Labelled metric children, looked up once (a labels() call costs more than the increment).
    def request_metrics(self, model: str, version: str, route: str, status: int) -> tuple[Any, Any]:
        key = (model, version, route, status)
        pair = self._request_children.get(key)
        if pair is None:
            if len(self._request_children) > 4096:  # bounded: names come from served models only
                self._request_children.clear()
            m = self.metrics
            pair = (m.requests.labels(model, version, route, str(status)),
                    m.latency.labels(model, route) if model else None)
            self._request_children[key] = pair
        return pair

    def _batch_metrics(self, model: ServedModel) -> tuple[Any, ...]:
        key = (model.name, model.version)
        children = self._batch_children.get(key)
        if children is None:
            m, v = model.name, str(model.version)
            mt = self.metrics
            children = (mt.batch_size.labels(m, v), mt.batch_seconds.labels(m, v), mt.predictions.labels(m, v),
                        mt.compute_seconds.labels(m, v), mt.queue_depth.labels(m, v))
            self._batch_children[key] = children
        return children

    # model set callbacks
    def _on_batch(self, model: ServedModel, n_req: int, rows: int, seconds: float) -> None:
        size, compute, predictions, compute_total, depth = self._batch_metrics(model)
        size.observe(rows)
        compute.observe(seconds)
        predictions.inc(rows)
        compute_total.inc(seconds)
        depth.set(model.batcher.depth)
        self.usage.add(model.name, model.version, n_req, rows, seconds)

    def _on_loaded(self, model: ServedModel) -> None:
        v = str(model.version)
        self._batch_children.pop((model.name, model.version), None)
        self.metrics.load_seconds.labels(model.name, v).set(model.load_seconds)
        self.metrics.loaded.labels(model.name, v).set(1)
        self.metrics.queue_depth.labels(model.name, v).set(0)
        if model.monitor is not None:
            ood_rows = self.metrics.ood_rows.labels(model.name, v)
            ood_score = self.metrics.ood_score.labels(model.name, v)
            threshold = model.monitor.ood_threshold

            def on_scores(scores: Any) -> None:  # per batch, from wherever the batch ran
                hits = int((scores >= threshold).sum())
                if hits:
                    ood_rows.inc(hits)
                for x in scores.tolist():
                    ood_score.observe(x)

            model.on_scores = on_scores

    def _on_failed(self, name: str, version: int, msg: str) -> None:
        self.metrics.load_failures.labels(name, str(version)).inc()

    def _on_retired(self, model: ServedModel) -> None:
        self._batch_children.pop((model.name, model.version), None)
        self.metrics.forget(model.name, str(model.version))

    # background work
    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._poll(), name="fulcrum-poll"))

    async def _poll(self) -> None:
        s = self.settings
        last_flush = time.monotonic()
        while True:
            try:
                if self.access is not None:
                    self.access.flush()
                await self.models.refresh()
                self.auth.update(await asyncio.to_thread(self.keys.active))
                await asyncio.to_thread(self._monitor_metrics)
                if time.monotonic() - last_flush >= s.usage_flush_s:
                    last_flush = time.monotonic()
                    await asyncio.to_thread(self.flush)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the poller must survive a locked or missing DB
                log.exception("registry poll failed; retrying")
            await asyncio.sleep(s.poll_interval_s)

    def _monitor_metrics(self) -> None:
        for model in list(self.models.loaded.values()):
            v = str(model.version)
            self.metrics.queue_depth.labels(model.name, v).set(model.batcher.depth if model.batcher else 0)
            if model.monitor is None:
                continue
            try:
                snap = model.monitor.snapshot()
            except Exception:  # noqa: BLE001
                continue
            rate = (snap.get("ood") or {}).get("rate")
            if isinstance(rate, (int, float)):
                self.metrics.ood_rate.labels(model.name, v).set(rate)
            for col, d in (snap.get("drift") or {}).items():
                psi = d.get("psi") if isinstance(d, dict) else None
                if isinstance(psi, (int, float)):
                    self.metrics.drift.labels(model.name, v, col).set(psi)

    def flush(self, models: list[ServedModel] | None = None) -> None:
        """Persist usage deltas and the monitor snapshots of ``models`` (default: those loaded) to
        the serving-records DB. One flush at a time, so the newest snapshot saved is the newest taken."""
        with self._flush_lock:
            self._flush(list(self.models.loaded.values()) if models is None else models)

    def _flush(self, models: list[ServedModel]) -> None:
        try:
            self.usage.flush(self.records_db)
        except Exception:  # noqa: BLE001
            log.exception("could not persist serving usage; will retry")
        monitored = [m for m in models if m.monitor is not None]
        if monitored:
            try:
                conn = connect_records(self.records_db)
                try:
                    for model in monitored:
                        model.monitor.save_snapshot(conn, model.name, model.version)
                finally:
                    conn.close()
            except Exception:  # noqa: BLE001
                log.exception("could not save monitor snapshots")

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        served = list(self.models.loaded.values())
        await self.models.close()  # answers what is queued: observed too
        await asyncio.to_thread(self.flush, served)  # the last snapshots of what was served
        if self.access is not None:
            self.access.flush()
        if self.recorder is not None:
            await asyncio.to_thread(self.recorder.close)


# --------------------------------------------------------------------------- edge middleware


_OPEN_PATHS = ("/v2/health/",)


def _ui_open(path: str) -> bool:
    """The dashboard's pages and static files hold no data: open like health (its /ui/api JSON is not)."""
    return (path == "/ui" or path.startswith("/ui/")) and not path.startswith("/ui/api")
_REFUSAL_REASON = {401: "auth", 403: "auth", 413: "body_size", 429: "rate"}
Handler = Callable[[dict[str, Any], Any, dict[str, Any], str, Any], Awaitable[tuple[int, bytes, "dict[str, str] | None"]]]


class _App(FastAPI):
    """FastAPI with :class:`_Edge` outside its whole middleware stack: the edge answers the
    inference routes itself and hands every other request to FastAPI."""

    edge: _Edge | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        edge = self.edge
        if edge is None or scope["type"] != "http":
            await super().__call__(scope, receive, send)
        else:
            await edge(scope, receive, send)


async def _send_json(send: Any, status: int, body: bytes, headers: dict[str, str] | None, rid: str) -> None:
    raw = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json"),
           (b"x-request-id", rid.encode())]
    if headers:
        raw.extend((k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in headers.items())
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _connected(receive: Any) -> Callable[[], bool] | None:
    """A plain function that says whether the client is still connected, read from the HTTP
    server's own flag (uvicorn's request cycle, whose method ``receive`` is, sets ``disconnected``
    when the connection drops): asking costs no event-loop turn. None where there is no flag."""
    cycle = getattr(receive, "__self__", None)
    if cycle is None or not hasattr(cycle, "disconnected"):
        return None
    return lambda: not cycle.disconnected


async def _receive_body(receive: Any, limit: int) -> bytes:
    """The whole request body; ServeError 413 past ``limit`` bytes, 499 if the client left."""
    message = await receive()
    if message["type"] != "http.request":
        raise ServeError("Client disconnected before sending its body.", 499)
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise ServeError(f"Request body exceeds the limit of {limit} bytes.", 413)
        return body
    chunks = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] != "http.request":
            raise ServeError("Client disconnected before sending its body.", 499)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ServeError(f"Request body exceeds the limit of {limit} bytes.", 413)
        chunks.append(chunk)
    return b"".join(chunks)


class _Edge:
    """Request id, body limit, auth, rate limit, metrics and access log around every request.

    ``fast(method, path)`` names the handler of an inference route (or None): those requests are
    answered here as raw ASGI, without the framework's routing, request and response objects;
    the rest go to ``app``.
    """

    def __init__(self, app: Any, state: ServerState) -> None:
        self.app = app
        self.state = state
        self.fast: Callable[[str, str], tuple[Handler, Any] | None] | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        st = self.state
        start = time.perf_counter()
        headers: dict[str, str] = {}
        for k, v in scope["headers"]:
            headers[k.decode("latin-1")] = v.decode("latin-1")
        rid = headers.get("x-request-id")
        if rid is None or not _REQUEST_ID.match(rid):
            rid = _new_rid()
        info: dict[str, Any] = scope.setdefault("state", {})
        info["request_id"] = rid
        info["t0"] = start
        path: str = scope["path"]
        status_box = [500]
        try:
            refusal = self._refuse(scope, headers, path, info)
            if refusal is not None:
                status_box[0] = refusal[0]
                await _send_json(send, refusal[0], refusal[1], refusal[2], rid)
                return
            route = self.fast(scope["method"], path) if self.fast is not None else None
            if route is not None:
                status, body, extra = await route[0](scope, receive, info, rid, route[1])
                status_box[0] = status
                await _send_json(send, status, body, extra, rid)
                return
            rid_header = (b"x-request-id", rid.encode())

            async def send_wrapper(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    status_box[0] = message["status"]
                    message["headers"] = [*message.get("headers", []), rid_header]
                await send(message)

            await self.app(scope, self._limited_receive(receive, st.settings.max_body_bytes), send_wrapper)
        finally:
            self._account(scope, info, status_box[0], time.perf_counter() - start, rid)

    def _refuse(self, scope: dict[str, Any], headers: dict[str, str], path: str,
                info: dict[str, Any]) -> tuple[int, bytes, dict[str, str] | None] | None:
        st = self.state
        try:
            if path.startswith(_OPEN_PATHS) or _ui_open(path):
                return None
            scope_needed = "admin" if path.startswith("/admin") else "predict"
            key_id = st.auth.check(headers, scope_needed)
            info["key_id"] = key_id
            length = headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > st.settings.max_body_bytes:
                raise ServeError(f"Request body of {length} bytes exceeds the limit of {st.settings.max_body_bytes}.", 413)
            if st.limiter.enabled:
                client = scope.get("client")
                st.limiter.take(key_id or (client[0] if client else "-"))
        except ServeError as exc:
            st.metrics.rejected.labels("", _REFUSAL_REASON.get(exc.http_status, "other")).inc()
            return exc.http_status, _dumps({"error": str(exc)}), exc.headers
        return None

    @staticmethod
    def _limited_receive(receive: Any, limit: int) -> Any:
        seen = [0]

        async def wrapped() -> dict[str, Any]:
            message = await receive()
            if message["type"] == "http.request":
                seen[0] += len(message.get("body", b""))
                if seen[0] > limit:
                    raise ServeError(f"Request body exceeds the limit of {limit} bytes.", 413)
            return message

        return wrapped

    def _account(self, scope: dict[str, Any], info: dict[str, Any], status: int, seconds: float, rid: str) -> None:
        st = self.state
        model = info.get("model", "")
        route = info.get("route", "other")
        version = info.get("version", "")
        try:
            requests, latency = st.request_metrics(model, version, route, status)
            requests.inc()
            if latency is not None:
                latency.observe(seconds)
        except Exception:  # noqa: BLE001
            pass
        if st.access is not None:
            client = scope.get("client")
            st.access.write({
                "level": "info", "logger": "fulcrum.serve.access", "msg": "request",
                "request_id": rid, "method": scope.get("method"), "path": scope.get("path"), "status": status,
                "duration_ms": round(seconds * 1000, 3), "model": model or None, "version": version or None,
                "rows": info.get("rows"), "client": client[0] if client else None, "key_id": info.get("key_id"),
            })


# --------------------------------------------------------------------------- app


class _AliasBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alias: str = Field(..., max_length=64)
    version: int = Field(..., ge=1)
    force: StrictBool = False  # move even to a version worse beyond noise (fulcrum promote --force)


class _FeedbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    id: str = Field(..., min_length=1, max_length=128)
    truth: Any
    row: int | None = Field(None, ge=0)


async def _read_body(request: Request) -> bytes:
    return await request.body()


def _error_parts(exc: BaseException, rid: str) -> tuple[int, bytes, dict[str, str] | None]:
    """(status, JSON body, headers) of the error answer to ``exc``."""
    if isinstance(exc, FulcrumError):
        status = int(getattr(exc, "http_status", 500))
        body: dict[str, Any] = {"error": str(exc)}
        detail = getattr(exc, "detail", None)
        if detail is not None:
            body["detail"] = detail
        headers = dict(getattr(exc, "headers", {}) or {})
        if status >= 500 and not isinstance(exc, ServeError):
            log.error("request %s failed: %s", rid, exc, exc_info=exc)
        return status, _dumps(body), headers
    log.error("request %s failed unexpectedly", rid, exc_info=exc)
    return 500, _dumps({"error": f"Internal error; quote request id {rid} when reporting it."}), None


def _error_response(exc: BaseException, rid: str) -> Response:
    status, body, headers = _error_parts(exc, rid)
    return Response(body, status, headers, media_type=_JSON)


def create_app(
    refs: list[str] | tuple[str, ...] = (),
    settings: ServeSettings | None = None,
    *,
    registry: Any = None,
) -> FastAPI:
    """The ASGI app serving ``refs`` from ``registry`` (models load in the background after startup;
    ``/v2/health/ready`` turns true once all are loaded and warmed up)."""
    settings = settings or ServeSettings()
    if registry is None or not isinstance(registry, Registry):
        registry = Registry(registry if registry is not None else settings.registry)
    refs = list(refs)
    state = ServerState(refs, settings, registry)
    configure_logging(settings.log_level)

    def on_timeout(phase: str) -> None:  # a connection closed by a read bound (see _timeouts)
        state.metrics.timed_out.labels(phase).inc()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        await state.start()
        try:
            yield {TIMEOUT_HOOK: on_timeout}  # uvicorn hands the lifespan state to its protocol instances
        finally:
            await state.stop()

    app = _App(
        title="Fulcrum model server",
        version=__version__,
        description="KServe Open Inference Protocol v2 and a friendly JSON route for Fulcrum model packages.",
        lifespan=lifespan,
    )
    app.state.fulcrum = state
    install_docs(app)  # /docs and /redoc with locally served assets (no CDN)
    s = settings

    def _mark(request: Request, route: str, model: ServedModel | None = None, rows: int | None = None) -> None:
        info = request.scope.setdefault("state", {})
        info["route"] = route
        if model is not None:
            info["model"] = model.name
            info["version"] = str(model.version)
        if rows is not None:
            info["rows"] = rows

    def _rid(request: Request) -> str:
        return str(request.scope.get("state", {}).get("request_id") or _new_rid())

    def _admit(model: ServedModel) -> None:
        """Refuse at once (503) what the model's batcher would not admit, before parsing the body:
        under overload a refusal costs as little as possible."""
        try:
            model.batcher.admit()
        except ServeError:
            state.metrics.rejected.labels(model.name, "overload").inc()
            raise

    async def _compute(receive: Any, info: dict[str, Any], model: ServedModel, cols: Any, n: int) -> dict[str, Any]:
        # The deadline counts from the request's arrival at the edge, not from its reaching the queue.
        timeout = model.batcher.spec.timeout_s - (time.perf_counter() - info.get("t0", time.perf_counter()))
        try:
            if timeout <= 0:
                raise ServeError(f"Model {model.ref}: request deadline passed before it could be queued; retry.", 504)
            result: dict[str, Any] = await model.batcher.submit((cols, n), n, timeout=timeout,
                                                                alive=_connected(receive))
        except ServeError as exc:
            reason = {503: "overload", 504: "deadline", 499: "disconnected"}.get(exc.http_status)
            if reason:
                state.metrics.rejected.labels(model.name, reason).inc()
            raise
        return result  # OOD metrics are counted per batch (ServerState._on_loaded)

    # -- health and metadata ---------------------------------------------------

    @app.get("/v2/health/live", tags=["health"])
    async def live(request: Request) -> Response:
        _mark(request, "live")
        return _json({"live": True})

    @app.get("/v2/health/ready", tags=["health"])
    async def ready(request: Request) -> Response:
        _mark(request, "ready")
        ok = state.models.ready
        return _json({"ready": ok}, 200 if ok else 503)

    @app.get("/v2", tags=["v2"])
    async def server_metadata(request: Request) -> Response:
        _mark(request, "server_metadata")
        return _json({"name": "fulcrum", "version": __version__, "extensions": []})

    def _metadata(model: ServedModel) -> dict[str, Any]:
        outputs: list[dict[str, Any]] = []
        if model.classifier:
            k = len(model.labels)
            outputs = [{"name": model.label_output, "datatype": "BYTES", "shape": [-1]},
                       {"name": "probabilities", "datatype": "FP32", "shape": [-1, k]}]
        elif model.items:  # a recommender: (N, k) item ids and their scores
            outputs = [{"name": model.output_names[0], "datatype": "BYTES", "shape": [-1, -1]},
                       {"name": "scores", "datatype": "FP32", "shape": [-1, -1]}]
        else:  # values (FP64), or one string per row (a transcriber's text)
            outputs = [{"name": model.output_names[0], "datatype": "BYTES" if getattr(model, "text", False) else "FP64",
                        "shape": [-1]}]
        outputs += [{"name": n, "datatype": "BYTES", "shape": [-1]} for n in model.notes]  # per-row notes
        if "ood_score" in model.output_names:
            outputs.append({"name": "ood_score", "datatype": "FP32", "shape": [-1],
                            "parameters": {"threshold": model.ood_threshold}})
        return {
            "name": model.name,
            "versions": [str(v) for v in state.models.versions_of(model.name)],
            "platform": "fulcrum",
            "inputs": [{"name": f.name, "datatype": (tuple(f.v2) or column_datatypes(f.kind))[0],
                        "shape": [-1], "parameters": {"kind": f.kind, **{k: v for k, v in (f.limits or {}).items()}}}
                       for f in model.fields],
            "outputs": outputs,
            "parameters": {"version": str(model.version), "task": model.kind, "target": model.target,
                           "labels": [str(x) for x in model.labels], "max_rows": model.max_rows},
        }

    def _guarded(fn: Any) -> Any:
        """Turn any exception of a handler into a JSON error (FulcrumError keeps its status)."""
        import functools

        @functools.wraps(fn)
        async def wrapper(request: Request, *args: Any, **kwargs: Any) -> Response:
            try:
                return await fn(request, *args, **kwargs)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                return _error_response(exc, _rid(request))

        return wrapper

    @app.get("/v2/models/{name}", tags=["v2"])
    @_guarded
    async def model_metadata(request: Request, name: str) -> Response:
        model = state.models.resolve(name)
        _mark(request, "model_metadata", model)
        return _json(_metadata(model))

    @app.get("/v2/models/{name}/ready", tags=["v2"])
    @_guarded
    async def model_ready(request: Request, name: str) -> Response:
        model = state.models.resolve(name)
        _mark(request, "model_ready", model)
        return _json({"name": model.name, "ready": True})

    @app.get("/v2/models/{name}/versions/{version}", tags=["v2"])
    @_guarded
    async def version_metadata(request: Request, name: str, version: int) -> Response:
        model = state.models.resolve(f"{name}@{version}")
        _mark(request, "model_metadata", model)
        return _json(_metadata(model))

    @app.get("/v2/models/{name}/versions/{version}/ready", tags=["v2"])
    @_guarded
    async def version_ready(request: Request, name: str, version: int) -> Response:
        model = state.models.resolve(f"{name}@{version}")
        _mark(request, "model_ready", model)
        return _json({"name": model.name, "version": str(model.version), "ready": True})

    # -- inference -------------------------------------------------------------

    # The inference routes are answered by the edge as raw ASGI (see _Edge.fast): no routing,
    # request or response objects, no dependency solving on the hot path. Their OpenAPI entries
    # are built per model in _openapi; the Starlette routes below serve the same handlers to a
    # request the edge did not recognise (e.g. under a root path).
    limit = s.max_body_bytes
    recorder = state.recorder

    def _enter(info: dict[str, Any], route: str, model: ServedModel) -> None:
        info["route"] = route
        info["model"] = model.name
        info["version"] = model.version_str

    async def _predict(scope: dict[str, Any], receive: Any, info: dict[str, Any], rid: str,
                       name: str) -> tuple[int, bytes, dict[str, str] | None]:
        try:
            info["route"] = "predict"
            model = state.models.resolve(name)
            _enter(info, "predict", model)
            body = await _receive_body(receive, limit)
            _admit(model)
            upload = is_multipart(scope)
            files: list[str] = []
            if upload is not None:  # curl -F image=@photo.png: one row per file (see _upload)
                cols, n, files = await parse_upload(model, body, upload)
            else:
                cols, n = model.parse_predict(body)
            info["rows"] = n
            try:
                result = await _compute(receive, info, model, cols, n)
            except ServeError as exc:
                raise name_files(exc, files) from None
            out = {"id": rid, "model": model.name, "version": model.version,
                   **friendly_body(model, result, s.top_k, s.round_decimals)}
            if recorder is not None:
                recorder.put(model, rid, cols, n, result, len(body))
            return 200, _dumps(out), None
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001
            return _error_parts(exc, rid)

    async def _infer(scope: dict[str, Any], receive: Any, info: dict[str, Any], rid: str,
                     ref: str) -> tuple[int, bytes, dict[str, str] | None]:
        try:
            info["route"] = "infer"
            model = state.models.resolve(ref)
            _enter(info, "infer", model)
            body = await _receive_body(receive, limit)
            _admit(model)
            cols, n, req = model.parse_infer(body)
            info["rows"] = n
            result = await _compute(receive, info, model, cols, n)
            requested = [o.name for o in req.outputs] if req.outputs else None
            out = {
                "model_name": model.name,
                "model_version": model.version_str,
                "id": req.id or rid,
                "outputs": v2_outputs(model, result, requested, s.top_k, s.round_decimals),
            }
            if recorder is not None:
                recorder.put(model, req.id or rid, cols, n, result, len(body))
            return 200, _dumps(out), None
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001
            return _error_parts(exc, rid)

    def fast(method: str, path: str) -> tuple[Handler, Any] | None:
        """The handler of POST /v1/models/{name}/predict, /v2/models/{name}[/versions/{v}]/infer."""
        if method != "POST":
            return None
        if path.startswith("/v1/models/") and path.endswith("/predict"):
            name = path[11:-8]
            if name and "/" not in name:
                return _predict, name
        elif path.startswith("/v2/models/") and path.endswith("/infer"):
            ref = path[11:-6]
            if ref and "/" not in ref:
                return _infer, ref
            name, sep, version = ref.partition("/versions/")
            if sep and name and "/" not in name and version.isascii() and version.isdigit():
                return _infer, f"{name}@{int(version)}"
        return None

    async def _as_route(request: Request, handler: Handler, arg: Any) -> Response:
        info = request.scope.setdefault("state", {})
        rid = _rid(request)
        status, body, headers = await handler(request.scope, request.receive, info, rid, arg)
        return Response(body, status, headers, media_type=_JSON)

    async def predict(request: Request) -> Response:
        return await _as_route(request, _predict, request.path_params["name"])

    async def infer(request: Request) -> Response:
        p = request.path_params
        return await _as_route(request, _infer, p["name"] if "version" not in p else f"{p['name']}@{p['version']}")

    from starlette.routing import Route

    app.router.routes[:0] = [
        Route("/v1/models/{name}/predict", predict, methods=["POST"]),
        Route("/v2/models/{name}/infer", infer, methods=["POST"]),
        Route("/v2/models/{name}/versions/{version:int}/infer", infer, methods=["POST"]),
    ]

    # -- feedback and monitors -------------------------------------------------

    @app.get("/v1/models", tags=["v1"])
    @_guarded
    async def list_models(request: Request) -> Response:
        _mark(request, "list_models")
        pins = {p.ref: state.models.serving.get(p) for p in state.models.pins}
        loaded = [{"name": m.name, "version": m.version, "task": m.kind, "queue": m.batcher.depth,
                   "load_seconds": round(m.load_seconds, 4)} for m in state.models.loaded.values()]
        return _json({"references": pins, "loaded": loaded, "ready": state.models.ready})

    @app.post("/v2/models/{name}/feedback", tags=["v2"])
    @app.post("/v1/models/{name}/feedback", tags=["v1"])
    @_guarded
    async def feedback(request: Request, name: str, body: _FeedbackBody) -> Response:
        model = state.models.resolve(name)
        _mark(request, "feedback", model)
        if state.recorder is None:
            raise ServeError(
                "This server records no requests (--record none), so feedback has no prediction to attach to; "
                "restart it with --record all or --record sample:RATE.", 404)
        await asyncio.to_thread(state.recorder.drain)
        try:
            stored = await asyncio.to_thread(state.recorder.store.add_feedback, model.name, body.id, body.truth, body.row)
        except NotFoundError as exc:
            raise NotFoundError(f"{exc} This server records {state.record_policy.describe()}.") from None
        return _json(stored)

    @app.get("/v1/models/{name}/metric", tags=["v1"])
    @_guarded
    async def live_metric(request: Request, name: str, version: int | None = None) -> Response:
        model = state.models.resolve(name)
        _mark(request, "metric", model)
        if state.recorder is not None:
            return _json(await asyncio.to_thread(state.recorder.store.live_metric, model.name, version))

        def read() -> dict[str, Any]:  # records kept from earlier, when this server records none
            with FeedbackStore(state.records_db, registry=state.registry) as store:
                return store.live_metric(model.name, version)

        return _json(await asyncio.to_thread(read))

    @app.get("/v1/models/{name}/monitor", tags=["v1"])
    @_guarded
    async def monitor(request: Request, name: str) -> Response:
        model = state.models.resolve(name)
        _mark(request, "monitor", model)
        if model.monitor is None:
            raise ServeError(f"No monitor for {model.ref} (the package has no profile, or monitoring is off).", 404)
        snap = await asyncio.to_thread(model.monitor.snapshot)
        return Response(json.dumps(snap, default=str), media_type=_JSON)

    @app.get("/metrics", tags=["metrics"])
    async def metrics(request: Request) -> Response:
        _mark(request, "metrics")
        return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    # -- admin -----------------------------------------------------------------

    if s.enable_admin:

        @app.get("/admin/models", tags=["admin"])
        @_guarded
        async def admin_models(request: Request) -> Response:
            _mark(request, "admin")
            m = state.models
            return _json({
                "pins": {p.ref: m.serving.get(p) for p in m.pins},
                "loaded": [k[0] + "@" + str(k[1]) for k in m.loaded],
                "failed": {f"{n}@{v}": why for (n, v), (_, why) in m.failed.items()},
                "unresolved": {p.ref: why for p, why in m.unresolved.items()},
            })

        @app.post("/admin/models/{name}/alias", tags=["admin"])
        @_guarded
        async def admin_alias(request: Request, name: str, body: _AliasBody) -> Response:
            _mark(request, "admin")
            model, result = await state.models.set_alias(name, body.alias, body.version, force=body.force)
            return _json({**promotion_summary(result), "name": model.name, "alias": body.alias,
                          "version": model.version, "load_seconds": round(model.load_seconds, 4)})

        @app.post("/admin/models/{ref}/load", tags=["admin"])
        @_guarded
        async def admin_load(request: Request, ref: str) -> Response:
            _mark(request, "admin")
            model = await state.models.add_pin(ref)
            return _json({"ref": ref, "name": model.name, "version": model.version})

        @app.post("/admin/models/{ref}/unload", tags=["admin"])
        @_guarded
        async def admin_unload(request: Request, ref: str) -> Response:
            _mark(request, "admin")
            await state.models.remove_pin(ref)
            return _json({"ref": ref, "unloaded": True})

    from fastapi.exceptions import RequestValidationError

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
        return _json({"error": "Request does not match the route's schema.", "detail": detail}, 422)

    @app.exception_handler(ServeError)
    async def _serve_error(request: Request, exc: ServeError) -> Response:  # e.g. 413 raised while reading the body
        return _error_response(exc, _rid(request))

    from ..ui import create_ui_app  # the read-only dashboard at /ui (its JSON checked by the edge like any route)

    app.mount("/ui", create_ui_app(registry, state=state))
    app.openapi = lambda: _openapi(app, state)  # type: ignore[method-assign]
    app.edge = _Edge(functools.partial(FastAPI.__call__, app), state)
    app.edge.fast = fast
    return app


# --------------------------------------------------------------------------- OpenAPI


def _openapi(app: FastAPI, state: ServerState) -> dict[str, Any]:
    """The static routes plus, per served model, its predict and infer routes with request
    schemas built from the package's input schema (rebuilt when a swap changes a version)."""
    gen = state.models.generation
    if state._openapi is not None and state._openapi[0] == gen:
        return state._openapi[1]
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    comps = doc.setdefault("components", {})
    schemas = comps.setdefault("schemas", {})
    comps["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "API key as 'Authorization: Bearer KEY'"},
        "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    }
    doc["security"] = [{"bearer": []}, {"apiKey": []}, {}]
    for path, ops in doc.get("paths", {}).items():
        if path.startswith("/v2/health/"):
            for op in ops.values():
                op["security"] = []
    error = {"description": "Error", "content": {_JSON: {"schema": {"$ref": "#/components/schemas/Error"}}}}
    schemas["Error"] = {"type": "object", "properties": {"error": {"type": "string"}, "detail": {"type": "array"}},
                        "required": ["error"]}
    errors = {str(c): error for c in (401, 403, 404, 413, 422, 429, 503, 504)}
    for name in state.models.names():
        model = state.models.default(name)
        if model is None:
            continue
        for pyd, route, summary in (
            (model.predict_model, f"/v1/models/{name}/predict", f"Predict with {name} (records in, predictions out)"),
            (model.infer_model, f"/v2/models/{name}/infer", f"KServe v2 inference with {name}"),
        ):
            js = pyd.model_json_schema(ref_template="#/components/schemas/{model}")
            for key, sub in js.pop("$defs", {}).items():
                schemas[key] = sub
            schemas[pyd.__name__] = js
            body = {_JSON: {"schema": {"$ref": f"#/components/schemas/{pyd.__name__}"}}}
            files = [f for f in model.fields if f.kind in ("image", "audio")]
            if route.startswith("/v1") and len(files) == 1:  # multipart upload: one row per file (_upload)
                body["multipart/form-data"] = {"schema": {"type": "object", "properties": {files[0].name: {
                    "type": "array", "items": {"type": "string", "format": "binary"},
                    "description": f"{files[0].kind} file(s), one row each (curl -F {files[0].name}=@FILE)"}}}}
            doc["paths"][route] = {"post": {
                "summary": summary,
                "operationId": f"{route.strip('/').replace('/', '_')}",
                "tags": ["v1" if route.startswith("/v1") else "v2"],
                "requestBody": {"required": True, "content": body},
                "responses": {"200": {"description": "Predictions", "content": {_JSON: {"schema": {"type": "object"}}}},
                              **errors},
            }}
    state._openapi = (gen, doc)
    return doc
