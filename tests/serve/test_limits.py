"""Every limit against a real server: 413 body and rows, 422 schema and non-finite numbers,
429 rate with Retry-After, 503 overload at once, 504 deadline (not computed)."""

from __future__ import annotations

import asyncio
import threading
import time

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
    """Every batch sleeps ``delay`` seconds; ``computed`` counts the rows actually computed."""
    from fulcrum.serve import ServedModel

    state = {"delay": 0.3, "computed": 0}
    original = ServedModel.run_batch

    def run_batch(self, payloads):
        if not threading.current_thread().name.startswith("batch-"):
            return original(self, payloads)  # warm-up runs at full speed
        time.sleep(state["delay"])
        state["computed"] += sum(n for _, n in payloads)
        return original(self, payloads)

    monkeypatch.setattr(ServedModel, "run_batch", run_batch)
    return state


async def _burst(url: str, n: int, path: str = "/v1/models/penguins/predict") -> list[tuple[int, float, httpx.Headers]]:
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(max_connections=n)) as c:
        async def one() -> tuple[int, float, httpx.Headers]:
            t = time.perf_counter()
            r = await c.post(path, json={"records": [PENGUIN_ROW]})
            return r.status_code, time.perf_counter() - t, r.headers

        return await asyncio.gather(*(one() for _ in range(n)))


def test_overload_is_503_at_once_with_retry_after(serve, slow_model):
    slow_model["delay"] = 0.5
    srv = serve(batch={"max_batch_size": 1, "max_queue": 2, "timeout_s": 30})
    results = asyncio.run(_burst(srv.url, 12))
    codes = [r[0] for r in results]
    assert codes.count(200) >= 2 and codes.count(503) >= 5, codes
    rejected = [r for r in results if r[0] == 503]
    assert all(int(h["retry-after"]) >= 1 for _, _, h in rejected)
    # answered without waiting for the queue (which takes >= 1.5 s to drain here)
    assert max(t for _, t, _ in rejected) < max(t for c, t, _ in results if c == 200)


def test_deadline_is_504_and_not_computed(serve, slow_model):
    slow_model["delay"] = 0.6
    srv = serve(batch={"max_batch_size": 1, "max_queue": 50, "timeout_s": 0.25})
    results = asyncio.run(_burst(srv.url, 4))
    assert [r[0] for r in results].count(504) == 4  # the first times out while computing, the rest while waiting
    time.sleep(0.8)
    assert slow_model["computed"] == 1  # the three that waited past their deadline were never computed
    with srv.client() as c:
        assert 'fulcrum_rejected_requests_total{model="penguins",reason="deadline"} 4.0' in c.get("/metrics").text


def test_disconnected_clients_are_dropped(serve, slow_model):
    slow_model["delay"] = 0.4
    srv = serve(batch={"max_batch_size": 1, "max_queue": 50, "timeout_s": 30})

    async def go() -> None:
        async with httpx.AsyncClient(base_url=srv.url, timeout=0.2) as c:
            async def one() -> None:
                try:
                    await c.post("/v1/models/penguins/predict", json={"records": [PENGUIN_ROW]})
                except httpx.TimeoutException:
                    pass  # the client gives up and closes its connection

            await asyncio.gather(*(one() for _ in range(5)))

    asyncio.run(go())
    time.sleep(1.0)
    assert slow_model["computed"] <= 2  # the first (already computing) and at most one racing; not all five
    model = srv.state.models.default("penguins")
    assert model.batcher.stats.dropped >= 3
