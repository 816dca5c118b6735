from __future__ import annotations

import hashlib
import json
import os
import sys

import pytest

import fulcrum.artifact
from fulcrum.artifact import FORMAT_VERSION, ModelPackage, add_files, write_package
from fulcrum.artifact import _package
from fulcrum.errors import ArtifactError, FormatError, IntegrityError, NotFoundError

from .conftest import tiny_onnx

FILES = {
    "model.onnx": tiny_onnx("main"),
    "weights.safetensors": b"\x00" * 1000,
    "preprocess.json": json.dumps({"means": [1.0, 2.0]}).encode(),
    "variants/onnx-fp32/model.onnx": tiny_onnx("fp32"),
}
FP32 = FILES["variants/onnx-fp32/model.onnx"]
MANIFEST = {"name": "iris", "task": {"kind": "classification"}, "metrics": {"primary": {"name": "accuracy", "value": 0.95}}}


@pytest.fixture
def pkg_dir(tmp_path):
    return write_package(tmp_path / "pkgs" / "iris", MANIFEST, FILES)


def test_public_api_is_what_it_claims():
    assert sorted(fulcrum.artifact.__all__) == [
        "DEFAULT_MAX_DROP", "FORMAT_VERSION", "ModelPackage", "Registry", "add_files", "check_onnx_graph",
        "compare_versions", "default_home", "default_registry_root", "is_path_ref", "load_reference", "parse_ref",
        "promote", "sanitize_name",
        "validate_alias", "validate_name", "write_package",
    ]
    for name in fulcrum.artifact.__all__:
        assert getattr(fulcrum.artifact, name) is not None


def test_write_package_records_every_file_and_round_trips(pkg_dir):
    manifest = json.loads((pkg_dir / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION == 1
    assert set(manifest["files"]) == set(FILES)
    entry = manifest["files"]["variants/onnx-fp32/model.onnx"]
    assert entry == {"sha256": hashlib.sha256(FP32).hexdigest(), "bytes": len(FP32)}
    assert (pkg_dir / "manifest.json").read_text() == json.dumps(manifest, sort_keys=True, indent=2) + "\n"
    digest = hashlib.sha256((pkg_dir / "manifest.json").read_bytes()).hexdigest()
    assert (pkg_dir / "MANIFEST.sha256").read_text() == f"{digest}  manifest.json\n"
    assert sorted(os.listdir(pkg_dir.parent)) == ["iris"]  # no temp dir left behind

    pkg = ModelPackage.load(pkg_dir)
    assert pkg.path == pkg_dir
    assert pkg.files == sorted(FILES)
    assert pkg.size_bytes == sum(len(v) for v in FILES.values())
    assert pkg.name == "iris" and pkg.version is None and pkg.ref == "iris"
    assert pkg.manifest["task"] == {"kind": "classification"}
    for rel, data in FILES.items():
        assert pkg.read_bytes(rel) == data
        assert pkg.has_file(rel)
    assert pkg.read_json("preprocess.json") == {"means": [1.0, 2.0]}
    assert pkg.file_path("model.onnx") == pkg_dir / "model.onnx"
    assert not pkg.has_file("manifest.json")


def test_write_package_does_not_mutate_the_callers_manifest(tmp_path):
    manifest = {"name": "m", "files": "caller junk"}
    write_package(tmp_path / "p", manifest, {"a": b"1"})
    assert manifest == {"name": "m", "files": "caller junk"}
    assert set(ModelPackage.load(tmp_path / "p").manifest["files"]) == {"a"}


def test_destination_must_not_exist(pkg_dir):
    with pytest.raises(ArtifactError, match="already exists.*immutable"):
        write_package(pkg_dir, MANIFEST, {"other": b"x"})
    assert ModelPackage.load(pkg_dir).read_bytes("model.onnx") == FILES["model.onnx"]


@pytest.mark.parametrize("rel", ["/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a/", "", "a\\b", "C:/x",
                                 "manifest.json", "MANIFEST.sha256", ".tmp-x"])
def test_unsafe_file_names_are_rejected(tmp_path, rel):
    with pytest.raises(ArtifactError):
        write_package(tmp_path / "p", {}, {rel: b"x"})
    assert not (tmp_path / "p").exists()
    assert not (tmp_path.parent / "x").exists()


def test_file_and_directory_with_the_same_name_conflict(tmp_path):
    with pytest.raises(ArtifactError, match="both a file and a directory"):
        write_package(tmp_path / "p", {}, {"a": b"1", "a/b": b"2"})


def test_non_json_manifest_is_rejected(tmp_path):
    with pytest.raises(ArtifactError, match="not plain JSON"):
        write_package(tmp_path / "p", {"value": float("nan")}, {"a": b"1"})
    assert os.listdir(tmp_path) == []


def test_crash_mid_write_leaves_nothing(tmp_path, monkeypatch):
    real = _package.write_file
    calls = []

    def flaky(path, data):
        calls.append(path)
        if len(calls) == 3:
            raise OSError("disk full")
        real(path, data)

    monkeypatch.setattr(_package, "write_file", flaky)
    with pytest.raises(OSError, match="disk full"):
        write_package(tmp_path / "out" / "p", MANIFEST, FILES)
    assert len(calls) == 3
    assert os.listdir(tmp_path / "out") == []  # neither destination nor temp dir


def test_crash_at_rename_leaves_nothing(tmp_path, monkeypatch):
    def boom(src, dst):
        raise OSError("power cut")

    monkeypatch.setattr(_package.os, "rename", boom)
    with pytest.raises(OSError, match="power cut"):
        write_package(tmp_path / "p", MANIFEST, FILES)
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- verification


def test_tampered_file_is_refused_naming_it(pkg_dir):
    (pkg_dir / "weights.safetensors").write_bytes(b"\x01" + b"\x00" * 999)  # same size, other bytes
    with pytest.raises(IntegrityError) as info:
        ModelPackage.load(pkg_dir)
    msg = str(info.value)
    assert "file 'weights.safetensors' fails its checksum (tampered or corrupted)" in msg
    assert "restore it from a backup" in msg
    assert ModelPackage.load(pkg_dir, verify=False).files == sorted(FILES)


def test_truncated_file_in_subdirectory_is_refused(pkg_dir):
    (pkg_dir / "variants" / "onnx-fp32" / "model.onnx").write_bytes(b"fp3")
    with pytest.raises(IntegrityError, match="'variants/onnx-fp32/model.onnx' fails its checksum"):
        ModelPackage.load(pkg_dir)


def test_missing_file_is_refused_naming_it(pkg_dir):
    (pkg_dir / "preprocess.json").unlink()
    with pytest.raises(IntegrityError, match="'preprocess.json' listed in the manifest is missing"):
        ModelPackage.load(pkg_dir)


@pytest.mark.parametrize("extra", ["evil.py", "variants/onnx-fp32/extra.bin", "new/dir/file"])
def test_extra_file_is_refused_naming_it(pkg_dir, extra):
    target = pkg_dir / extra
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"import os")
    with pytest.raises(IntegrityError, match=f"'{extra}' is not listed in the manifest"):
        ModelPackage.load(pkg_dir)


def test_symlink_in_place_of_a_file_is_refused(pkg_dir, tmp_path):
    outside = tmp_path / "outside.bin"
    outside.write_bytes(FILES["model.onnx"])
    (pkg_dir / "model.onnx").unlink()
    (pkg_dir / "model.onnx").symlink_to(outside)
    with pytest.raises(IntegrityError, match="'model.onnx' is not a regular file"):
        ModelPackage.load(pkg_dir)


def test_edited_manifest_is_refused(pkg_dir):
    manifest = json.loads((pkg_dir / "manifest.json").read_text())
    manifest["metrics"]["primary"]["value"] = 0.99
    (pkg_dir / "manifest.json").write_text(json.dumps(manifest, sort_keys=True, indent=2) + "\n")
    with pytest.raises(IntegrityError, match="'manifest.json' fails its checksum"):
        ModelPackage.load(pkg_dir)
    assert ModelPackage.load(pkg_dir, verify=False).manifest["metrics"]["primary"]["value"] == 0.99


def test_missing_digest_file_is_refused(pkg_dir):
    (pkg_dir / "MANIFEST.sha256").unlink()
    with pytest.raises(IntegrityError, match="MANIFEST.sha256 is missing"):
        ModelPackage.load(pkg_dir)


def _rewrite_manifest(pkg_dir, manifest_bytes):
    (pkg_dir / "manifest.json").write_bytes(manifest_bytes)
    digest = hashlib.sha256(manifest_bytes).hexdigest()
    (pkg_dir / "MANIFEST.sha256").write_text(f"{digest}  manifest.json\n")


def test_newer_format_is_refused_with_upgrade_hint(pkg_dir):
    manifest = json.loads((pkg_dir / "manifest.json").read_text())
    manifest["format_version"] = FORMAT_VERSION + 1
    (pkg_dir / "manifest.json").write_text(json.dumps(manifest))  # digest no longer matches either
    with pytest.raises(FormatError, match=r"written by a newer Fulcrum \(format 2.*upgrade fulcrum"):
        ModelPackage.load(pkg_dir)
    with pytest.raises(FormatError, match="newer Fulcrum"):
        ModelPackage.load(pkg_dir, verify=False)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"files": {}}', "no valid format_version"),
        (b'{"format_version": 1}', "no valid 'files' table"),
        (b'{"format_version": 1, "files": {"../x": {"sha256": "0", "bytes": 1}}}', "unsafe file name"),
    ],
)
def test_malformed_manifest_is_a_format_error(pkg_dir, content, match):
    _rewrite_manifest(pkg_dir, content)
    with pytest.raises(FormatError, match=match):
        ModelPackage.load(pkg_dir)


def test_missing_manifest_or_directory(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FormatError, match="manifest.json is missing"):
        ModelPackage.load(tmp_path / "empty")
    with pytest.raises(NotFoundError, match="does not exist"):
        ModelPackage.load(tmp_path / "nowhere")


def test_reading_an_unlisted_file_is_refused(pkg_dir):
    (pkg_dir / "sneaky.bin").write_bytes(b"x")
    pkg = ModelPackage.load(pkg_dir, verify=False)
    for rel in ["sneaky.bin", "manifest.json", "../iris/model.onnx"]:
        with pytest.raises(NotFoundError, match="its files are: model.onnx"):
            pkg.read_bytes(rel)


def test_reads_are_checked_after_load(pkg_dir):
    pkg = ModelPackage.load(pkg_dir)
    (pkg_dir / "model.onnx").write_bytes(b"swapped after load")
    with pytest.raises(IntegrityError, match="'model.onnx' fails its checksum"):
        pkg.read_bytes("model.onnx")


def test_temp_debris_of_an_interrupted_write_is_ignored(pkg_dir):
    (pkg_dir / ".tmp-0123").mkdir()
    (pkg_dir / ".tmp-0123" / "model.onnx").write_bytes(b"half")
    (pkg_dir / ".tmp-4567-manifest.json").write_bytes(b"half")
    assert ModelPackage.load(pkg_dir).files == sorted(FILES)


# --------------------------------------------------------------------------- add_files


def test_add_files_extends_the_package(pkg_dir):
    int8, pruned = tiny_onnx("int8"), tiny_onnx("pruned")
    pkg = add_files(pkg_dir, {"variants/int8/model.onnx": int8}, {"variants": {"int8": {"p50_ms": 0.4}}, "note": "x"})
    assert pkg.files == sorted([*FILES, "variants/int8/model.onnx"])
    assert pkg.read_bytes("variants/int8/model.onnx") == int8
    assert pkg.manifest["variants"] == {"int8": {"p50_ms": 0.4}}
    assert pkg.manifest["task"] == MANIFEST["task"]
    pkg = add_files(pkg_dir, {"variants/pruned/model.onnx": pruned}, {"variants": {"pruned": {"p50_ms": 0.3}}})
    assert pkg.manifest["variants"] == {"int8": {"p50_ms": 0.4}, "pruned": {"p50_ms": 0.3}}  # deep-merged
    again = ModelPackage.load(pkg_dir)
    assert again.manifest == pkg.manifest
    assert again.size_bytes == sum(len(v) for v in FILES.values()) + len(int8) + len(pruned)
    assert len((pkg_dir / "MANIFEST.sha256").read_text().splitlines()) == 1
    assert not [p for p in os.listdir(pkg_dir) if p.startswith(".tmp-")]


def test_add_files_never_overwrites(pkg_dir):
    with pytest.raises(ArtifactError, match="'model.onnx' already exists"):
        add_files(pkg_dir, {"model.onnx": b"new"}, {})
    with pytest.raises(ArtifactError, match="manages"):
        add_files(pkg_dir, {"x": b"1"}, {"files": {}})
    with pytest.raises(ArtifactError, match="both a file and a directory"):
        add_files(pkg_dir, {"model.onnx/x": b"1"}, {})
    pkg = ModelPackage.load(pkg_dir)
    assert pkg.files == sorted(FILES) and pkg.read_bytes("model.onnx") == FILES["model.onnx"]


def test_add_files_refuses_a_damaged_package(pkg_dir):
    (pkg_dir / "model.onnx").write_bytes(b"bad")
    with pytest.raises(IntegrityError, match="'model.onnx' fails its checksum"):
        add_files(pkg_dir, {"x": b"1"}, {})
    assert not (pkg_dir / "x").exists()


@pytest.mark.parametrize("fail_at", [1, 2, 3])
def test_add_files_failure_keeps_the_previous_state(pkg_dir, monkeypatch, fail_at):
    before = (pkg_dir / "manifest.json").read_bytes()
    real = _package.replace_file
    calls = []

    def flaky(path, data):
        calls.append(path.name)
        if len(calls) == fail_at:
            raise OSError("crash")
        real(path, data)

    monkeypatch.setattr(_package, "replace_file", flaky)
    with pytest.raises(OSError, match="crash"):
        add_files(pkg_dir, {"variants/int8/model.onnx": tiny_onnx("q"), "extra/a.bin": b"a"}, {"variants": {"int8": {}}})
    monkeypatch.setattr(_package, "replace_file", real)
    pkg = ModelPackage.load(pkg_dir)
    assert pkg.files == sorted(FILES)
    assert (pkg_dir / "manifest.json").read_bytes() == before
    assert not (pkg_dir / "variants" / "int8").exists() and not (pkg_dir / "extra").exists()


def test_manifest_swap_window_stays_loadable(pkg_dir):
    """Between the two os.replace calls of add_files the digest file lists old and new digests."""
    old = (pkg_dir / "manifest.json").read_bytes()
    manifest = json.loads(old)
    manifest["note"] = "new"
    new = (json.dumps(manifest, sort_keys=True, indent=2) + "\n").encode()
    lines = [f"{hashlib.sha256(b).hexdigest()}  manifest.json\n" for b in (old, new)]
    (pkg_dir / "MANIFEST.sha256").write_text("".join(lines))
    assert "note" not in ModelPackage.load(pkg_dir).manifest
    (pkg_dir / "manifest.json").write_bytes(new)
    assert ModelPackage.load(pkg_dir).manifest["note"] == "new"


# --------------------------------------------------------------------------- no unpickling, ever

# An audit hook sees every unpickler that resolves a global ("pickle.find_class": the C and the
# Python unpickler, whoever calls them, however they were imported); audit hooks cannot be removed,
# so this one records only while a test has switched it on.
_UNPICKLED: list[str] = []
_WATCHING: list[bool] = []


def _audit(event: str, args: tuple) -> None:
    if _WATCHING and event == "pickle.find_class":
        _UNPICKLED.append(f"{args[0]}.{args[1]}")


sys.addaudithook(_audit)


@pytest.fixture
def no_unpickling(monkeypatch):
    """Every way into pickle raises (pickle, _pickle, torch.load, numpy.load, joblib.load), and any
    unpickling that slips past them is recorded by the audit hook; the test fails on either."""
    import _pickle
    import pickle

    import numpy as np
    import torch

    def forbidden(what):
        def refuse(*args, **kwargs):
            _UNPICKLED.append(what)
            raise AssertionError(f"loading used {what}")
        return refuse

    for module, names in ((pickle, ("load", "loads", "Unpickler")), (_pickle, ("load", "loads", "Unpickler"))):
        for name in names:
            monkeypatch.setattr(module, name, forbidden(f"{module.__name__}.{name}"))
    monkeypatch.setattr(torch, "load", forbidden("torch.load"))
    monkeypatch.setattr(torch.serialization, "load", forbidden("torch.serialization.load"))
    monkeypatch.setattr(np, "load", forbidden("numpy.load"))
    try:
        import joblib

        monkeypatch.setattr(joblib, "load", forbidden("joblib.load"))
    except ImportError:  # pragma: no cover
        pass
    _UNPICKLED.clear()
    _WATCHING.append(True)
    try:
        yield _UNPICKLED
    finally:
        _WATCHING.clear()


def test_the_guard_catches_unpickling(no_unpickling):
    """The guard is not vacuous: each way of unpickling a torch or numpy object is caught."""
    import io
    import pickle as pickle_module

    import numpy as np
    import torch

    blob = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, blob)
    for attempt in (lambda: torch.load(io.BytesIO(blob.getvalue()), weights_only=False),
                    lambda: pickle_module.loads(pickle_module.dumps(np.zeros(2)))):
        with pytest.raises(AssertionError, match="loading used"):
            attempt()
    from pickle import _loads  # the pure-Python unpickler, imported under another name: the audit hook sees it

    no_unpickling.clear()
    _loads(pickle_module.dumps(np.zeros(2)))
    assert no_unpickling and "numpy" in no_unpickling[0]


@pytest.fixture(scope="module")
def three_families(tmp_path_factory):
    """One registered classifier per model family (linear, MLP, LightGBM), trained before any guard."""
    import numpy as np
    import pandas as pd

    import fulcrum

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=80), "c": rng.choice(["a", "b"], 80)})
    frame["y"] = np.where(frame["x"] > 0, "hi", "lo")
    root = tmp_path_factory.mktemp("families") / "registry"
    return root, [fulcrum.train(frame, target="y", name=f"m-{family}", model=family, registry=root, epochs=2,
                                progress=False, measure_inference=False).ref
                  for family in ("linear", "mlp", "lightgbm")]


def test_loading_never_unpickles(three_families, no_unpickling):
    """Every loading path, for every model family: the registry, the package, every file, the Predictor
    with ONNX Runtime and with the native engine (torch / safetensors / LightGBM), fulcrum.load."""
    import fulcrum
    from fulcrum.artifact import Registry
    from fulcrum.runtime import Predictor

    root, refs = three_families
    rows = [{"x": 0.3, "c": "a"}, {"x": -1.0, "c": "b"}]
    reg = Registry(root)
    for ref in refs:
        pkg = reg.load(ref)
        assert ModelPackage.load(pkg.path).files == pkg.files
        for rel in pkg.files:
            pkg.read_bytes(rel)
            if rel.endswith(".json"):
                pkg.read_json(rel)
        for engine in ("onnx", "native"):
            predictor = Predictor(pkg, engine=engine)
            assert len(predictor.predict(rows)) == 2
            predictor.predict_proba(rows)
            predictor.predict_one(rows[0])
        assert Predictor(pkg).adapter is not None  # the native adapter behind an ONNX predictor, too
        fulcrum.load(ref, registry=root, engine="native").predict(rows)
        fulcrum.load(str(pkg.path)).predict(rows)
    assert no_unpickling == []
