"""The dashboard mounted at /ui by `fulcrum serve`: live figures from the serving process itself."""

from __future__ import annotations

import math

import time

import httpx

from .conftest import PENGUIN_ROW


def live(srv, **params):
    r = httpx.get(srv.url + "/ui/api/live", params=params, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def test_serve_mounts_the_dashboard(serve_server):
    r = httpx.get(serve_server.url + "/ui/api/models")
    assert r.status_code == 200 and {m["ref"] for m in r.json()["models"]} >= {"penguins@1", "xss@1"}
    assert httpx.get(serve_server.url + "/ui/").status_code == 200
    assert httpx.post(serve_server.url + "/ui/api/models").status_code == 405
    assert "/ui/api/models" not in httpx.get(serve_server.url + "/openapi.json").json()["paths"]


def test_live_counts_what_the_server_served(serve_server):
    url = serve_server.url + "/v1/models/penguins/predict"
    first = live(serve_server, ref="penguins@production")
    assert first["source"] == "in-process" and first["served"] == ["penguins@1"] and first["ref"] == "penguins@1"
    before = first["requests"]["requests"]["total"]
    ids = []
    with httpx.Client() as client:
        for i in range(12):
            r = client.post(url, json={"records": [PENGUIN_ROW] * (1 + i % 3)})
            assert r.status_code == 200
            ids.append(r.json()["id"])
        assert client.post(url, json={"records": [{"island": "Biscoe"}]}).status_code == 422
        assert client.post(url, json={"records": [{**PENGUIN_ROW, "bill_length_mm": "long"}]}).status_code == 422
        fb = client.post(serve_server.url + "/v1/models/penguins/feedback", json={"id": ids[0], "truth": "Gentoo"})
        assert fb.status_code == 200, fb.text
    time.sleep(0.6)  # the next sample is a new one (one per half second)
    d = live(serve_server, ref="penguins@production")
    rq = d["requests"]
    assert rq["requests"]["total"] - before == 15  # 12 predictions, 2 refused (422), 1 feedback
    assert rq["requests"]["errors_4xx"] >= 2 and rq["requests"]["errors_5xx"] == 0
    assert math.isfinite(rq["requests"]["rate_per_s"]) and rq["window"].startswith("last")  # a rate was recorded
    # percentiles recorded from the server's histogram (how histogram_quantile orders them is
    # test_api.py's test_histogram_quantile_*, on constructed buckets; their size belongs to benchmarks/)
    assert all(math.isfinite(rq["latency_ms"][q]) for q in ("p50", "p95", "p99"))
    assert rq["batch_size"]["batches"] >= 1 and rq["batch_size"]["p50"] >= 1
    assert rq["predictions"] >= 24 and rq["series"]
    mon = d["monitor"]
    assert mon is not None and set(mon["drift"]) >= {"island", "bill_length_mm"}
    assert mon["window"]["rows"] >= 24 and mon["ood"]["rate"] is not None
    assert d["live_metric"]["n"] == 1 and d["live_metric"]["accuracy"] in (0.0, 1.0)
    assert d["trained_metric"]["name"] == "accuracy"
    assert d["history"] and "bill_length_mm" in d["history"][-1]["psi"]


def test_live_of_a_model_not_served_is_404(serve_server):
    r = httpx.get(serve_server.url + "/ui/api/live", params={"ref": "xss"})
    assert r.status_code == 404 and "xss" in r.json()["error"]


def test_standalone_ui_reads_a_running_server(serve_server, ui_registry):
    """`fulcrum ui --server URL`: the live figures scraped from the server's /metrics and monitor."""
    from fulcrum.ui import create_standalone_app

    from .conftest import Server

    with httpx.Client() as client:
        for _ in range(3):
            assert client.post(serve_server.url + "/v1/models/penguins/predict",
                               json={"records": [PENGUIN_ROW]}).status_code == 200
    ui = Server(create_standalone_app(ui_registry, server=serve_server.url)).start()
    try:
        d = live(ui)
        assert d["source"] == f"server {serve_server.url}" and d["served"] == ["penguins@1"] and d["note"] is None
        assert d["requests"]["requests"]["total"] >= 3 and d["requests"]["predictions"] >= 3
        assert d["monitor"] is not None and "island" in d["monitor"]["drift"]
        assert d["live_metric"]["n"] >= 0 and d["trained_metric"]["name"] == "accuracy"
    finally:
        ui.stop()
    gone = Server(create_standalone_app(ui_registry, server="http://127.0.0.1:9")).start()  # nothing listens there
    try:
        r = httpx.get(gone.url + "/ui/api/live", timeout=30)
        assert r.status_code == 502 and "Cannot reach the server http://127.0.0.1:9" in r.json()["error"]
    finally:
        gone.stop()
