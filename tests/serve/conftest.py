"""Serving fixtures: small models trained once per session, a fresh registry copy per test, and a
real uvicorn server on 127.0.0.1 (a free port) in a background thread."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

PENGUIN_ROW = {"island": "Biscoe", "bill_length_mm": 45.1, "bill_depth_mm": 14.5, "flipper_length_mm": 215.0,
               "body_mass_g": 5000.0, "sex": "female", "year": 2008}


@pytest.fixture(scope="session")
def template_registry(tmp_path_factory) -> Path:
    """penguins@1, penguins@2 (MLPs, 2 epochs) and iris@1 (linear), trained once."""
    import fulcrum
    from fulcrum.artifact import Registry

    root = tmp_path_factory.mktemp("serve-registry") / "registry"
    reg = Registry(root)
    for seed in (0, 1):
        fulcrum.train("builtin:penguins", name="penguins", model="mlp", epochs=2, hidden_sizes=[16], seed=seed,
                      progress=False, registry=reg)
    fulcrum.train("builtin:iris", name="iris", model="linear", progress=False, registry=reg)
    reg.set_alias("penguins@1", "production")
    return root


@pytest.fixture
def registry(template_registry, tmp_path):
    from fulcrum.artifact import Registry

    root = tmp_path / "registry"
    shutil.copytree(template_registry, root)
    return Registry(root)


class LiveServer:
    """uvicorn serving ``app`` on 127.0.0.1 (a free port) in a daemon thread; ``url`` once started.

    The server runs the configuration ``fulcrum serve`` runs (``fulcrum.serve._server.uvicorn_config``:
    Fulcrum's bounded HTTP protocol with the app's header, body and keep-alive timeouts)."""

    def __init__(self, app: Any, *, ssl_certfile: str | None = None, ssl_keyfile: str | None = None) -> None:
        import uvicorn

        from fulcrum.serve._server import uvicorn_config

        self.app = app
        settings = app.state.fulcrum.settings
        self.config = uvicorn_config(app, settings, host="127.0.0.1", port=0, log_level="warning",
                                     ssl_certfile=ssl_certfile or settings.ssl_certfile,
                                     ssl_keyfile=ssl_keyfile or settings.ssl_keyfile)
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.scheme = "https" if ssl_certfile else "http"
        self.url = ""

    @property
    def state(self) -> Any:
        return self.app.state.fulcrum

    def start(self, *, ready: bool = True, timeout: float = 60.0) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"{self.scheme}://127.0.0.1:{port}"
        if ready:
            self.wait_ready(deadline - time.monotonic())
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.state.models.ready:
            if time.monotonic() > deadline:
                raise RuntimeError(f"models never became ready: {self.state.models.failed} {self.state.models.unresolved}")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kw)


@pytest.fixture
def serve(registry):
    """``serve(refs, **settings) -> LiveServer`` (started, models ready); stopped after the test."""
    from fulcrum.serve import ServeSettings, create_app

    servers: list[LiveServer] = []

    def start(refs=("penguins",), *, ready: bool = True, ssl: tuple[str, str] | None = None, **settings: Any) -> LiveServer:
        settings.setdefault("poll_interval_s", 0.2)
        settings.setdefault("access_log", False)
        app = create_app(list(refs), ServeSettings(**settings), registry=registry)
        srv = LiveServer(app, ssl_certfile=ssl[0] if ssl else None, ssl_keyfile=ssl[1] if ssl else None)
        servers.append(srv)
        return srv.start(ready=ready)

    yield start
    for srv in servers:
        srv.stop()


def v2_request(row: dict[str, Any], n: int = 1, columns: list[dict[str, str]] | None = None) -> dict[str, Any]:
    kinds = {c["name"]: c["kind"] for c in columns} if columns else {}
    inputs = []
    for name, value in row.items():
        numeric = kinds.get(name, "numeric" if isinstance(value, (int, float)) else "categorical") == "numeric"
        inputs.append({"name": name, "datatype": "FP64" if numeric else "BYTES", "shape": [n], "data": [value] * n})
    return {"inputs": inputs}
