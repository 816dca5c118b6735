"""Where the live page's figures come from: the serving app itself (mounted), a running server
over HTTP (``fulcrum ui --server URL``), or only what servers saved (the serving records)."""

from __future__ import annotations

import collections
import os
import threading
import time
from typing import Any

from ..errors import NotFoundError, ServeError
from ._data import clean, monitor_history, snapshot_point
from ._live import LiveSampler

__all__ = ["LiveSource"]

NOTE_NO_SERVER = ("request rate, latency, batch sizes and status counts live in the serving process: open /ui/live "
                  "on `fulcrum serve` (it mounts this dashboard), or start `fulcrum ui --server URL`; below is what "
                  "servers saved to the serving records")


class LiveSource:
    def __init__(self, registry: Any, *, state: Any = None, server: str | None = None, server_key: str | None = None,
                 records_db: Any = None) -> None:
        from ..serve._records import records_path

        self.registry = registry
        self.state = state
        self.server = server.rstrip("/") if server else None
        self._headers = {"authorization": f"Bearer {server_key}"} if server_key else {}
        self.records_db = state.records_db if state is not None else records_path(registry, records_db)
        self._client: Any = None
        self._lock = threading.Lock()
        self._points: dict[tuple[str, int], collections.deque[dict[str, Any]]] = {}
        self._last_point: dict[tuple[str, int], float] = {}
        if state is not None:
            self.sampler: LiveSampler | None = LiveSampler(lambda: state.metrics.registry.collect())
        elif self.server:
            self.sampler = LiveSampler(self._scrape)
        else:
            self.sampler = None

    # -- remote server ----------------------------------------------------------

    def _get(self, path: str, **params: Any) -> Any:
        import httpx

        if self._client is None:
            self._client = httpx.Client(timeout=5.0, headers=self._headers)
        try:
            r = self._client.get(self.server + path, params={k: v for k, v in params.items() if v is not None})
        except httpx.HTTPError as exc:
            raise ServeError(f"Cannot reach the server {self.server} ({exc}); is `fulcrum serve` running there?", 502) from None
        if r.status_code in (401, 403):
            raise ServeError(f"The server {self.server} refused the dashboard ({r.status_code}); pass its API key with "
                             "`fulcrum ui --server-key KEY` (or FULCRUM_SERVER_KEY).", 502)
        return r

    def _scrape(self) -> Any:
        from prometheus_client.parser import text_string_to_metric_families

        r = self._get("/metrics")
        if r.status_code != 200:
            raise ServeError(f"{self.server}/metrics answered {r.status_code}.", 502)
        return list(text_string_to_metric_families(r.text))

    # -- reading ------------------------------------------------------------------

    def _served(self) -> list[str]:
        if self.state is not None:
            return [f"{n}@{v}" for n, v in sorted(self.state.models.loaded)]
        if self.server:
            body = self._get("/v1/models").json()
            return [f"{m['name']}@{m['version']}" for m in body.get("loaded", [])]
        return []

    def _resolve(self, ref: str | None, served: list[str]) -> tuple[str, int]:
        if self.state is not None:
            if ref is None:
                if not served:
                    raise NotFoundError("The server has no model loaded yet.")
                ref = served[0]
            model = self.state.models.resolve(ref)
            return model.name, int(model.version)
        if ref is None:
            if served:
                ref = served[0]
            else:
                names = self.registry.names()
                if not names:
                    raise NotFoundError(f"Registry {self.registry.root} holds no model yet; train one with `fulcrum train`.")
                ref = names[0]
        return self.registry.resolve(ref)

    def _snapshot(self, name: str, version: int) -> dict[str, Any] | None:
        if self.state is not None:
            model = self.state.models.loaded.get((name, version))
            if model is not None and model.monitor is not None:
                return model.monitor.snapshot()
            return None
        if self.server:
            r = self._get(f"/v1/models/{name}@{version}/monitor")
            return r.json() if r.status_code == 200 else None
        if not os.path.isfile(self.records_db):
            return None
        import sqlite3
        from contextlib import closing

        from ..serve._monitor import load_latest_snapshot

        with closing(sqlite3.connect(f"file:{self.records_db}?mode=ro", uri=True, timeout=10)) as conn:
            return load_latest_snapshot(conn, name, version)

    def _live_metric(self, name: str, version: int) -> dict[str, Any] | None:
        if self.state is not None and self.state.recorder is not None:
            return self.state.recorder.store.live_metric(name, version)
        if self.server:
            r = self._get(f"/v1/models/{name}/metric", version=version)
            return r.json() if r.status_code == 200 else None
        if not os.path.isfile(self.records_db):
            return None
        from ..serve._feedback import FeedbackStore

        with FeedbackStore(self.records_db, registry=self.registry) as store:
            return store.live_metric(name, version)

    def read(self, ref: str | None) -> dict[str, Any]:
        from ..costs._ledger import live_usage

        served = self._served()
        name, version = self._resolve(ref, served)
        snap = self._snapshot(name, version)
        key = (name, version)
        history = monitor_history(self.records_db, name, version)
        with self._lock:  # the points this dashboard saw itself, newer than what the server saved
            points = self._points.setdefault(key, collections.deque(maxlen=720))
            now = time.monotonic()
            if snap is not None and now - self._last_point.get(key, 0.0) >= 1.0:
                self._last_point[key] = now
                points.append(snapshot_point(snap))
            seen = list(points)
        last_saved = history[-1]["created"] if history else ""
        history += [p for p in seen if str(p.get("created") or "") > str(last_saved)]
        trained = {}
        try:
            m = self.registry.load(f"{name}@{version}", verify=False).manifest
            trained = (m.get("metrics") or {}).get("primary") or {}
        except Exception:  # noqa: BLE001 - a version no longer in the registry: no training figure
            pass
        return clean({
            "ref": f"{name}@{version}", "served": served,
            "source": "in-process" if self.state is not None else ("server " + self.server if self.server else "records"),
            "note": None if self.sampler is not None else NOTE_NO_SERVER,
            "requests": self.sampler.sample(name) if self.sampler is not None else None,
            "monitor": None if snap is None else {
                "status": snap.get("status"), "window": snap.get("window"), "ood": snap.get("ood"),
                "psi_threshold": snap.get("psi_threshold"), "drifted": snap.get("drifted_columns"),
                "drift": {col: {"psi": d.get("psi"), "status": d.get("status"), "kind": d.get("kind"), "n": d.get("n")}
                          for col, d in (snap.get("drift") or {}).items() if isinstance(d, dict)}},
            "history": history,
            "live_metric": self._live_metric(name, version),
            "trained_metric": trained,
            "usage": live_usage(self.registry, name, version, self.records_db),
        })
