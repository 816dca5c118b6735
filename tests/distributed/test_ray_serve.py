"""fulcrum serve --backend ray: the same app in 2 Ray Serve replicas on 127.0.0.1, with its API keys, answers
like the single-process predictor; 401 without a key."""

from __future__ import annotations

import socket

import httpx
import pytest

from fulcrum.cli import main

pytestmark = pytest.mark.ray

ROW = {"a": 1.0, "b": -0.5, "c": 0.0, "color": "red"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ray_serve_two_replicas_keep_auth_and_answer_like_local(ray_cluster, blobs_csv, tmp_path, capsys):
    import fulcrum
    from fulcrum.cli.serve import settings_from
    from fulcrum.cli._main import build_parser
    from fulcrum.artifact import Registry
    from fulcrum.serve import KeyStore
    from fulcrum.serve._ray import APP_NAME, deploy

    reg = tmp_path / "reg"
    assert main(["train", str(blobs_csv), "--target", "label", "--model", "linear", "--name", "blobs",
                 "--registry", str(reg), "--no-progress", "--json"]) == 0
    _, key = KeyStore(Registry(reg)).create("predict")
    port = _free_port()
    args = build_parser().parse_args(["serve", "blobs", "--backend", "ray", "--replicas", "2", "--port", str(port),
                                      "--registry", str(reg), "--no-monitor"])
    from ray import serve

    url = deploy(args.refs, settings_from(args), registry=args.registry, replicas=args.replicas)
    try:
        assert url == f"http://127.0.0.1:{port}"
        # Ray's HTTP proxy listens on loopback only; Ray's dashboard and its job API (8265) are not running
        import psutil

        listening = [c.laddr for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN]
        assert {a.ip for a in listening if a.port == port} == {"127.0.0.1"}
        assert not [a for a in listening if a.port == 8265]
        status = serve.status().applications[APP_NAME]
        assert status.status == "RUNNING"
        assert status.deployments["fulcrum"].replica_states.get("RUNNING") == 2
        body = {"records": [ROW]}
        with httpx.Client(base_url=url, timeout=30) as c:
            assert c.post("/v1/models/blobs/predict", json=body).status_code == 401
            r = c.post("/v1/models/blobs/predict", json=body, headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 200, r.text
            want = fulcrum.load("blobs", registry=str(reg)).predict([ROW])
            assert r.json()["predictions"] == want["prediction"].tolist()
            too_many = {"records": [ROW] * 2000}  # the app's own row limit (default 1024) holds in a replica
            assert c.post("/v1/models/blobs/predict", json=too_many,
                          headers={"Authorization": f"Bearer {key}"}).status_code == 413
            metrics = c.get("/metrics", headers={"X-API-Key": key})
            assert metrics.status_code == 200 and "fulcrum" in metrics.text
    finally:
        serve.delete(APP_NAME)


def test_ray_serve_refuses_tls_and_a_public_bind_without_keys(blobs_csv, tmp_path, capsys):
    reg = tmp_path / "reg"
    assert main(["train", str(blobs_csv), "--target", "label", "--model", "linear", "--name", "blobs",
                 "--registry", str(reg), "--no-progress", "--json"]) == 0
    capsys.readouterr()
    assert main(["serve", "blobs", "--backend", "ray", "--host", "0.0.0.0", "--registry", str(reg)]) == 1
    assert "Refusing to bind 0.0.0.0" in capsys.readouterr().err
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    assert main(["serve", "blobs", "--backend", "ray", "--ssl-certfile", str(cert), "--ssl-keyfile", str(cert),
                 "--registry", str(reg)]) == 1
    assert "does not terminate TLS" in capsys.readouterr().err
