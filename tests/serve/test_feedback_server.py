"""Feedback is checked against the served model on a real server: an unknown label is 422 naming
the known ones, a regression truth must be a finite number (booleans are not numbers); both
the /v1 and /v2 feedback routes, and nothing invalid is stored."""

from __future__ import annotations

from .conftest import PENGUIN_ROW, v2_request


def _emperor(c, path: str, rid: str) -> None:
    r = c.post(path, json={"id": rid, "truth": "Emperor"})
    assert r.status_code == 422, r.text
    assert "Emperor" in r.json()["error"] and "Adelie, Chinstrap, Gentoo" in r.json()["error"]


def test_server_feedback_is_validated_on_both_routes(serve):
    srv = serve()
    with srv.client() as c:
        assert c.post("/v1/models/penguins/predict", json={"records": [PENGUIN_ROW]},
                      headers={"X-Request-ID": "v1-req"}).status_code == 200
        rid = c.post("/v2/models/penguins/infer", json=v2_request(PENGUIN_ROW)).json()["id"]
        for path in ("/v1/models/penguins/feedback", "/v2/models/penguins/feedback"):
            for request_id in ("v1-req", rid):
                _emperor(c, path, request_id)
                r = c.post(path, content=b'{"id": "%s", "truth": NaN}' % request_id.encode(),
                           headers={"content-type": "application/json"})
                assert r.status_code == 422
        assert c.get("/v1/models/penguins/metric").json()["n"] == 0  # nothing invented was stored
        assert c.post("/v2/models/penguins/feedback", json={"id": rid, "truth": "Gentoo"}).status_code == 200
        assert c.post("/v1/models/penguins/feedback", json={"id": "v1-req", "truth": "Adelie"}).status_code == 200
        assert c.get("/v1/models/penguins/metric").json()["n"] == 2


def test_server_regression_feedback_must_be_a_finite_number(serve, registry):
    import fulcrum

    fulcrum.train("builtin:diabetes", name="diabetes", model="linear", progress=False, registry=registry)
    row = {"age": 0.03, "sex": 0.05, "bmi": 0.06, "bp": 0.02, "s1": -0.04, "s2": -0.03, "s3": -0.04, "s4": -0.002,
           "s5": 0.02, "s6": -0.02}
    srv = serve(["diabetes"])
    with srv.client() as c:
        r = c.post("/v1/models/diabetes/predict", json={"records": [row]}, headers={"X-Request-ID": "d-1"})
        assert r.status_code == 200, r.text
        for path in ("/v1/models/diabetes/feedback", "/v2/models/diabetes/feedback"):
            for bad in (b'"high"', b"true", b"NaN", b"1e999", b'"Infinity"'):
                r = c.post(path, content=b'{"id": "d-1", "truth": %s}' % bad, headers={"content-type": "application/json"})
                assert r.status_code == 422 and "finite number" in r.json()["error"], (bad, r.text)
        assert c.get("/v1/models/diabetes/metric").json()["n"] == 0
        assert c.post("/v2/models/diabetes/feedback", json={"id": "d-1", "truth": 151.0}).status_code == 200
        assert c.get("/v1/models/diabetes/metric").json()["n"] == 1
