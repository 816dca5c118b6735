"""Hot switch: an alias moved in the registry (or through the admin route) is loaded beside the
old version and swapped after warm-up, with zero failed requests; a bad version keeps the old."""

from __future__ import annotations

import asyncio
import time

import httpx

from .conftest import PENGUIN_ROW


async def _hammer(url: str, stop: asyncio.Event, versions: list[int], failures: list[str], path: str,
                  headers: dict[str, str]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30, headers=headers) as c:
        async def client() -> None:
            while not stop.is_set():
                r = await c.post(path, json={"records": [PENGUIN_ROW]})
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text}")
                else:
                    versions.append(r.json()["version"])

        await asyncio.gather(*(client() for _ in range(8)))


def _run_switch(srv, switch, path="/v1/models/penguins@production/predict", headers=None) -> tuple[list[int], list[str]]:
    versions: list[int] = []
    failures: list[str] = []

    async def go() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(_hammer(srv.url, stop, versions, failures, path, headers or {}))
        await asyncio.sleep(0.5)
        await asyncio.to_thread(switch)
        deadline = time.monotonic() + 15
        while (not versions or versions[-1] != 2) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        stop.set()
        await task

    asyncio.run(go())
    return versions, failures


def test_promote_is_picked_up_with_zero_failures(serve, registry):
    srv = serve(["penguins@production"])
    versions, failures = _run_switch(srv, lambda: registry.set_alias("penguins@2", "production"))
    assert failures == []
    assert versions[0] == 1 and versions[-1] == 2
    # once switched it stays switched (requests in flight at the swap may still finish on 1)
    assert set(versions[-20:]) == {2}
    with httpx.Client(base_url=srv.url) as c:
        assert c.get("/v2/models/penguins").json()["parameters"]["version"] == "2"
    time.sleep(0.2)
    assert (("penguins", 2) in srv.state.models.loaded) and srv.state.models.ready


def test_failed_load_keeps_the_old_version(serve, registry):
    # penguins@2 is promoted while intact (promotion verifies it), then rots on disk before this
    # server loads it: the checksum mismatch makes the load fail, and v1 keeps serving.
    srv = serve(["penguins@production"], poll_interval_s=3600)
    registry.set_alias("penguins@2", "production")
    bad = registry.path("penguins@2") / "weights.safetensors"
    bad.write_bytes(b"corrupted" + bad.read_bytes()[9:])
    loop = srv.state.models.default("penguins").batcher._loop
    asyncio.run_coroutine_threadsafe(srv.state.models.refresh(), loop).result(timeout=30)  # the next poll
    deadline = time.monotonic() + 10
    while ("penguins", 2) not in srv.state.models.failed:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    with httpx.Client(base_url=srv.url) as c:
        r = c.post("/v1/models/penguins@production/predict", json={"records": [PENGUIN_ROW]})
        assert r.status_code == 200 and r.json()["version"] == 1
        assert c.get("/v2/health/ready").status_code == 200
        assert 'fulcrum_model_load_failures_total{model="penguins",version="2"} 1.0' in c.get("/metrics").text


def test_admin_alias_route_switches_and_refuses_a_bad_version(serve, registry):
    import fulcrum
    from fulcrum.serve import KeyStore

    _, admin = KeyStore(registry).create("admin")
    srv = serve(["penguins@production"], enable_admin=True, poll_interval_s=30)  # only the admin route can switch
    headers = {"X-API-Key": admin}

    def switch() -> None:
        with httpx.Client(base_url=srv.url, headers=headers, timeout=30) as c:
            r = c.post("/admin/models/penguins/alias", json={"alias": "production", "version": 2})
            assert r.status_code == 200, r.text

    versions, failures = _run_switch(srv, switch, path="/v1/models/penguins/predict", headers=headers)
    assert failures == [] and versions[-1] == 2
    assert registry.resolve("penguins@production") == ("penguins", 2)

    pkg = fulcrum.train("builtin:penguins", name="penguins", model="linear", progress=False, registry=registry)
    (pkg.path / "preprocess.json").write_text("{}")  # v3 is broken
    with httpx.Client(base_url=srv.url, headers=headers, timeout=30) as c:
        r = c.post("/admin/models/penguins/alias", json={"alias": "production", "version": 3})
        assert r.status_code == 422 and "unchanged" in r.json()["error"]
        assert registry.resolve("penguins@production") == ("penguins", 2)
        assert c.post("/v1/models/penguins/predict", json={"records": [PENGUIN_ROW]}).json()["version"] == 2
        assert c.post("/admin/models/penguins/alias", json={"alias": "production", "version": 9}).status_code == 404
        r = c.post("/admin/models/iris/load")
        assert r.status_code == 200 and r.json()["version"] == 1
        assert c.get("/v2/models/iris").status_code == 200
        assert c.post("/admin/models/iris/unload").status_code == 200
        assert c.get("/v2/models/iris").status_code == 404


def test_admin_alias_route_follows_the_promotion_policy(serve, registry):
    """The admin route moves an alias through fulcrum.artifact.promote: a move to a version worse
    beyond noise is refused (422, the old -> new line with the metric change) and the alias and the
    served version stay; {"force": true} moves it, and the answer says what promote measured."""
    import fulcrum
    from fulcrum.serve import KeyStore

    good = fulcrum.train("builtin:penguins", name="penguins", model="linear", progress=False, registry=registry)
    registry.set_alias(good.ref, "production")  # penguins@3, far better than the 2-epoch MLPs 1 and 2
    _, admin = KeyStore(registry).create("admin")
    srv = serve(["penguins@production"], enable_admin=True, poll_interval_s=30)
    with httpx.Client(base_url=srv.url, headers={"X-API-Key": admin}, timeout=60) as c:
        r = c.post("/admin/models/penguins/alias", json={"alias": "production", "version": 1})
        assert r.status_code == 422, r.text
        body = r.json()
        assert "penguins@production stays at version 3, not moved to version 1" in body["error"]
        assert "accuracy" in body["error"] and '"force": true' in body["error"]
        assert body["detail"]["old"] == 3 and body["detail"]["new"] == 1 and body["detail"]["moved"] is False
        assert body["detail"]["metric"] == "accuracy" and body["detail"]["delta"] < 0
        assert registry.resolve("penguins@production") == ("penguins", 3)
        assert c.post("/v1/models/penguins/predict", json={"records": [PENGUIN_ROW]}).json()["version"] == 3

        r = c.post("/admin/models/penguins/alias", json={"alias": "production", "version": 1, "force": True})
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["old"], body["new"], body["version"], body["moved"], body["forced"]) == (3, 1, 1, True, True)
        assert body["metric"] == "accuracy" and body["delta"] < 0 and len(body["interval"]) == 2
        assert body["interval"][1] < 0 and "FORCED" in body["line"]
        assert registry.resolve("penguins@production") == ("penguins", 1)
        assert c.post("/v1/models/penguins/predict", json={"records": [PENGUIN_ROW]}).json()["version"] == 1
