"""`fulcrum serve REF` loads and verifies every requested model before it binds: a corrupt or
tampered package stops it at once with one `error:` line naming the file and the fix (exit 1),
instead of a server that runs and never becomes ready. Later hot switches are unchanged (a bad
new version leaves the old one serving: see test_hot_switch)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

STARTUP_LIMIT_S = 60  # far more than loading two small models takes; a server that keeps running hits it


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _replace_and_rehash(pkg_dir: Path, rel: str, data: bytes) -> None:
    """Overwrite a package file and re-record the checksums: the package verifies, the file is wrong."""
    (pkg_dir / rel).write_bytes(data)
    manifest = json.loads((pkg_dir / "manifest.json").read_text())
    manifest["files"][rel] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    raw = (json.dumps(manifest, sort_keys=True, indent=2) + "\n").encode()
    (pkg_dir / "manifest.json").write_bytes(raw)
    (pkg_dir / "MANIFEST.sha256").write_text(f"{hashlib.sha256(raw).hexdigest()}  manifest.json\n")


def _serve(registry, *refs: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "fulcrum", "serve", *refs, "--port", str(_free_port()),
           "--registry", str(registry.root), "--no-access-log"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=STARTUP_LIMIT_S, env=env)
    except subprocess.TimeoutExpired as exc:  # run() killed it
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        pytest.fail(f"`fulcrum serve` with a broken model was still running after {STARTUP_LIMIT_S} s:\n{err[-2000:]}")


@pytest.mark.parametrize(
    ("damage", "file"),
    [("garbage-onnx", "model.onnx"), ("tampered", "weights.safetensors"), ("garbage-preprocess", "preprocess.json")],
)
def test_serve_with_a_broken_model_fails_fast(registry, damage, file):
    pkg_dir = registry.path("penguins@1")
    if damage == "garbage-onnx":
        _replace_and_rehash(pkg_dir, file, b"\x08\x07 not an onnx graph \xff\xfe")
    elif damage == "tampered":  # changed after registration: the checksum no longer matches
        raw = (pkg_dir / file).read_bytes()
        (pkg_dir / file).write_bytes(b"tampered!" + raw[9:])
    else:
        _replace_and_rehash(pkg_dir, file, b"{}")
    proc = _serve(registry, "penguins@production", "iris")
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[-1] == errors[0], proc.stderr  # the error is the last word, nothing served after it
    assert "penguins@production" in errors[0] and str(pkg_dir) in errors[0], errors[0]
    if damage != "garbage-preprocess":  # (that error comes from the preprocessing loader, which names no file)
        assert file in errors[0], errors[0]
    assert "fulcrum promote" in errors[0] or "fulcrum train" in errors[0], errors[0]  # the fix
    assert '"serving ' not in proc.stderr  # it never bound


def test_a_healthy_model_is_loaded_once_and_served(registry, tmp_path):
    """The models verified before binding are the ones served: loaded once, ready at once."""
    import time

    import httpx

    from .conftest import PENGUIN_ROW

    port = _free_port()
    log = (tmp_path / "serve.log").open("w+")
    proc = subprocess.Popen([sys.executable, "-m", "fulcrum", "serve", "penguins@production", "--port", str(port),
                             "--registry", str(registry.root), "--no-access-log"],
                            stdout=log, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + STARTUP_LIMIT_S
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
        r = httpx.post(f"{url}/v1/models/penguins/predict", json={"records": [PENGUIN_ROW]}, timeout=30)
        assert r.status_code == 200 and r.json()["version"] == 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    text = (tmp_path / "serve.log").read_text()
    loaded = [line for line in text.splitlines() if '"loaded penguins@1 in' in line]
    assert len(loaded) == 1 and "(before binding)" in loaded[0], text
