"""Every limit against a real server: 413 body and rows, 422 schema and non-finite numbers,
429 rate with Retry-After, 503 overload at once, 504 deadline (not computed)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading

import httpx
import pytest

from .conftest import PENGUIN_ROW, v2_request

RAW = '{"records": [{"island": "Biscoe", "bill_length_mm": %s, "bill_depth_mm": 14.5, "flipper_length_mm": 215.0, ' \
      '"body_mass_g": 5000.0, "sex": "female", "year": 2008}]}'


def test_body_size_and_rows(serve):
    srv = serve(max_body_bytes=4096, max_rows=3)
    with srv.client() as c:
        r = c.post("/v1/models/penguins/predict", json={"records": [PENGUIN_ROW] * 40})
        assert r.status_code == 413 and "exceeds" in r.json()["error"]

        def chunks():
            yield b'{"records": ['
            for _ in range(60):
                yield (RAW % "45.1")[13:-2].encode() + b","
            yield b"]}"

        r = c.post("/v1/models/penguins/predict", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413  # chunked: no Content-Length, counted while reading
        r = c.post("/v1/models/penguins/predict", json={"records": [PENGUIN_ROW] * 4})
        assert r.status_code == 413 and "at most 3" in r.json()["error"]
        r = c.post("/v2/models/penguins/infer", json=v2_request(PENGUIN_ROW, n=4))
        assert r.status_code == 413


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999", "1e300", '"NaN"', '"inf"'])
def test_non_finite_numbers_are_422(serve, literal):
    srv = serve()
    with srv.client() as c:
        r = c.post("/v1/models/penguins/predict", content=RAW % literal, headers={"content-type": "application/json"})
        assert r.status_code == 422, r.text
        body = v2_request(PENGUIN_ROW)
        text = httpx.Request("POST", "/", json=body).content.decode().replace("45.1", literal)
        r = c.post("/v2/models/penguins/infer", content=text, headers={"content-type": "application/json"})
        assert r.status_code == 422, r.text
        assert c.post("/v1/models/penguins/predict", content=RAW % "null").status_code == 200  # null = missing


def test_schema_violations_are_422(serve):
    srv = serve()
    with srv.client() as c:
        bad = [
            {},
            {"records": []},
            {"records": [{**PENGUIN_ROW, "extra": 1}]},
            {"records": [{k: v for k, v in PENGUIN_ROW.items() if k != "island"}]},
            {"records": [{**PENGUIN_ROW, "bill_length_mm": "long"}]},
            {"records": [{**PENGUIN_ROW, "island": {"nested": True}}]},
        ]
        for body in bad:
            r = c.post("/v1/models/penguins/predict", json=body)
            assert r.status_code == 422, (body, r.text)
            assert "error" in r.json()
        assert c.post("/v1/models/penguins/predict", content=b"{not json").status_code == 422
        good = v2_request(PENGUIN_ROW)
        v2_bad = [
            {"inputs": good["inputs"][:-1]},  # a column missing
            {"inputs": [{**good["inputs"][0], "shape": [2]}, *good["inputs"][1:]]},  # shape vs data
            {"inputs": [{**good["inputs"][0], "datatype": "FP32"}, *good["inputs"][1:]]},  # island is BYTES
            {"inputs": [{**good["inputs"][1], "datatype": "BYTES", "data": ["x"]}, *good["inputs"][:1], *good["inputs"][2:]]},
            {"inputs": [{**i, "shape": [1, 2]} for i in good["inputs"]]},
            {"inputs": [*good["inputs"], {"name": "nope", "datatype": "FP32", "shape": [1], "data": [1]}]},
            {**good, "outputs": [{"name": "nope"}]},
        ]
        for body in v2_bad:
            r = c.post("/v2/models/penguins/infer", json=body)
            assert r.status_code == 422, (body, r.text)


def test_rate_limit_is_429_with_retry_after(serve):
    srv = serve(rate_limit=2, rate_burst=2)
    with srv.client() as c:
        codes = [c.post("/v1/models/penguins/predict", json={"records": [PENGUIN_ROW]}).status_code for _ in range(4)]
        assert codes[:2] == [200, 200] and 429 in codes[2:]
        r = c.post("/v1/models/penguins/predict", json={"records": [PENGUIN_ROW]})
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert c.get("/v2/health/live").status_code == 200  # health is never limited


@pytest.fixture
def slow_model(monkeypatch):
    """Batches computed after ``arm()`` block until ``release()`` (the gate) and count their rows in
    ``computed``: a test orders computing, waiting and expiring without sleeping and guessing."""
    from fulcrum.serve import ServedModel

    state = {"armed": False, "computed": 0, "gate": threading.Event(), "started": threading.Event()}
    original = ServedModel.run_batch

    def run_batch(self, payloads):
        if state["armed"]:
            state["started"].set()
            assert state["gate"].wait(60), "the test never released the gate"
            state["computed"] += sum(n for _, n in payloads)
        return original(self, payloads)

    monkeypatch.setattr(ServedModel, "run_batch", run_batch)
    state["arm"] = lambda: state.__setitem__("armed", True)
    state["release"] = state["gate"].set
    return state


async def _post(c: httpx.AsyncClient, body: object = None, content: bytes | None = None) -> httpx.Response:
    if content is not None:
        return await c.post("/v1/models/penguins/predict", content=content, headers={"content-type": "application/json"})
    return await c.post("/v1/models/penguins/predict", json=body or {"records": [PENGUIN_ROW]})


async def _computing(c: httpx.AsyncClient, slow_model: dict) -> asyncio.Task:
    """One request that is computing (blocked at the gate) when this returns."""
    slow_model["arm"]()
    first = asyncio.create_task(_post(c))
    assert await asyncio.to_thread(slow_model["started"].wait, 30)
    return first


def test_overload_is_503_at_once_with_retry_after_and_never_computed(serve, slow_model):
    srv = serve(batch={"max_batch_size": 1, "max_queue": 2, "timeout_s": 60})

    async def go():
        async with httpx.AsyncClient(base_url=srv.url, timeout=60, limits=httpx.Limits(max_connections=20)) as c:
            first = await _computing(c, slow_model)
            pending = {asyncio.create_task(_post(c)) for _ in range(10)}
            # under overload the body is not even read as JSON: refused before parsing
            pending.add(asyncio.create_task(_post(c, content=b"{not json")))
            refused = []
            while len(refused) < 9:  # 2 fit the queue; 9 are answered while the gate is still closed
                done, pending = await asyncio.wait(pending, timeout=30, return_when=asyncio.FIRST_COMPLETED)
                assert done, "rejections did not come at once"
                refused += [t.result() for t in done]
            assert not slow_model["gate"].is_set()
            slow_model["release"]()
            admitted = [await t for t in pending] + [await first]
            return refused, admitted

    refused, admitted = asyncio.run(go())
    assert [r.status_code for r in refused] == [503] * 9
    assert all(int(r.headers["retry-after"]) >= 1 and "overloaded" in r.json()["error"] for r in refused)
    assert [r.status_code for r in admitted] == [200] * 3
    assert slow_model["computed"] == 3  # the refused were never computed


def test_deadline_is_504_and_not_computed(serve, slow_model):
    srv = serve(batch={"max_batch_size": 1, "max_queue": 50, "timeout_s": 1.0})

    async def go():
        async with httpx.AsyncClient(base_url=srv.url, timeout=60) as c:
            first = await _computing(c, slow_model)
            waiting = await asyncio.gather(*(_post(c) for _ in range(3)))  # answered at their deadline
            computing = await first  # its deadline passes while it computes: 504, result dropped
            assert not slow_model["gate"].is_set()
            slow_model["release"]()
            after = await _post(c)
            return waiting, computing, after

    waiting, computing, after = asyncio.run(go())
    assert [r.status_code for r in waiting] == [504, 504, 504] and computing.status_code == 504
    assert "deadline" in computing.json()["error"] and after.status_code == 200
    assert slow_model["computed"] == 2  # the first and the last; the three that waited past their deadline never ran
    with srv.client() as c:
        assert 'fulcrum_rejected_requests_total{model="penguins",reason="deadline"} 4.0' in c.get("/metrics").text


def test_disconnected_clients_are_dropped(serve, slow_model, capfd):
    srv = serve(batch={"max_batch_size": 4, "max_queue": 50, "timeout_s": 60})
    port = int(srv.url.rsplit(":", 1)[1])
    body = json.dumps({"records": [PENGUIN_ROW]}).encode()
    raw = (b"POST /v1/models/penguins/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    async def go():
        async with httpx.AsyncClient(base_url=srv.url, timeout=60) as c:
            first = await _computing(c, slow_model)
            for _ in range(5):  # send a request and hang up before the answer
                with socket.create_connection(("127.0.0.1", port)) as s:
                    s.sendall(raw)
            barrier = asyncio.create_task(_post(c))  # queued behind the five
            for _ in range(3000):  # until all six wait in the queue
                if srv.state.models.default("penguins").batcher.depth >= 6:
                    break
                await asyncio.sleep(0.01)
            slow_model["release"]()
            return await first, await barrier

    first, barrier = asyncio.run(go())
    assert first.status_code == 200 and barrier.status_code == 200
    assert slow_model["computed"] == 2  # the five that hung up were dropped, not computed
    model = srv.state.models.default("penguins")
    assert model.batcher.stats.dropped == 5
    with srv.client() as c:
        assert 'status="499"' in c.get("/metrics").text
    assert "Exception in ASGI application" not in capfd.readouterr().err
