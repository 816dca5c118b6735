"""The dashboard follows the server's API-key rules, standalone (`fulcrum ui`) and mounted (`fulcrum serve`)."""

from __future__ import annotations

import httpx
import pytest

from .conftest import Server


@pytest.fixture(scope="module")
def keyed(ui_registry):
    from fulcrum.serve import KeyStore

    _, token = KeyStore(ui_registry).create(scope="predict", name="dashboard")
    return token


def _check_keyed(url: str, token: str) -> None:
    r = httpx.get(url + "/ui/api/models")
    assert r.status_code == 401 and "API key" in r.json()["error"]
    assert httpx.get(url + "/ui/api/models", headers={"Authorization": "Bearer nope"}).status_code == 401
    ok = httpx.get(url + "/ui/api/models", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and ok.json()["total"] >= 4
    assert httpx.get(url + "/ui/api/models/penguins@1", headers={"X-API-Key": token}).status_code == 200
    # pages and static files hold no data: open, like /v2/health; the page asks for the key
    assert httpx.get(url + "/ui/").status_code == 200
    assert httpx.get(url + "/ui/static/ui.js").status_code == 200


def test_standalone_ui_needs_a_key_once_keys_exist(ui_registry, keyed):
    from fulcrum.ui import create_standalone_app

    srv = Server(create_standalone_app(ui_registry)).start()
    try:
        _check_keyed(srv.url, keyed)
    finally:
        srv.stop()


def test_serve_mounted_ui_needs_a_key_once_keys_exist(ui_registry, keyed):
    from fulcrum.serve import ServeSettings, create_app

    srv = Server(create_app(["penguins@1"], ServeSettings(access_log=False, log_level="warning"),
                            registry=ui_registry)).start()
    try:
        _check_keyed(srv.url, keyed)
    finally:
        srv.stop()


def test_fulcrum_ui_refuses_a_public_bind_without_keys(tmp_path):
    import subprocess
    import sys

    from fulcrum.artifact import Registry

    root = tmp_path / "registry"
    Registry(root)
    # a subprocess: were the bind allowed, the dashboard would serve until the timeout (and fail the test)
    r = subprocess.run([sys.executable, "-m", "fulcrum", "ui", "--host", "0.0.0.0", "--port", "0", "--registry",
                        str(root)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert "Refusing to bind 0.0.0.0" in r.stderr and "fulcrum keys create" in r.stderr


def test_fulcrum_ui_rejects_a_bad_port(tmp_path, capsys):
    from fulcrum.cli import main

    assert main(["ui", "--port", "70000", "--registry", str(tmp_path / "r")]) == 1
    assert "port" in capsys.readouterr().err
