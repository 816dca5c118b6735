from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import threading
from pathlib import Path

import pytest

from fulcrum.artifact import ModelPackage, Registry, default_home, default_registry_root
from fulcrum.artifact import _registry
from fulcrum.errors import ArtifactError, FormatError, IntegrityError, InvalidNameError, NotFoundError

from .conftest import tiny_onnx


def manifest(acc: float = 0.9) -> dict:
    return {"task": {"kind": "classification"}, "metrics": {"primary": {"name": "accuracy", "value": acc}}}


FILES = {"model.onnx": tiny_onnx("main"), "preprocess.json": b"{}"}
V1, V2 = tiny_onnx("v1"), tiny_onnx("v2")


@pytest.fixture
def reg(tmp_path):
    return Registry(tmp_path / "reg")


def test_default_root_follows_fulcrum_home(fulcrum_home, monkeypatch, tmp_path):
    assert default_home() == fulcrum_home
    assert default_registry_root() == fulcrum_home / "registry"
    reg = Registry()
    assert reg.root == fulcrum_home / "registry"
    assert (fulcrum_home / "registry" / "index.sqlite").is_file()
    pkg = reg.register("iris", manifest(), FILES)
    assert pkg.path == fulcrum_home / "registry" / "iris" / "1"
    monkeypatch.delenv("FULCRUM_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_home() == tmp_path / "home" / ".fulcrum"
    assert Registry(str(tmp_path / "explicit")).root == tmp_path / "explicit"


def test_register_writes_numbered_immutable_versions(reg):
    p1 = reg.register("iris", manifest(0.9), {**FILES, "model.onnx": V1})
    p2 = reg.register("iris", manifest(0.95), {**FILES, "model.onnx": V2})
    other = reg.register("penguins", {}, FILES)
    assert (p1.ref, p2.ref, other.ref) == ("iris@1", "iris@2", "penguins@1")
    assert p1.path == reg.root / "iris" / "1" and p2.path == reg.root / "iris" / "2"
    assert isinstance(p1, ModelPackage)
    m = json.loads((p2.path / "manifest.json").read_text())
    assert (m["name"], m["version"], m["format_version"]) == ("iris", 2, 1)
    assert m["created"].endswith("+00:00")
    assert reg.load("iris@1").read_bytes("model.onnx") == V1
    assert reg.load("iris").read_bytes("model.onnx") == V2
    with pytest.raises(ArtifactError, match="already exists"):
        _registry.write_package(reg.root / "iris" / "1", {}, {"x": b"y"})
    assert reg.load("iris@1").read_bytes("model.onnx") == V1


def test_register_validates_the_name(reg):
    for bad in ["../x", "a/b", "..", "", "x" * 65]:
        with pytest.raises(InvalidNameError):
            reg.register(bad, {}, FILES)
    assert set(os.listdir(reg.root)) <= {"index.sqlite", "index.sqlite-wal", "index.sqlite-shm"}
    assert reg.list() == []


def test_list_rows(reg):
    reg.register("iris", manifest(0.9), FILES)
    reg.register("iris", {}, {"a": b"123"})
    reg.register("abc", manifest(0.5), FILES)
    reg.set_alias("iris@1", "production")
    reg.set_alias("iris@1", "staging")
    rows = reg.list()
    assert [(r["name"], r["version"]) for r in rows] == [("abc", 1), ("iris", 1), ("iris", 2)]
    r = rows[1]
    assert r["aliases"] == ["production", "staging"]
    size = sum(len(v) for v in FILES.values())
    assert (r["task"], r["metric_name"], r["metric_value"], r["size_bytes"]) == ("classification", "accuracy", 0.9, size)
    assert rows[2]["aliases"] == [] and rows[2]["task"] is None and rows[2]["metric_value"] is None
    assert rows[2]["size_bytes"] == 3
    assert set(r) == {"name", "version", "aliases", "task", "metric_name", "metric_value", "size_bytes", "created"}


def test_resolve_and_aliases_move(reg):
    for _ in range(3):
        reg.register("iris", manifest(), FILES)
    assert reg.resolve("iris") == ("iris", 3)
    assert reg.resolve("iris@2") == ("iris", 2)
    assert reg.set_alias("iris@1", "production") == ("iris", 1)
    assert reg.resolve("iris@production") == ("iris", 1)
    assert reg.load("iris@production").version == 1
    assert reg.set_alias("iris", "production") == ("iris", 3)  # moved to latest
    assert reg.resolve("iris@production") == ("iris", 3)
    assert reg.set_alias("iris@production", "staging") == ("iris", 3)
    assert reg.aliases("iris") == {"production": 3, "staging": 3}
    assert reg.path("iris@staging") == reg.root / "iris" / "3"
    reg.remove_alias("iris", "staging")
    assert reg.aliases("iris") == {"production": 3}
    with pytest.raises(NotFoundError, match="no alias 'staging' to remove; its aliases: production"):
        reg.remove_alias("iris", "staging")
    with pytest.raises(InvalidNameError, match="all digits"):
        reg.set_alias("iris@1", "2")


def test_unknown_references_list_the_alternatives(reg):
    reg.register("iris", manifest(), FILES)
    reg.register("iris", manifest(), FILES)
    reg.register("penguins", manifest(), FILES)
    reg.set_alias("iris@1", "production")
    with pytest.raises(NotFoundError) as info:
        reg.resolve("irsi")
    assert "Did you mean 'iris'?" in str(info.value) and "Known models: iris, penguins" in str(info.value)
    with pytest.raises(NotFoundError, match=r"no version 7; its versions are 1, 2"):
        reg.load("iris@7")
    with pytest.raises(NotFoundError, match=r"no alias 'staging'; its aliases: production -> 1"):
        reg.path("iris@staging")
    with pytest.raises(NotFoundError, match="aliases: none; set one with `fulcrum promote penguins@1 --alias prod`"):
        reg.resolve("penguins@prod")
    with pytest.raises(NotFoundError, match="No model named 'x'"):
        reg.aliases("x")
    with pytest.raises(NotFoundError, match="none yet"):
        Registry(reg.root.parent / "empty").resolve("iris")
    assert isinstance(info.value, LookupError) and info.value.http_status == 404


def test_registry_load_verifies(reg):
    pkg = reg.register("iris", manifest(), FILES)
    (pkg.path / "model.onnx").write_bytes(b"evil")
    with pytest.raises(IntegrityError, match="'model.onnx' fails its checksum"):
        reg.load("iris")
    assert reg.load("iris", verify=False).version == 1


def test_registry_load_checks_the_directory_matches_the_index(reg):
    reg.register("a", manifest(), FILES)
    reg.register("a", manifest(), FILES)
    (reg.root / "a" / "1").rename(reg.root / "a" / "tmp")
    (reg.root / "a" / "2").rename(reg.root / "a" / "1")
    with pytest.raises(IntegrityError, match="holds 'a@2', not 'a@1'"):
        reg.load("a@1")
    with pytest.raises(IntegrityError, match="directory .* is missing"):
        reg.load("a@2")


def test_failed_write_leaves_no_row_and_no_directory(reg, monkeypatch):
    real = _registry.write_package

    def half_write(directory, manifest, files):
        directory.mkdir(parents=True)
        (directory / "model.onnx").write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(_registry, "write_package", half_write)
    with pytest.raises(OSError, match="disk full"):
        reg.register("iris", manifest(), FILES)
    assert not (reg.root / "iris" / "1").exists()
    assert reg.list() == []

    monkeypatch.setattr(_registry, "write_package", real)
    monkeypatch.setattr(_registry, "_index_fields", lambda pkg: 1 / 0)  # fails after the directory is written
    with pytest.raises(ZeroDivisionError):
        reg.register("iris", manifest(), FILES)
    assert not (reg.root / "iris" / "1").exists()
    assert reg.list() == []


# A kill between publishing a version directory (the rename) and committing its index row leaves
# an orphan: a complete package the index does not know. The next open (or register) indexes it
# when it verifies, and moves it out of the model's directory when it does not.
KILL_AFTER_PUBLISH = """
import os, sys
from fulcrum.artifact import Registry, _registry
real = _registry._index_fields
def die(pkg):
    os._exit(9)  # SIGKILL-like: no except, no finally, no rollback of the directory
_registry._index_fields = die
Registry(sys.argv[1]).register("iris", {"task": {"kind": "classification"}, "note": sys.argv[2]},
                               {"model.onnx": bytes.fromhex(sys.argv[3]), "preprocess.json": b"{}"})
"""


def _killed_register(root, note="orphan"):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", KILL_AFTER_PUBLISH, str(root), note, FILES["model.onnx"].hex()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    return proc


def test_a_version_published_but_not_indexed_is_recovered_on_open(tmp_path):
    root = tmp_path / "reg"
    Registry(root).register("iris", manifest(), FILES)
    _killed_register(root)
    assert (root / "iris" / "2" / "manifest.json").is_file()  # the orphan really is there
    reg = Registry(root)  # the next open indexes it: no gap, nothing lost
    assert [(r["name"], r["version"]) for r in reg.list()] == [("iris", 1), ("iris", 2)]
    assert reg.load("iris@2").manifest["note"] == "orphan"
    assert reg.resolve("iris") == ("iris", 2)
    assert reg.register("iris", manifest(), FILES).version == 3


def test_an_orphan_is_recovered_by_register_too(tmp_path):
    root = tmp_path / "reg"
    reg = Registry(root)  # opened before the crash: register itself must notice
    _killed_register(root)
    assert reg.register("iris", manifest(), FILES).version == 2
    assert [r["version"] for r in reg.list()] == [1, 2]
    assert reg.load("iris@1").manifest["note"] == "orphan"


def test_a_damaged_orphan_is_moved_out_of_the_registry(tmp_path):
    root = tmp_path / "reg"
    reg = Registry(root)
    _killed_register(root)
    (root / "iris" / "1" / "preprocess.json").write_bytes(b"{tampered}")
    (root / "iris" / "7").mkdir()  # an empty numbered directory is no version either
    reg = Registry(root)
    assert reg.list() == []
    assert sorted(os.listdir(root / "iris")) == []
    moved = sorted(p.name for p in (root / ".orphans").iterdir())
    assert len(moved) == 2 and moved[0].startswith("iris@1-") and moved[1].startswith("iris@7-")
    assert (root / ".orphans" / moved[0] / "manifest.json").is_file()  # kept for inspection, not deleted
    assert reg.register("iris", manifest(), FILES).version == 1


def test_stale_temp_dirs_are_cleared_and_other_entries_kept(reg):
    (reg.root / "iris" / ".tmp-dead").mkdir(parents=True)
    (reg.root / "iris" / "notes").mkdir()
    assert reg.register("iris", manifest(), FILES).version == 1
    assert sorted(os.listdir(reg.root / "iris")) == ["1", "notes"]


def test_directories_named_with_non_ascii_digits_are_not_versions(reg):
    (reg.root / "iris" / "\u0667").mkdir(parents=True)  # Arabic-Indic 7: str.isdigit() says yes, int() gives 7
    (reg.root / "iris" / "\uff19").mkdir()  # full-width 9
    assert reg.register("iris", manifest(), FILES).version == 1
    assert reg.resolve("iris") == ("iris", 1)


def test_set_alias_verifies_the_target_before_moving(reg):
    """Promoting a tampered version must fail, naming the file, and leave the alias where it was."""
    from .conftest import add_listed_file
    from .test_external_data import _model_with

    reg.register("iris", manifest(), FILES)
    v2 = reg.register("iris", manifest(), {**FILES, "model.onnx": V2})
    v3 = reg.register("iris", manifest(), {**FILES, "model.onnx": V1})
    reg.set_alias("iris@1", "production")

    (v2.path / "preprocess.json").write_bytes(b'{"x": 1}')
    with pytest.raises(IntegrityError, match=r"'preprocess\.json' fails its checksum"):
        reg.set_alias("iris@2", "production")
    with pytest.raises(IntegrityError, match=r"'preprocess\.json'"):
        reg.set_alias("iris@2", "staging")  # a new alias is not created either
    add_listed_file(v3.path, "variants/x/model.onnx", _model_with("initializer"))  # re-hashed: checksums pass
    with pytest.raises(IntegrityError, match=r"'variants/x/model\.onnx'.*external data"):
        reg.set_alias("iris@3", "production")
    assert reg.aliases("iris") == {"production": 1}
    assert reg.resolve("iris@production") == ("iris", 1)


def test_add_files_and_update_index(reg):
    reg.register("iris", manifest(0.9), FILES)
    int8 = tiny_onnx("12345")
    pkg = reg.add_files("iris", {"variants/int8/model.onnx": int8}, {"variants": {"int8": {"size_bytes": len(int8)}}})
    assert pkg.has_file("variants/int8/model.onnx")
    row = reg.list()[0]
    assert row["size_bytes"] == sum(len(v) for v in FILES.values()) + len(int8)
    loaded = reg.load("iris@1")
    assert loaded.manifest["variants"]["int8"] == {"size_bytes": len(int8)}
    assert loaded.read_bytes("variants/int8/model.onnx") == int8
    with pytest.raises(NotFoundError):
        reg.update_index("iris", 9)


def test_connect_shares_the_index_with_other_tables(reg):
    reg.register("iris", manifest(), FILES)
    conn = reg.connect()
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
        conn.execute("CREATE TABLE IF NOT EXISTS api_keys (id TEXT PRIMARY KEY)")
        conn.execute("INSERT INTO api_keys VALUES ('k1')")
        conn.commit()
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("1",)
        assert conn.execute("SELECT name, version, path FROM versions").fetchall() == [("iris", 1, "iris/1")]
    finally:
        conn.close()
    again = Registry(reg.root)  # re-opening keeps foreign tables and data
    assert again.resolve("iris") == ("iris", 1)
    with sqlite3.connect(reg.root / "index.sqlite") as raw:
        assert raw.execute("SELECT id FROM api_keys").fetchall() == [("k1",)]
    raw.close()


def test_newer_index_schema_is_refused(reg):
    conn = reg.connect()
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(FormatError, match="newer Fulcrum.*upgrade fulcrum"):
        Registry(reg.root)


def test_concurrent_registration_threads_get_distinct_versions(tmp_path):
    root = tmp_path / "reg"
    Registry(root)
    results: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def worker() -> None:
        try:
            r = Registry(root)  # own connections per call
            barrier.wait()
            for _ in range(4):
                results.append(r.register("iris", manifest(), FILES).version)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(results) == list(range(1, 25))
    reg = Registry(root)
    assert [r["version"] for r in reg.list()] == list(range(1, 25))
    for v in (1, 12, 24):
        assert reg.load(f"iris@{v}").version == v


def _register_in_process(root: str, n: int, queue) -> None:
    reg = Registry(Path(root))
    queue.put([reg.register("shared", {}, {"m": b"x"}).version for _ in range(n)])


def test_concurrent_registration_processes_get_distinct_versions(tmp_path):
    root = tmp_path / "reg"
    Registry(root)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_register_in_process, args=(str(root), 5, queue)) for _ in range(3)]
    for p in procs:
        p.start()
    got = [v for _ in procs for v in queue.get(timeout=60)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    queue.close()
    queue.join_thread()
    assert sorted(got) == list(range(1, 16))
