"""API keys: created once, stored hashed in the registry's SQLite index, checked in constant time.

A key reads ``fk_<id>_<secret>``: ``id`` (12 hex digits) is public and finds the row; the
secret is 32 random bytes (256 bits, ``secrets.token_urlsafe``). Only ``sha256(key)`` is stored.

Why sha256 and not bcrypt/argon2: slow hashes exist to protect *low-entropy* passwords against
offline guessing. A 256-bit random secret cannot be guessed whatever the hash speed, so a slow
hash adds no security here — while costing ~100 ms of CPU on *every* request (or a cache of
plaintext-equivalent state), which would itself be a denial-of-service lever. Comparison uses
``hmac.compare_digest`` so timing does not reveal how much of a hash matched.

Scopes: ``predict`` (inference, metadata, metrics, feedback) and ``admin`` (everything,
including load/unload/alias when the server runs with --enable-admin).

Open or keyed: a server is *open* (no key needed, except for admin routes) only while its
registry has never held an API key. From the first key created — even one since revoked —
it is *keyed* for good: every request needs an active key, and when none is active nobody
gets in (401). Revoking the last key therefore locks a server; it never opens it. A
non-loopback bind additionally needs an active key at start (or ``--insecure``, see
``check_bind``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
from datetime import datetime, timezone
from typing import Any, Mapping

from ..errors import ConfigError, NotFoundError, ServeError

__all__ = ["KeyStore", "Authenticator", "SCOPES", "hash_key"]

SCOPES = ("predict", "admin")
PREFIX = "fk"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id       TEXT PRIMARY KEY,
    name     TEXT,
    scope    TEXT NOT NULL,
    hash     TEXT NOT NULL,
    created  TEXT NOT NULL,
    revoked  TEXT
)
"""

_DUMMY_HASH = hashlib.sha256(b"fulcrum-no-such-key").hexdigest()


def hash_key(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _split(token: str) -> str | None:
    """The public id of a well-formed key, else None."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or len(parts[1]) != 12 or not parts[2]:
        return None
    return parts[1]


class KeyStore:
    """The ``api_keys`` table of a registry's index database."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry
        with self._conn() as conn:
            conn.execute(_SCHEMA)
            conn.commit()

    def _conn(self) -> sqlite3.Connection:
        conn = self.registry.connect()
        return _Closing(conn)  # type: ignore[return-value]

    def create(self, scope: str = "predict", name: str | None = None) -> tuple[dict[str, Any], str]:
        """A new key: (its record, the key itself). The key is never stored; show it once."""
        if scope not in SCOPES:
            raise ConfigError(f"Unknown key scope {scope!r}; use one of {', '.join(SCOPES)}.")
        key_id = secrets.token_hex(6)
        token = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        record = {"id": key_id, "name": name, "scope": scope, "created": _now(), "revoked": None}
        with self._conn() as conn:
            conn.execute(
                "INSERT INTO api_keys (id, name, scope, hash, created) VALUES (?, ?, ?, ?, ?)",
                (key_id, name, scope, hash_key(token), record["created"]),
            )
            conn.commit()
        return record, token

    def list(self) -> list[dict[str, Any]]:
        with self._conn() as conn:
            rows = conn.execute("SELECT id, name, scope, created, revoked FROM api_keys ORDER BY created, id").fetchall()
        return [dict(zip(("id", "name", "scope", "created", "revoked"), r)) for r in rows]

    def revoke(self, key_id: str) -> dict[str, Any]:
        with self._conn() as conn:
            cur = conn.execute("UPDATE api_keys SET revoked = ? WHERE id = ? AND revoked IS NULL", (_now(), key_id))
            conn.commit()
            if cur.rowcount == 0:
                row = conn.execute("SELECT revoked FROM api_keys WHERE id = ?", (key_id,)).fetchone()
                if row is None:
                    raise NotFoundError(f"No API key with id {key_id!r}; `fulcrum keys list` shows the ids.")
        return next(k for k in self.list() if k["id"] == key_id)

    def ever_keyed(self) -> bool:
        """True once any key was created in this registry, revoked ones included."""
        with self._conn() as conn:
            return conn.execute("SELECT 1 FROM api_keys LIMIT 1").fetchone() is not None

    def active(self) -> dict[str, tuple[str, str]]:
        """id -> (sha256 hash, scope) of every key not revoked."""
        with self._conn() as conn:
            rows = conn.execute("SELECT id, hash, scope FROM api_keys WHERE revoked IS NULL").fetchall()
        return {i: (h, s) for i, h, s in rows}


class _Closing:
    """A sqlite3 connection as a context manager that closes (sqlite3's own only commits)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.conn.close()


class Authenticator:
    """Checks request headers against a snapshot of the active keys (refreshed by the server).

    ``required`` says the server is keyed: set from the start when the registry has ever held
    a key, and latched on by the first non-empty key set :meth:`update` sees. It never goes
    back to False, so an empty key set on a keyed server refuses everyone.
    """

    def __init__(self, keys: Mapping[str, tuple[str, str]] | None = None, *, required: bool = False) -> None:
        self.keys: dict[str, tuple[str, str]] = dict(keys or {})
        self.required = bool(required) or bool(self.keys)

    @classmethod
    def from_store(cls, store: KeyStore) -> Authenticator:
        """The authenticator of a server starting on ``store``'s registry."""
        return cls(store.active(), required=store.ever_keyed())

    @property
    def enabled(self) -> bool:
        """True when requests need a key (the server is keyed), even while no key is active."""
        return self.required

    def update(self, keys: Mapping[str, tuple[str, str]]) -> None:
        self.keys = dict(keys)
        if self.keys:
            self.required = True

    @staticmethod
    def presented(headers: Mapping[str, str]) -> str | None:
        auth = headers.get("authorization")
        if auth:
            scheme, _, value = auth.partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                return value.strip()
        key = headers.get("x-api-key")
        return key.strip() if key else None

    def check(self, headers: Mapping[str, str], scope: str) -> str | None:
        """The key id allowed to act in ``scope``; None on an open server (never keyed).

        401: no key, malformed, unknown or revoked key, or a keyed server with no active key.
        403: a valid key without the scope, or an admin route on an open server.
        """
        keys = self.keys
        if not self.required and scope != "admin":
            return None
        token = self.presented(headers)
        challenge = {"WWW-Authenticate": 'Bearer realm="fulcrum"'}
        if not keys:
            if not self.required:
                raise ServeError(
                    "Admin routes need an admin API key; create one with `fulcrum keys create --scope admin`.", 403
                )
            raise ServeError(
                "This server needs an API key and none is active (every key was revoked); "
                "create one with `fulcrum keys create --scope predict`.", 401, challenge,
            )
        if not token:
            raise ServeError("This server needs an API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'.", 401, challenge)
        key_id = _split(token)
        stored, key_scope = keys.get(key_id or "", (_DUMMY_HASH, ""))
        if not hmac.compare_digest(hash_key(token), stored):
            raise ServeError("Invalid or revoked API key.", 401, challenge)
        if scope == "admin" and key_scope != "admin":
            raise ServeError("This API key has scope 'predict'; this route needs an 'admin' key.", 403)
        return key_id
