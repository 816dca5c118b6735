"""The registry: package directories ``<root>/<name>/<version>/`` plus a SQLite index ``<root>/index.sqlite``.

Versions are numbered from 1 and immutable; aliases (``production``, ``staging``, ...) point at
versions. The index is a cache of what the directories hold plus the aliases; other subpackages
(API keys, feedback) add their own tables to the same database through :meth:`Registry.connect`.

A writer publishes a version directory (one rename) and commits its index row while holding the
index's write lock. A process killed between the two leaves an *orphan*: a numbered directory the
index does not know. The next open (and every register) repairs it under the same lock: an orphan
that verifies as the package its directory names is indexed; anything else is moved to
``<root>/.orphans/<name>@<version>-<time>/`` (kept for inspection, out of the registry).
"""

from __future__ import annotations

import builtins
import contextlib
import difflib
import json
import logging
import os
import sqlite3
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import (
    ConfigError,
    FormatError,
    FulcrumError,
    IntegrityError,
    InvalidNameError,
    NotFoundError,
    RegistryError,
)
from ._atomic import TMP_PREFIX, remove_tree
from ._names import format_ref, is_version_text, parse_ref, validate_alias, validate_name
from ._package import ModelPackage, add_files, write_package

__all__ = ["Registry", "default_home", "default_registry_root"]

INDEX_FILE = "index.sqlite"
ORPHANS_DIR = ".orphans"
_log = logging.getLogger("fulcrum.registry")
SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT
);
CREATE TABLE IF NOT EXISTS versions (
    name          TEXT    NOT NULL,
    version       INTEGER NOT NULL,
    created       TEXT    NOT NULL,
    task          TEXT,
    metric_name   TEXT,
    metric_value  REAL,
    size_bytes    INTEGER NOT NULL DEFAULT 0,
    path          TEXT    NOT NULL,
    manifest_json TEXT,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS aliases (
    name    TEXT    NOT NULL,
    alias   TEXT    NOT NULL,
    version INTEGER NOT NULL,
    updated TEXT    NOT NULL,
    PRIMARY KEY (name, alias),
    FOREIGN KEY (name, version) REFERENCES versions (name, version)
);
"""


def default_home() -> Path:
    """``$FULCRUM_HOME``, or ``~/.fulcrum`` when unset."""
    return Path(os.environ.get("FULCRUM_HOME") or "~/.fulcrum").expanduser()


def default_registry_root() -> Path:
    return default_home() / "registry"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _index_fields(pkg: ModelPackage) -> dict[str, Any]:
    """task, metric and size for the index, tolerating manifests without those sections."""
    m = pkg.manifest
    task = m.get("task")
    primary = m.get("metrics", {}).get("primary") if isinstance(m.get("metrics"), dict) else None
    value = primary.get("value") if isinstance(primary, dict) else None
    return {
        "task": str(task.get("kind")) if isinstance(task, dict) and task.get("kind") is not None else None,
        "metric_name": str(primary["name"]) if isinstance(primary, dict) and primary.get("name") is not None else None,
        "metric_value": float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None,
        "size_bytes": pkg.size_bytes,
        "manifest_json": json.dumps(m, sort_keys=True),
    }


class Registry:
    """Versioned model packages in a directory, indexed by SQLite.

    >>> reg = Registry()                       # $FULCRUM_HOME/registry
    >>> pkg = reg.register("iris", manifest, files)
    >>> reg.set_alias("iris@1", "production")
    >>> reg.load("iris@production").ref
    'iris@1'
    """

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_registry_root()
        if self.root.exists() and not self.root.is_dir():
            raise RegistryError(f"Registry root {self.root} is a file; point the registry at a directory.")
        self.root.mkdir(parents=True, exist_ok=True)
        with self._db() as conn:
            ready = self._schema_version(conn) == SCHEMA_VERSION  # already set up: no write lock needed
        if ready:
            self._repair_orphans_on_open()
            return
        with self._db() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                if row is None:
                    conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                elif int(row[0]) > SCHEMA_VERSION:
                    raise FormatError(
                        f"Registry index {self.index_path} was written by a newer Fulcrum (schema {row[0]}); upgrade fulcrum."
                    )
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
        self._repair_orphans_on_open()

    @staticmethod
    def _schema_version(conn: sqlite3.Connection) -> int | None:
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.OperationalError:  # no meta table yet
            return None
        return int(row[0]) if row is not None else None

    def __repr__(self) -> str:
        return f"Registry({str(self.root)!r})"

    @property
    def index_path(self) -> Path:
        return self.root / INDEX_FILE

    # -- database ------------------------------------------------------------

    def connect(self) -> sqlite3.Connection:
        """A new connection to the index (WAL mode, busy timeout). The caller closes it.

        Python's default transaction handling applies: call ``commit()``; use
        ``conn.execute("BEGIN IMMEDIATE")`` for read-modify-write sequences.
        """
        conn = sqlite3.connect(str(self.index_path), timeout=BUSY_TIMEOUT_S)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            conn.close()
            raise
        return conn

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        conn = self.connect()
        try:
            yield conn
        finally:
            conn.close()

    # -- writing -------------------------------------------------------------

    def register(self, name: str, manifest: Mapping[str, Any], files: Mapping[str, bytes]) -> ModelPackage:
        """Write a new version of ``name`` and index it; returns the package.

        The next version number is allocated under the index's write lock (``BEGIN IMMEDIATE``),
        above every version in the index and every numbered directory on disk, so concurrent
        writers get distinct versions and no version directory is ever reused. If anything raises,
        neither a directory nor an index row remains. If the process is killed between publishing
        the directory and committing its row, the directory is an orphan that the next open or
        register of this registry indexes (it is complete: it was fsynced before the rename) or,
        if it no longer verifies, moves to ``.orphans/``; so every version on disk is indexed and
        numbers are not skipped.
        """
        name = validate_name(name)
        model_dir = self.root / name
        with self._db() as conn:
            conn.execute("BEGIN IMMEDIATE")
            target: Path | None = None
            try:
                self._repair_orphans(conn, name)
                row = conn.execute("SELECT MAX(version) FROM versions WHERE name = ?", (name,)).fetchone()
                version = max(int(row[0] or 0), self._max_dir_version(model_dir)) + 1
                target = model_dir / str(version)
                full = {**manifest, "name": name, "version": version, "created": _now()}
                write_package(target, full, files)
                pkg = ModelPackage.load(target, verify=False)
                fields = _index_fields(pkg)
                conn.execute(
                    "INSERT INTO versions (name, version, created, task, metric_name, metric_value, size_bytes, path,"
                    " manifest_json) VALUES (:name, :version, :created, :task, :metric_name, :metric_value,"
                    " :size_bytes, :path, :manifest_json)",
                    {**fields, "name": name, "version": version, "created": full["created"], "path": f"{name}/{version}"},
                )
                conn.commit()
            except BaseException:
                # Remove the directory while still holding the lock, so no other process can see it
                # as an orphan and index it between the rollback and the removal.
                if target is not None and target.exists():
                    remove_tree(target)
                conn.rollback()
                raise
        # Just written and hashed; reads through it are still checked against the manifest.
        return ModelPackage(target, pkg.manifest, verify=True)

    # -- orphans ---------------------------------------------------------------

    def _model_dirs(self, only: str | None = None) -> builtins.list[Path]:
        if only is not None:
            d = self.root / only
            return [d] if d.is_dir() and not d.is_symlink() else []
        out = []
        for entry in self.root.iterdir():
            if entry.name.startswith(".") or not entry.is_dir() or entry.is_symlink():
                continue
            try:
                validate_name(entry.name)
            except InvalidNameError:
                continue
            out.append(entry)
        return out

    def _orphans(self, conn: sqlite3.Connection, only: str | None = None) -> builtins.list[tuple[str, Path]]:
        """(name, directory) of every numbered directory the index has no row for."""
        if not self.root.is_dir():
            return []
        query = "SELECT name, version FROM versions" + (" WHERE name = ?" if only is not None else "")
        indexed = {(n, int(v)) for n, v in conn.execute(query, (only,) if only is not None else ())}
        found = []
        for model_dir in self._model_dirs(only):
            for entry in model_dir.iterdir():
                if not is_version_text(entry.name) or entry.name.startswith(TMP_PREFIX):
                    continue
                if entry.name != str(int(entry.name)) or (model_dir.name, int(entry.name)) not in indexed:
                    found.append((model_dir.name, entry))
        return found

    def _repair_orphans_on_open(self) -> None:
        """Look for orphans without a lock; repair under the write lock only when there are some."""
        try:
            with self._db() as conn:
                if not self._orphans(conn):
                    return
                conn.execute("BEGIN IMMEDIATE")
                try:
                    self._repair_orphans(conn, None)
                    conn.commit()
                except BaseException:
                    conn.rollback()
                    raise
        except sqlite3.OperationalError as exc:  # a read-only registry: leave it as it is
            _log.warning("registry %s: orphaned version directories left as they are (%s)", self.root, exc)

    def _repair_orphans(self, conn: sqlite3.Connection, only: str | None) -> None:
        """Under the write lock: index each orphan that verifies as the version its directory names;
        move any other to ``.orphans/``. The caller commits."""
        for name, path in self._orphans(conn, only):
            version = int(path.name)
            reason = None
            try:
                pkg = ModelPackage.load(path, verify=True)
                if path.name != str(version):
                    reason = f"its directory name {path.name!r} is not a canonical version number"
                elif (pkg.manifest.get("name"), pkg.version) != (name, version):
                    reason = f"it holds {pkg.ref!r}, not '{name}@{version}'"
            except ConfigError:
                raise  # e.g. a bad FULCRUM_MAX_FILE_MB: the user's setting, not the orphan, is wrong
            except (FulcrumError, OSError, ValueError) as exc:
                reason = str(exc)
            if reason is None:
                fields = _index_fields(pkg)
                created = pkg.manifest.get("created") if isinstance(pkg.manifest.get("created"), str) else _now()
                conn.execute(
                    "INSERT INTO versions (name, version, created, task, metric_name, metric_value, size_bytes, path,"
                    " manifest_json) VALUES (:name, :version, :created, :task, :metric_name, :metric_value,"
                    " :size_bytes, :path, :manifest_json)",
                    {**fields, "name": name, "version": version, "created": created, "path": f"{name}/{version}"},
                )
                _log.warning("registry %s: indexed %s@%d, published by a writer that stopped before indexing it",
                             self.root, name, version)
                continue
            dest = self.root / ORPHANS_DIR / f"{name}@{path.name}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S%fZ}"
            try:
                dest.parent.mkdir(exist_ok=True)
                os.rename(path, dest)
            except OSError as exc:
                _log.warning("registry %s: cannot move orphaned %s out of the way (%s)", self.root, path, exc)
                continue
            _log.warning("registry %s: moved orphaned directory %s to %s: %s", self.root, path, dest, reason)

    @staticmethod
    def _max_dir_version(model_dir: Path) -> int:
        """Highest numbered directory under ``model_dir`` (orphans included); clears stale temp dirs.

        Called under the index write lock, which every registry writer holds while writing, so a
        ``.tmp-*`` directory seen here belongs to a writer that crashed."""
        highest = 0
        if not model_dir.is_dir():
            return 0
        for entry in model_dir.iterdir():
            if entry.name.startswith(TMP_PREFIX):
                remove_tree(entry)
            elif is_version_text(entry.name):
                highest = max(highest, int(entry.name))
        return highest

    def add_files(
        self, ref: str, files: Mapping[str, bytes], manifest_updates: Mapping[str, Any] | None = None
    ) -> ModelPackage:
        """Add derived files (optimized variants) to a registered version and refresh its index row."""
        name, version = self.resolve(ref)
        pkg = add_files(self.path(format_ref(name, version)), files, manifest_updates)
        self.update_index(name, version)
        return pkg

    def update_index(self, name: str, version: int) -> None:
        """Re-read size, task and metric of ``name@version`` from its package (e.g. after add_files)."""
        name, version = self.resolve(format_ref(validate_name(name), int(version)))
        pkg = ModelPackage.load(self.root / name / str(version), verify=False)
        fields = _index_fields(pkg)
        with self._db() as conn:
            conn.execute(
                "UPDATE versions SET task = :task, metric_name = :metric_name, metric_value = :metric_value,"
                " size_bytes = :size_bytes, manifest_json = :manifest_json WHERE name = :name AND version = :version",
                {**fields, "name": name, "version": version},
            )
            conn.commit()

    # -- resolving -----------------------------------------------------------

    def names(self) -> builtins.list[str]:
        with self._db() as conn:
            return [r[0] for r in conn.execute("SELECT DISTINCT name FROM versions ORDER BY name")]

    def resolve(self, ref: str) -> tuple[str, int]:
        """``name`` (latest), ``name@3`` or ``name@alias`` -> (name, version)."""
        name, selector = parse_ref(ref)
        with self._db() as conn:
            versions = [r[0] for r in conn.execute("SELECT version FROM versions WHERE name = ? ORDER BY version", (name,))]
            if not versions:
                known = [r[0] for r in conn.execute("SELECT DISTINCT name FROM versions ORDER BY name")]
                close = difflib.get_close_matches(name, known, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                listing = ", ".join(known) if known else "none yet; train one with `fulcrum train`"
                raise NotFoundError(f"No model named {name!r} in registry {self.root}.{hint} Known models: {listing}.")
            if selector is None:
                return name, versions[-1]
            if isinstance(selector, int):
                if selector not in versions:
                    raise NotFoundError(
                        f"Model {name!r} has no version {selector}; its versions are {', '.join(map(str, versions))} "
                        f"(use '{name}' for the latest, {versions[-1]})."
                    )
                return name, selector
            row = conn.execute("SELECT version FROM aliases WHERE name = ? AND alias = ?", (name, selector)).fetchone()
            if row is None:
                aliases = self._aliases(conn, name)
                listing = (
                    ", ".join(f"{a} -> {v}" for a, v in aliases.items())
                    if aliases
                    else f"none; set one with `fulcrum promote {name}@{versions[-1]} --alias {selector}`"
                )
                raise NotFoundError(f"Model {name!r} has no alias {selector!r}; its aliases: {listing}.")
            return name, int(row[0])

    def path(self, ref: str) -> Path:
        name, version = self.resolve(ref)
        return self.root / name / str(version)

    def load(self, ref: str, *, verify: bool = True) -> ModelPackage:
        """The package ``ref`` points at, verified unless ``verify=False``."""
        name, version = self.resolve(ref)
        path = self.root / name / str(version)
        if not path.is_dir():
            raise IntegrityError(
                f"Registry {self.root} indexes {name}@{version} but its directory {path} is missing; restore it from a backup."
            )
        pkg = ModelPackage.load(path, verify=verify)
        if (pkg.manifest.get("name"), pkg.version) != (name, version):
            raise IntegrityError(
                f"Registry {self.root}: directory {path} holds {pkg.ref!r}, not '{name}@{version}' "
                f"(moved or replaced); restore the directory from a backup."
            )
        return pkg

    def list(self) -> builtins.list[dict[str, Any]]:
        """One dict per version, sorted by name and version."""
        with self._db() as conn:
            alias_rows = conn.execute("SELECT name, version, alias FROM aliases ORDER BY alias").fetchall()
            rows = conn.execute(
                "SELECT name, version, task, metric_name, metric_value, size_bytes, created FROM versions"
                " ORDER BY name, version"
            ).fetchall()
        by_version: dict[tuple[str, int], list[str]] = {}
        for n, v, a in alias_rows:
            by_version.setdefault((n, v), []).append(a)
        return [
            {
                "name": n,
                "version": v,
                "aliases": by_version.get((n, v), []),
                "task": task,
                "metric_name": metric_name,
                "metric_value": metric_value,
                "size_bytes": size,
                "created": created,
            }
            for n, v, task, metric_name, metric_value, size, created in rows
        ]

    # -- aliases -------------------------------------------------------------

    @staticmethod
    def _aliases(conn: sqlite3.Connection, name: str) -> dict[str, int]:
        return {a: int(v) for a, v in conn.execute("SELECT alias, version FROM aliases WHERE name = ? ORDER BY alias", (name,))}

    def aliases(self, name: str) -> dict[str, int]:
        """``{alias: version}`` for one model (raises NotFoundError for an unknown model)."""
        name, _ = self.resolve(validate_name(name))
        with self._db() as conn:
            return self._aliases(conn, name)

    def set_alias(self, ref: str, alias: str) -> tuple[str, int]:
        """Point ``alias`` at the version ``ref`` resolves to (moving it if it exists); returns (name, version).

        The target is verified first, fully (every checksum, no unlisted file, no ONNX graph with
        external data): a tampered version raises IntegrityError naming the file and the alias
        does not move (a server following the alias would otherwise never become ready)."""
        alias = validate_alias(alias)
        name, version = self.resolve(ref)
        self.load(format_ref(name, version), verify=True)
        with self._db() as conn:
            conn.execute(
                "INSERT INTO aliases (name, alias, version, updated) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version, updated = excluded.updated",
                (name, alias, version, _now()),
            )
            conn.commit()
        return name, version

    def remove_alias(self, name: str, alias: str) -> None:
        name, _ = self.resolve(validate_name(name))
        with self._db() as conn:
            cur = conn.execute("DELETE FROM aliases WHERE name = ? AND alias = ?", (name, alias))
            conn.commit()
            if cur.rowcount == 0:
                listing = ", ".join(self._aliases(conn, name)) or "none"
                raise NotFoundError(f"Model {name!r} has no alias {alias!r} to remove; its aliases: {listing}.")
