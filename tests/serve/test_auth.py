"""API keys: stored hashed, checked in constant time, revocable, scoped; the CLI verbs."""

from __future__ import annotations

import time

import pytest

from .conftest import PENGUIN_ROW


def test_keystore_stores_only_hashes(registry):
    from fulcrum.serve import KeyStore

    store = KeyStore(registry)
    rec, token = store.create("predict", "ci")
    assert token.startswith(f"fk_{rec['id']}_") and len(token) > 40
    conn = registry.connect()
    try:
        dump = "\n".join(conn.iterdump())
    finally:
        conn.close()
    assert token not in dump and token.split("_", 2)[2] not in dump
    assert [k["id"] for k in store.list()] == [rec["id"]] and "hash" not in store.list()[0]
    store.revoke(rec["id"])
    assert store.active() == {} and store.list()[0]["revoked"]
    with pytest.raises(LookupError):
        store.revoke("000000000000")
    with pytest.raises(ValueError):
        store.create("root")


def test_authenticator_cases():
    from fulcrum.errors import ServeError
    from fulcrum.serve import Authenticator
    from fulcrum.serve._auth import hash_key

    token = "fk_0123456789ab_secret"
    auth = Authenticator({"0123456789ab": (hash_key(token), "predict")})
    assert auth.check({"authorization": f"Bearer {token}"}, "predict") == "0123456789ab"
    assert auth.check({"x-api-key": token}, "predict") == "0123456789ab"
    for headers, scope, status in [
        ({}, "predict", 401),
        ({"authorization": "Bearer fk_0123456789ab_wrong"}, "predict", 401),
        ({"authorization": "Basic abc"}, "predict", 401),
        ({"x-api-key": "garbage"}, "predict", 401),
        ({"x-api-key": token}, "admin", 403),
    ]:
        with pytest.raises(ServeError) as info:
            auth.check(headers, scope)
        assert info.value.http_status == status
    assert Authenticator().check({}, "predict") is None  # open server
    with pytest.raises(ServeError) as info:
        Authenticator().check({}, "admin")  # admin always needs an admin key
    assert info.value.http_status == 403


def test_server_auth_no_key_wrong_key_revoked_scope(serve, registry):
    from fulcrum.serve import KeyStore

    store = KeyStore(registry)
    rec, key = store.create("predict")
    _, admin = store.create("admin")
    srv = serve(enable_admin=True)
    body = {"records": [PENGUIN_ROW]}
    with srv.client() as c:
        assert c.get("/v2/health/ready").status_code == 200  # health needs no key
        r = c.post("/v1/models/penguins/predict", json=body)
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        assert c.post("/v1/models/penguins/predict", json=body, headers={"Authorization": "Bearer fk_x_y"}).status_code == 401
        assert c.post("/v1/models/penguins/predict", json=body, headers={"Authorization": f"Bearer {key}x"}).status_code == 401
        assert c.post("/v1/models/penguins/predict", json=body, headers={"Authorization": f"Bearer {key}"}).status_code == 200
        assert c.post("/v1/models/penguins/predict", json=body, headers={"X-API-Key": key}).status_code == 200
        assert c.get("/metrics").status_code == 401 and c.get("/openapi.json").status_code == 401
        assert c.get("/metrics", headers={"X-API-Key": key}).status_code == 200
        assert c.get("/admin/models", headers={"X-API-Key": key}).status_code == 403
        assert c.get("/admin/models", headers={"X-API-Key": admin}).status_code == 200
        assert c.post("/v1/models/penguins/predict", json=body, headers={"X-API-Key": admin}).status_code == 200
        store.revoke(rec["id"])
        deadline = time.monotonic() + 5
        while c.post("/v1/models/penguins/predict", json=body, headers={"X-API-Key": key}).status_code != 401:
            assert time.monotonic() < deadline, "revoked key still accepted"
            time.sleep(0.1)


def test_admin_routes_are_off_unless_enabled(serve, registry):
    from fulcrum.serve import KeyStore

    _, admin = KeyStore(registry).create("admin")
    srv = serve()
    with srv.client() as c:
        assert c.get("/admin/models", headers={"X-API-Key": admin}).status_code == 404
        assert c.post("/admin/models/penguins/alias", json={"alias": "production", "version": 2},
                      headers={"X-API-Key": admin}).status_code == 404


def test_keys_cli(registry, capsys):
    from fulcrum.cli import main

    reg = str(registry.root)
    assert main(["keys", "create", "--scope", "admin", "--name", "ops", "--registry", reg]) == 0
    out = capsys.readouterr()
    token = out.out.strip()
    assert token.startswith("fk_") and "not shown again" in out.err
    assert main(["keys", "list", "--registry", reg]) == 0
    listing = capsys.readouterr().out
    assert "ops" in listing and "admin" in listing and token not in listing
    key_id = token.split("_")[1]
    assert main(["keys", "revoke", key_id, "--registry", reg]) == 0
    assert "revoked" in capsys.readouterr().out
    assert main(["keys", "revoke", "nope", "--registry", reg]) == 1
