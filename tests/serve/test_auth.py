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


def test_keys_revoke_warns_when_it_revokes_the_last_active_key(registry, capsys):
    from fulcrum.cli import main

    reg = str(registry.root)
    ids = []
    for scope in ("predict", "admin"):
        assert main(["keys", "create", "--scope", scope, "--registry", reg]) == 0
        ids.append(capsys.readouterr().out.strip().split("_")[1])
    assert main(["keys", "revoke", ids[0], "--registry", reg]) == 0
    out = capsys.readouterr()
    assert "revoked" in out.out and "warning" not in out.err  # one active key is left
    assert main(["keys", "revoke", ids[1], "--registry", reg]) == 0
    out = capsys.readouterr()
    assert "revoked" in out.out
    warning = [line for line in out.err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "last active" in warning[0] and "refuses every request" in warning[0]
    assert "fulcrum keys create" in warning[0]
    assert main(["keys", "revoke", ids[1], "--registry", reg]) == 0  # already revoked: nothing new to warn about
    assert "warning" not in capsys.readouterr().err


def _wait_for(predicate, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_revoking_the_last_key_locks_the_server_instead_of_opening_it(serve, registry):
    """A keyed server whose active key set becomes empty lets nobody in (401), never everybody."""
    from fulcrum.serve import KeyStore

    store = KeyStore(registry)
    rec, key = store.create("predict")
    srv = serve()
    body = {"records": [PENGUIN_ROW]}
    with srv.client() as c:
        assert c.post("/v1/models/penguins/predict", json=body, headers={"X-API-Key": key}).status_code == 200
        assert c.post("/v1/models/penguins/predict", json=body).status_code == 401
        store.revoke(rec["id"])
        _wait_for(lambda: not srv.state.auth.keys, "the server to refresh its keys")
        for headers in ({}, {"X-API-Key": key}):
            r = c.post("/v1/models/penguins/predict", json=body, headers=headers)
            assert r.status_code == 401, r.text
            assert "fulcrum keys create" in r.json()["error"]
        assert c.get("/metrics").status_code == 401 and c.get("/v1/models").status_code == 401
        assert c.get("/v2/health/ready").status_code == 200  # health stays open


def test_open_loopback_server_becomes_keyed_once_a_key_exists(serve, registry):
    """A loopback server started without keys is open; the first key created locks it for good."""
    from fulcrum.serve import KeyStore

    srv = serve()
    body = {"records": [PENGUIN_ROW]}
    with srv.client() as c:
        assert c.post("/v1/models/penguins/predict", json=body).status_code == 200
        store = KeyStore(registry)
        rec, key = store.create("predict")
        _wait_for(lambda: srv.state.auth.keys, "the server to see the new key")
        assert c.post("/v1/models/penguins/predict", json=body).status_code == 401
        assert c.post("/v1/models/penguins/predict", json=body, headers={"X-API-Key": key}).status_code == 200
        store.revoke(rec["id"])
        _wait_for(lambda: not srv.state.auth.keys, "the server to see the revocation")
        assert c.post("/v1/models/penguins/predict", json=body).status_code == 401


def test_registry_whose_keys_were_all_revoked_serves_nobody(serve, registry):
    """Keys ever created on a registry make it keyed: revoking them all and restarting does not open it."""
    from fulcrum.serve import KeyStore

    store = KeyStore(registry)
    rec, _ = store.create("predict")
    store.revoke(rec["id"])
    srv = serve()
    with srv.client() as c:
        r = c.post("/v1/models/penguins/predict", json={"records": [PENGUIN_ROW]})
        assert r.status_code == 401 and "fulcrum keys create" in r.json()["error"]


def test_authenticator_required_without_keys_refuses_everyone():
    from fulcrum.errors import ServeError
    from fulcrum.serve import Authenticator
    from fulcrum.serve._auth import hash_key

    auth = Authenticator({}, required=True)
    for headers in ({}, {"x-api-key": "fk_0123456789ab_secret"}):
        with pytest.raises(ServeError) as info:
            auth.check(headers, "predict")
        assert info.value.http_status == 401
    open_auth = Authenticator()
    assert open_auth.check({}, "predict") is None
    open_auth.update({"0123456789ab": (hash_key("fk_0123456789ab_secret"), "predict")})
    open_auth.update({})  # the last key revoked: keyed for good
    with pytest.raises(ServeError) as info:
        open_auth.check({}, "predict")
    assert info.value.http_status == 401
