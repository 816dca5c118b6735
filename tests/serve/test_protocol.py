"""The HTTP protocol against a real server: v2 and friendly routes agree with the Predictor,
metadata, request ids, OpenAPI, metrics and the serving-usage table."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from .conftest import PENGUIN_ROW, v2_request


def _rows(n: int = 5) -> list[dict]:
    from fulcrum.data import read_table

    df = read_table("builtin:penguins").drop(columns=["species"]).head(n)
    return json.loads(df.to_json(orient="records"))  # NaN -> null, as a client sends it


def test_friendly_and_v2_outputs_equal_the_predictor(serve, registry):
    import fulcrum

    srv = serve(["penguins"])
    rows = _rows(6)
    expected = fulcrum.load("penguins", registry=registry).predict_output(pd.DataFrame(rows))
    with srv.client() as c:
        r = c.post("/v1/models/penguins/predict", json={"records": rows})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model"] == "penguins" and body["version"] == 2 and body["id"] == r.headers["x-request-id"]
        probs = np.array([[p[k] for k in ("Adelie", "Chinstrap", "Gentoo")] for p in body["probabilities"]])
        np.testing.assert_allclose(probs, expected, atol=1e-6)
        assert body["predictions"] == [["Adelie", "Chinstrap", "Gentoo"][i] for i in expected.argmax(1)]

        cols = {k: [r[k] for r in rows] for k in rows[0]}
        req = {"id": "my-req", "inputs": [
            {"name": k, "datatype": "BYTES" if k in ("island", "sex") else "FP32", "shape": [len(rows), 1],
             "data": [[v] for v in vals]} for k, vals in cols.items()]}
        r = c.post("/v2/models/penguins/infer", json=req)
        assert r.status_code == 200, r.text
        out = {o["name"]: o for o in r.json()["outputs"]}
        assert r.json()["id"] == "my-req" and r.json()["model_version"] == "2"
        assert out["probabilities"]["shape"] == [6, 3]
        np.testing.assert_allclose(np.array(out["probabilities"]["data"]).reshape(6, 3), expected, atol=1e-6)
        assert out["species"]["data"] == body["predictions"]

        r = c.post("/v2/models/penguins/infer", json={**req, "outputs": [{"name": "species"}]})
        assert [o["name"] for o in r.json()["outputs"]] == ["species"]


def test_regression_model_roundtrip(serve, registry):
    import fulcrum

    fulcrum.train("builtin:diabetes", name="diabetes", model="linear", progress=False, registry=registry)
    srv = serve(["diabetes"])
    from fulcrum.data import read_table

    df = read_table("builtin:diabetes").head(3)
    pred = fulcrum.load("diabetes", registry=registry)
    rows = json.loads(df.drop(columns=[pred.target]).to_json(orient="records"))
    with srv.client() as c:
        body = c.post("/v1/models/diabetes/predict", json={"records": rows}).json()
        np.testing.assert_allclose(body["predictions"], pred.predict_output(pd.DataFrame(rows)), rtol=1e-5)
        meta = c.get("/v2/models/diabetes").json()
        assert meta["outputs"][0]["datatype"] == "FP64" and "probabilities" not in body


def test_metadata_versions_aliases_and_health(serve):
    srv = serve(["penguins@production", "penguins@2", "iris"])
    with srv.client() as c:
        assert c.get("/v2/health/live").json() == {"live": True}
        assert c.get("/v2/health/ready").json() == {"ready": True}
        meta = c.get("/v2/models/penguins").json()
        assert meta["parameters"]["version"] == "1"  # the first reference for the name: production -> 1
        assert sorted(meta["versions"]) == ["1", "2"]
        kinds = {i["name"]: i["datatype"] for i in meta["inputs"]}
        assert kinds["island"] == "BYTES" and kinds["bill_length_mm"] == "FP32"
        assert c.get("/v2/models/penguins@2").json()["parameters"]["version"] == "2"
        assert c.get("/v2/models/penguins/versions/2").json()["parameters"]["version"] == "2"
        assert c.get("/v2/models/penguins/versions/1/ready").json()["ready"] is True
        r = c.post("/v1/models/penguins@2/predict", json={"records": [PENGUIN_ROW]})
        assert r.json()["version"] == 2
        r = c.post("/v2/models/penguins/versions/2/infer", json=v2_request(PENGUIN_ROW))
        assert r.status_code == 200 and r.json()["model_version"] == "2"
        assert c.get("/v2/models/nope").status_code == 404
        assert c.get("/v2/models/penguins@staging").status_code == 404
        assert c.get("/v2/models/penguins/versions/9").status_code == 404
        assert c.get("/v2").json()["name"] == "fulcrum"
        listing = c.get("/v1/models").json()
        assert listing["ready"] and listing["references"]["penguins@production"] == 1


def test_ready_only_after_load_and_warm_up(serve, monkeypatch):
    import threading

    from fulcrum.serve import ServedModel

    gate = threading.Event()
    original = ServedModel.warm_up

    def slow_warm_up(self):
        gate.wait(10)
        original(self)

    monkeypatch.setattr(ServedModel, "warm_up", slow_warm_up)
    srv = serve(["penguins"], ready=False)
    with srv.client() as c:
        assert c.get("/v2/health/live").status_code == 200
        r = c.get("/v2/health/ready")
        assert r.status_code == 503 and r.json() == {"ready": False}
        assert c.post("/v1/models/penguins/predict", json={"records": [PENGUIN_ROW]}).status_code == 503
        gate.set()
        srv.wait_ready(30)
        assert c.get("/v2/health/ready").status_code == 200


def test_request_id_is_honoured_or_generated(serve):
    srv = serve()
    with srv.client() as c:
        r = c.post("/v1/models/penguins/predict", json={"records": [PENGUIN_ROW]}, headers={"X-Request-ID": "abc-123"})
        assert r.headers["x-request-id"] == "abc-123" and r.json()["id"] == "abc-123"
        r = c.post("/v1/models/penguins/predict", json={"records": [PENGUIN_ROW]}, headers={"X-Request-ID": "bad id with spaces"})
        assert r.headers["x-request-id"] != "bad id with spaces" and r.json()["id"] == r.headers["x-request-id"]
        assert "x-request-id" in c.get("/v2/health/live").headers


def test_top_k_and_rounding(serve):
    srv = serve(top_k=1, round_decimals=2)
    with srv.client() as c:
        body = c.post("/v1/models/penguins/predict", json={"records": [PENGUIN_ROW]}).json()
        (probs,) = body["probabilities"]
        assert list(probs) == body["predictions"] and all(round(v, 2) == v for v in probs.values())
        out = {o["name"]: o for o in c.post("/v2/models/penguins/infer", json=v2_request(PENGUIN_ROW)).json()["outputs"]}
        assert out["probabilities"]["shape"] == [1, 1] and out["top_labels"]["data"] == body["predictions"]


def test_openapi_describes_both_routes_per_model(serve):
    srv = serve(["penguins", "iris"])
    with srv.client() as c:
        doc = c.get("/openapi.json").json()
    for name in ("penguins", "iris"):
        assert f"/v1/models/{name}/predict" in doc["paths"] and f"/v2/models/{name}/infer" in doc["paths"]
    ref = doc["paths"]["/v1/models/penguins/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert schema["properties"]["records"]["maxItems"] == 1024
    record = doc["components"]["schemas"][schema["properties"]["records"]["items"]["$ref"].rsplit("/", 1)[1]]
    assert set(record["properties"]) == set(PENGUIN_ROW) and record["additionalProperties"] is False
    assert "/v2/health/ready" in doc["paths"] and "bearer" in doc["components"]["securitySchemes"]


def test_metrics_and_usage_ledger(serve, registry):
    from fulcrum.serve import read_usage

    srv = serve(usage_flush_s=0.2)
    with srv.client() as c:
        for _ in range(3):
            assert c.post("/v1/models/penguins/predict", json={"records": [PENGUIN_ROW, PENGUIN_ROW]}).status_code == 200
        text = c.get("/metrics").text
    for name in ("fulcrum_requests_total", "fulcrum_request_latency_seconds_bucket", "fulcrum_batch_size_bucket",
                 "fulcrum_queue_depth", "fulcrum_model_load_seconds", "fulcrum_predictions_total",
                 "fulcrum_compute_seconds_total", "fulcrum_ood_score_bucket"):
        assert name in text, name
    assert 'fulcrum_requests_total{model="penguins",route="predict",status="200",version="2"} 3.0' in text
    assert 'fulcrum_predictions_total{model="penguins",version="2"} 6.0' in text
    srv.stop()  # shutdown flushes what is left
    usage = read_usage(registry, "penguins")
    assert sum(u["predictions"] for u in usage) == 6 and sum(u["requests"] for u in usage) == 3
    assert all(u["version"] == 2 for u in usage)
    # the ledger's compute time is the one the server counted on /metrics, batch by batch (its size is the
    # machine's business: benchmarks/)
    counted = float(re.search(r'^fulcrum_compute_seconds_total\{model="penguins",version="2"\} (\S+)$', text, re.M)[1])
    assert sum(u["compute_s"] for u in usage) == pytest.approx(counted, rel=1e-9, abs=1e-12)
    from fulcrum.costs._ledger import live_usage  # what `fulcrum costs` reads

    seen = live_usage(registry, "penguins", 2)
    assert seen is not None and seen["predictions"] == 6 and seen["compute_s"] == pytest.approx(counted, rel=1e-9, abs=1e-12)


def test_feedback_by_request_id_and_live_metric(serve):
    srv = serve()
    with srv.client() as c:
        r = c.post("/v1/models/penguins/predict", json={"records": [PENGUIN_ROW]}, headers={"X-Request-ID": "fb-1"})
        predicted = r.json()["predictions"][0]
        r = c.post("/v1/models/penguins/feedback", json={"id": "fb-1", "truth": predicted})
        assert r.status_code == 200, r.text
        metric = c.get("/v1/models/penguins/metric").json()
        assert metric["n"] == 1 and metric["accuracy"] == 1.0
        assert c.post("/v1/models/penguins/feedback", json={"id": "unknown", "truth": "Adelie"}).status_code == 404
        snap = c.get("/v1/models/penguins/monitor").json()
        assert snap["counts"]["rows_observed"] >= 1


def test_feedback_on_the_v2_path_for_a_v2_prediction(serve):
    srv = serve()
    with srv.client() as c:
        r = c.post("/v2/models/penguins/infer", json=v2_request(PENGUIN_ROW))
        assert r.status_code == 200, r.text
        rid = r.json()["id"]
        assert rid == r.headers["x-request-id"]
        label = next(o for o in r.json()["outputs"] if o["datatype"] == "BYTES")["data"][0]
        r = c.post("/v2/models/penguins/feedback", json={"id": rid, "truth": label})
        assert r.status_code == 200, r.text
        assert r.json()["request_id"] == rid and r.json()["stored"] == 1
        metric = c.get("/v1/models/penguins/metric").json()
        assert metric["n"] == 1 and metric["accuracy"] == 1.0
        assert c.post("/v2/models/penguins/feedback", json={"id": "unknown", "truth": label}).status_code == 404
        assert c.post("/v2/models/penguins/feedback", json={"truth": label}).status_code == 422
        paths = c.get("/openapi.json").json()["paths"]
        assert "post" in paths["/v2/models/{name}/feedback"] and "post" in paths["/v1/models/{name}/feedback"]


def test_structured_access_log_with_request_ids(serve, capfd):
    srv = serve(access_log=True)
    with srv.client() as c:
        c.post("/v1/models/penguins/predict", json={"records": [PENGUIN_ROW]}, headers={"X-Request-ID": "log-me-1"})
        c.post("/v1/models/penguins/predict", json={"records": []}, headers={"X-Request-ID": "log-me-2"})
    srv.stop()
    lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    entries = {e.get("request_id"): e for e in lines if e.get("msg") == "request"}
    assert entries["log-me-1"]["status"] == 200 and entries["log-me-1"]["model"] == "penguins"
    assert entries["log-me-1"]["rows"] == 1 and entries["log-me-1"]["duration_ms"] > 0
    assert entries["log-me-2"]["status"] == 422 and entries["log-me-2"]["path"] == "/v1/models/penguins/predict"


def test_every_response_carries_an_ood_score(serve):
    srv = serve(["penguins"])
    far = {**PENGUIN_ROW, "bill_length_mm": 400.0, "body_mass_g": 90000.0, "island": "Atlantis"}
    with srv.client() as c:
        body = c.post("/v1/models/penguins/predict", json={"records": [PENGUIN_ROW, far]}).json()
        assert len(body["ood_scores"]) == 2
        assert body["ood_scores"][0] < 0.1 and body["ood"][0] is False  # a training-like penguin
        assert body["ood_scores"][1] > 0.9 and body["ood"][1] is True   # far outside the training data
        req = {"inputs": [{"name": k, "datatype": "BYTES" if isinstance(v, str) else "FP64", "shape": [2],
                           "data": [PENGUIN_ROW[k], far[k]]} for k, v in PENGUIN_ROW.items()]}
        r = c.post("/v2/models/penguins/infer", json=req)
        out = {o["name"]: o for o in r.json()["outputs"]}
        assert out["ood_score"]["shape"] == [2] and out["ood_score"]["data"][1] > 0.9
        metrics = c.get("/metrics").text
    assert 'fulcrum_ood_rows_total{model="penguins",version="2"}' in metrics
    line = [x for x in metrics.splitlines() if x.startswith('fulcrum_ood_rows_total{model="penguins"')][0]
    assert float(line.split()[-1]) >= 2.0  # the far row, counted on both routes
