"""Slow clients cannot hold connections: header read, body read and keep-alive idle time are
bounded (ServeSettings.header_timeout_s / body_timeout_s / keepalive_timeout_s).

Real sockets against a real uvicorn server built by fulcrum's own ``uvicorn_config`` (the
path ``fulcrum serve`` takes), with bounds of about a second. Each check waits well past the
bound (``GRACE``) for the server to act, so a server without the bound fails the test and a
busy machine does not."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from .conftest import PENGUIN_ROW

BOUND = 1.0  # seconds, for every bound under test
GRACE = 15.0  # how long past the bound a check waits before calling the connection held


@pytest.fixture
def bounded(serve):
    """A server from the ``serve`` fixture (the configuration ``fulcrum serve`` runs) with bounds
    of BOUND seconds: a fixture server without the bounded protocol fails these tests."""

    def start(**settings: Any) -> Any:
        for key in ("header_timeout_s", "body_timeout_s", "keepalive_timeout_s"):
            settings.setdefault(key, BOUND)
        return serve(["penguins"], log_level="warning", **settings)

    return start


def _address(url: str) -> tuple[str, int]:
    host, port = url.rsplit("//", 1)[1].rsplit(":", 1)
    return host, int(port)


def _drip(sock: socket.socket, payload: bytes, every: float = 0.2, limit: float = BOUND + GRACE) -> bytes | None:
    """Send ``payload`` one byte every ``every`` seconds (then nothing) while reading. Returns what
    the server sent before closing the connection, or None if it was still open after ``limit``."""
    received = b""
    deadline = time.monotonic() + limit
    i = 0
    while time.monotonic() < deadline:
        readable, _, _ = select.select([sock], [], [], every)
        if readable:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                return received
            if not chunk:
                return received
            received += chunk
            continue
        if i < len(payload):
            try:
                sock.sendall(payload[i : i + 1])
            except (BrokenPipeError, ConnectionResetError):
                return received
            i += 1
    return None


def _head(response: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


REQUEST_HEAD = b"POST /v1/models/penguins/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"


def test_headers_that_never_complete_are_cut_off(bounded):
    srv = bounded()
    with socket.create_connection(_address(srv.url)) as sock:  # a slowloris: one header byte at a time, forever
        got = _drip(sock, REQUEST_HEAD + b"X-Slow: " + b"a" * 500)
    assert got is not None, "the server kept a connection whose headers never completed"
    if got:  # the server may say why before closing
        status, headers, _ = _head(got)
        assert status == 408 and headers.get("connection") == "close"


def test_a_connection_that_sends_nothing_is_closed(bounded):
    srv = bounded()
    with socket.create_connection(_address(srv.url)) as sock:
        assert _drip(sock, b"") == b""  # closed without a word: no request was started


def test_a_stalled_body_gets_408_and_the_connection_closes(bounded):
    srv = bounded()
    body = json.dumps({"records": [PENGUIN_ROW]}).encode()
    for sent in (body[:10], b""):  # part of the body, or none of it
        with socket.create_connection(_address(srv.url)) as sock:
            sock.sendall(REQUEST_HEAD + f"Content-Length: {len(body)}\r\n\r\n".encode() + sent)
            got = _drip(sock, b"")
        assert got is not None, "the server kept a connection whose body stalled"
        status, headers, payload = _head(got)
        assert status == 408, got
        assert headers["connection"] == "close"
        assert "body" in json.loads(payload)["error"]


def test_a_dripping_body_gets_408(bounded):
    srv = bounded()
    body = json.dumps({"records": [PENGUIN_ROW]}).encode()
    with socket.create_connection(_address(srv.url)) as sock:
        sock.sendall(REQUEST_HEAD + f"Content-Length: {len(body)}\r\n\r\n".encode())
        got = _drip(sock, body)  # one byte every 0.2 s: far slower than the bound allows
    assert got is not None and _head(got)[0] == 408


def test_an_idle_keep_alive_connection_is_closed_and_normal_requests_work(bounded):
    srv = bounded()
    body = json.dumps({"records": [PENGUIN_ROW]}).encode()
    request = REQUEST_HEAD + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
    with socket.create_connection(_address(srv.url)) as sock:
        for _ in range(2):  # two requests on one connection, each answered
            sock.sendall(request)
            got = b""
            while b"\r\n\r\n" not in got or len(_head(got)[2]) < int(_head(got)[1]["content-length"]):
                chunk = sock.recv(65536)
                assert chunk, "connection closed during a normal request"
                got += chunk
            status, headers, payload = _head(got)
            assert status == 200 and json.loads(payload)["predictions"]
            assert headers.get("connection") != "close"
        assert _drip(sock, b"") == b""  # then idle: closed
    with httpx.Client(base_url=srv.url, timeout=30) as c:  # an ordinary client is unaffected
        for _ in range(3):
            assert c.post("/v1/models/penguins/predict", json={"records": [PENGUIN_ROW]}).status_code == 200


def _timed_out(srv: Any) -> dict[str, float]:
    """fulcrum_connections_timed_out_total by phase, scraped from the server's /metrics."""
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        text = c.get("/metrics").text
    found = {}
    for line in text.splitlines():
        if line.startswith("fulcrum_connections_timed_out_total{"):
            labels, _, value = line.partition("} ")
            found[labels.split('phase="', 1)[1].rstrip('"')] = float(value)
    return found


def test_timed_out_connections_are_counted_in_metrics(bounded):
    srv = bounded()
    assert _timed_out(srv) == {"idle": 0.0, "headers": 0.0, "body": 0.0}
    with socket.create_connection(_address(srv.url)) as sock:  # headers that never end
        assert _drip(sock, REQUEST_HEAD + b"X-Slow: " + b"a" * 500) is not None
    with socket.create_connection(_address(srv.url)) as sock:  # a connection that never starts a request
        assert _drip(sock, b"") == b""
    for _ in range(2):  # bodies that stall
        with socket.create_connection(_address(srv.url)) as sock:
            sock.sendall(REQUEST_HEAD + b"Content-Length: 100\r\n\r\n{")
            assert _drip(sock, b"") is not None
    assert _timed_out(srv) == {"idle": 1.0, "headers": 1.0, "body": 2.0}


def test_settings_and_cli_options(registry):
    from fulcrum.cli.serve import settings_from
    from fulcrum.cli import _main  # noqa: F401 - the parser lives there
    from fulcrum.errors import ConfigError
    from fulcrum.serve import ServeSettings

    s = ServeSettings()
    assert (s.header_timeout_s, s.body_timeout_s, s.keepalive_timeout_s) == (10.0, 30.0, 5.0)
    for key in ("header_timeout_s", "body_timeout_s", "keepalive_timeout_s"):
        with pytest.raises(ConfigError, match=key):
            ServeSettings(**{key: 0})
    import argparse

    from fulcrum.cli import serve as serve_cli

    parser = argparse.ArgumentParser()
    serve_cli.register(parser.add_subparsers())
    args = parser.parse_args(["serve", "--header-timeout", "2", "--body-timeout", "3", "--keepalive-timeout", "4"])
    got = settings_from(args)
    assert (got.header_timeout_s, got.body_timeout_s, got.keepalive_timeout_s) == (2.0, 3.0, 4.0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_bounds_hold_with_several_workers(registry, tmp_path):
    """`fulcrum serve --workers 2` runs two worker processes, each with the bounded protocol."""
    import psutil

    port = _free_port()
    cmd = [sys.executable, "-m", "fulcrum", "serve", "penguins", "--workers", "2", "--port", str(port),
           "--registry", str(registry.root), "--header-timeout", str(BOUND), "--body-timeout", str(BOUND),
           "--keepalive-timeout", str(BOUND), "--no-access-log", "--log-level", "warning"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 120
        url = f"http://127.0.0.1:{port}"
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "server did not become ready"
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        workers = [p for p in psutil.Process(proc.pid).children() if "spawn_main" in " ".join(p.cmdline())]
        assert len(workers) == 2, [p.cmdline() for p in psutil.Process(proc.pid).children()]
        for _ in range(2):  # the kernel spreads connections over the workers
            with socket.create_connection(("127.0.0.1", port)) as sock:
                assert _drip(sock, REQUEST_HEAD + b"X-Slow: " + b"a" * 500) is not None
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(REQUEST_HEAD + b"Content-Length: 100\r\n\r\n{")
                got = _drip(sock, b"")
            assert got is not None and _head(got)[0] == 408
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
