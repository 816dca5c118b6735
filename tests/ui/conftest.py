"""Dashboard fixtures: a real registry of small trained packages (trained once per session), a
copy per module, and a real dashboard server on 127.0.0.1 (a free port) in a background thread."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

XSS_COLUMN = "<img src=x onerror=alert(1)>"
XSS_LABEL = "<script>alert(1)</script>"
PENGUIN_ROW = {"island": "Biscoe", "bill_length_mm": 45.1, "bill_depth_mm": 14.5, "flipper_length_mm": 215.0,
               "body_mass_g": 5000.0, "sex": "female", "year": 2008}


@pytest.fixture(scope="session")
def ui_template(tmp_path_factory) -> Path:
    """penguins@1 (MLP, 3 epochs unless FULCRUM_UI_EPOCHS; onnx-fp32 and int8-dynamic measured), penguins@2 (linear),
    penguins@3 (penguins@1's int8-dynamic variant as a version, alias candidate), production -> 1,
    and xss@1: a column and a class label that are HTML."""
    import fulcrum
    from fulcrum.artifact import Registry
    from fulcrum.optimize._variants import optimize_package, promote_variant

    base = tmp_path_factory.mktemp("ui-registry")
    reg = Registry(base / "registry")
    # FULCRUM_UI_EPOCHS: a longer-trained MLP for the README's screenshots (3 epochs keep the suite fast)
    epochs = int(os.environ.get("FULCRUM_UI_EPOCHS") or 3)
    fulcrum.train("builtin:penguins", name="penguins", model="mlp", epochs=epochs, hidden_sizes=[16], seed=0,
                  progress=False, registry=reg)
    fulcrum.train("builtin:penguins", name="penguins", model="linear", progress=False, registry=reg)
    optimize_package("penguins@1", registry=reg, variants=["onnx-fp32", "int8-dynamic"])
    promote_variant(reg, "penguins@1", "int8-dynamic", "candidate", {"why": "test"}, log=None)
    reg.set_alias("penguins@1", "production")
    rng = np.random.default_rng(0)
    x = rng.normal(size=160)
    frame = pd.DataFrame({XSS_COLUMN: x, "b": rng.normal(size=160), "kind": np.where(x > 0, XSS_LABEL, "plain")})
    frame.to_csv(base / "xss.csv", index=False)
    fulcrum.train(str(base / "xss.csv"), target="kind", name="xss", model="linear", progress=False, registry=reg)
    return reg.root


@pytest.fixture(scope="module")
def ui_registry(ui_template, tmp_path_factory):
    from fulcrum.artifact import Registry

    root = tmp_path_factory.mktemp("ui") / "registry"
    shutil.copytree(ui_template, root)
    return Registry(root)


class Server:
    """uvicorn serving ``app`` on 127.0.0.1 (a free port) in a daemon thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                    access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = ""

    def start(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("dashboard server did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def ui_server(ui_registry):
    """``fulcrum ui``'s app (create_standalone_app) on a real socket."""
    from fulcrum.ui import create_standalone_app

    srv = Server(create_standalone_app(ui_registry)).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def serve_server(ui_registry):
    """``fulcrum serve``'s app (dashboard mounted at /ui) serving penguins@production, ready."""
    import httpx

    from fulcrum.serve import ServeSettings, create_app

    app = create_app(["penguins@production"], ServeSettings(access_log=False, log_level="warning",
                                                            usage_flush_s=0.5, poll_interval_s=0.2),
                     registry=ui_registry)
    srv = Server(app).start()
    deadline = time.monotonic() + 120
    while httpx.get(srv.url + "/v2/health/ready").status_code != 200:
        if time.monotonic() > deadline:
            raise RuntimeError("models did not load")
        time.sleep(0.1)
    yield srv
    srv.stop()
