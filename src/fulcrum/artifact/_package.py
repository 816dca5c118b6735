"""The model package: an immutable directory with a manifest that holds the sha256 of every file.

::

    <package>/
      manifest.json      format_version, name, version, ..., files: {relpath: {sha256, bytes}}
      MANIFEST.sha256    "<sha256 of manifest.json>  manifest.json" (sha256sum -c can check it)
      model.onnx, weights.safetensors, preprocess.json, variants/<id>/..., ...

Loading reads JSON and bytes only; it never imports or executes anything from the package.
Every file is read as a regular file (never through a link, a FIFO or a device) no larger than
the per-file limit (``FULCRUM_MAX_FILE_MB``, see ``_limits``), and every ONNX graph must keep its
tensors inside itself (no external data, see ``_onnx_safety``): at registration and at load.
"""

from __future__ import annotations

import copy
import json
import os
import stat
from collections.abc import Collection, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import ArtifactError, FormatError, IntegrityError, NotFoundError
from ._atomic import (
    TMP_PREFIX,
    fsync_dir,
    remove_tree,
    replace_file,
    sha256_bytes,
    temp_name,
    write_file,
)
from ._limits import MAX_DIGEST_BYTES, MAX_MANIFEST_BYTES, max_file_bytes, read_regular, sha256_regular
from ._onnx_safety import check_onnx_graph, is_graph_file

__all__ = ["FORMAT_VERSION", "MANIFEST_FILE", "DIGEST_FILE", "ModelPackage", "write_package", "add_files"]

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
DIGEST_FILE = "MANIFEST.sha256"
_RESERVED = {MANIFEST_FILE, DIGEST_FILE}
_MANAGED_KEYS = ("format_version", "files")


# --------------------------------------------------------------------------- helpers


def _check_relpath(relpath: object) -> str:
    """A package-relative POSIX path that stays inside the package."""
    if not isinstance(relpath, str) or not relpath:
        raise ArtifactError(f"Package file names must be non-empty strings, got {relpath!r}.")
    parts = relpath.split("/")
    if (
        "\\" in relpath
        or "\x00" in relpath
        or relpath.startswith("/")
        or PurePosixPath(relpath).is_absolute()
        or (len(parts[0]) >= 2 and parts[0][1] == ":")
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise ArtifactError(
            f"Invalid package file name {relpath!r}: use a relative path with '/' separators and no "
            f"'.', '..' or empty parts, e.g. 'variants/int8/model.onnx'."
        )
    if parts[0].startswith(TMP_PREFIX):
        raise ArtifactError(f"Invalid package file name {relpath!r}: names starting with {TMP_PREFIX!r} are reserved.")
    if relpath in _RESERVED:
        raise ArtifactError(f"Package file name {relpath!r} is reserved: Fulcrum writes it itself; pass it in the manifest instead.")
    return relpath


def _check_contents(files: Mapping[str, bytes], manifest: Any) -> None:
    """Sizes and graphs of files about to be written: what a load would refuse is refused here first,
    so no package is written that cannot be read back (an over-limit file, a graph with external data)."""
    limit = max_file_bytes()
    for relpath, data in files.items():
        if len(data) > limit:
            raise ArtifactError(
                f"Package file {relpath!r} is {len(data)} bytes, over the {limit}-byte limit per package file; "
                f"make it smaller, or raise the limit with FULCRUM_MAX_FILE_MB (now {limit / 1e6:g})."
            )
        if is_graph_file(relpath, manifest):
            check_onnx_graph(bytes(data), relpath)


def _check_files(files: Mapping[str, bytes], existing: Collection[str] = ()) -> None:
    everything = set(existing)
    for relpath, data in files.items():
        _check_relpath(relpath)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ArtifactError(f"Package file {relpath!r} must be bytes, not {type(data).__name__}; encode it first.")
        everything.add(relpath)
    for relpath in everything:  # "a" and "a/b" cannot both be files
        parts = relpath.split("/")
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            if prefix in everything:
                raise ArtifactError(
                    f"Package files {prefix!r} and {relpath!r} conflict: {prefix!r} cannot be both a file and a directory."
                )


def _encode_manifest(manifest: Mapping[str, Any]) -> bytes:
    try:
        text = json.dumps(manifest, sort_keys=True, indent=2, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise ArtifactError(
            f"The manifest is not plain JSON ({exc}); use str/int/float/bool/None, lists and dicts with "
            f"string keys, and finite numbers (store NaN as null)."
        ) from exc
    return (text + "\n").encode("utf-8")


def _digest_line(manifest_bytes: bytes) -> str:
    return f"{sha256_bytes(manifest_bytes)}  {MANIFEST_FILE}\n"


def _fulcrum_version() -> str:
    try:
        from importlib.metadata import version

        return version("fulcrum")
    except Exception:  # pragma: no cover - source tree without metadata
        return "0.0.0"


def _write_tree(root: Path, files: Mapping[str, bytes]) -> dict[str, dict[str, Any]]:
    """Write ``files`` under ``root`` (fsynced, directories too); return their manifest entries."""
    entries: dict[str, dict[str, Any]] = {}
    dirs: set[Path] = {root}
    for relpath, data in sorted(files.items()):
        target = root.joinpath(*relpath.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        d = target.parent
        while d != root and d not in dirs:
            dirs.add(d)
            d = d.parent
        write_file(target, bytes(data))
        entries[relpath] = {"sha256": sha256_bytes(data), "bytes": len(data)}
    for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        fsync_dir(d)
    return entries


def _deep_merge(base: dict[str, Any], updates: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in updates.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# --------------------------------------------------------------------------- writing


def write_package(directory: Path | str, manifest: Mapping[str, Any], files: Mapping[str, bytes]) -> Path:
    """Write a new, immutable package at ``directory`` atomically and return its path.

    Every file goes into a temporary sibling directory, is fsynced, and the manifest gains
    ``format_version`` and ``files`` (sha256 and size of each); then one ``os.rename`` publishes
    the whole directory. On any failure the temporary directory is removed and nothing appears
    at ``directory``.
    """
    directory = Path(directory)
    if not isinstance(manifest, Mapping):
        raise ArtifactError(f"The manifest must be a dict, not {type(manifest).__name__}.")
    _check_files(files)
    _check_contents(files, manifest)
    if os.path.lexists(directory):
        raise ArtifactError(
            f"Cannot write a model package to {directory}: it already exists and packages are immutable; "
            f"choose a new directory (the registry allocates a new version for you)."
        )
    parent = directory.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(parent)
    try:
        tmp.mkdir()
        entries = _write_tree(tmp, files)
        full = {k: v for k, v in manifest.items() if k not in _MANAGED_KEYS}
        full.setdefault("fulcrum_version", _fulcrum_version())
        full["format_version"] = FORMAT_VERSION
        full["files"] = entries
        manifest_bytes = _encode_manifest(full)
        write_file(tmp / MANIFEST_FILE, manifest_bytes)
        write_file(tmp / DIGEST_FILE, _digest_line(manifest_bytes).encode("ascii"))
        fsync_dir(tmp)
        if os.path.lexists(directory):  # lost a race since the check above
            raise ArtifactError(f"Cannot write a model package to {directory}: it appeared while writing; choose a new directory.")
        os.rename(tmp, directory)
    except BaseException:
        remove_tree(tmp)
        raise
    fsync_dir(parent)
    return directory


def add_files(
    package_path: Path | str,
    files: Mapping[str, bytes],
    manifest_updates: Mapping[str, Any] | None = None,
) -> ModelPackage:
    """Add derived files (e.g. ``variants/int8/model.onnx``) to an existing, intact package.

    Existing files are never overwritten. ``manifest_updates`` is deep-merged into the manifest
    (nested dicts merge, other values replace); ``format_version`` and ``files`` are managed here.
    New files are placed first (temp + fsync + rename), then manifest.json and MANIFEST.sha256 are
    swapped in with ``os.replace``. If anything raises, the new files are removed and the previous
    manifest restored, so the package loads exactly as before.
    """
    pkg = ModelPackage.load(package_path, verify=True)
    updates = dict(manifest_updates or {})
    managed = [k for k in _MANAGED_KEYS if k in updates]
    if managed:
        raise ArtifactError(f"add_files manages {managed} itself; remove them from manifest_updates.")
    _check_files(files, set(pkg.files))
    for relpath in files:
        if relpath in pkg._entries or os.path.lexists(pkg.path.joinpath(*relpath.split("/"))):
            raise ArtifactError(
                f"Model package {pkg.path}: file {relpath!r} already exists and package files are never overwritten; "
                f"write it under a new name (e.g. a new variants/<id>/ directory)."
            )
    _check_contents(files, _deep_merge(pkg.manifest, updates))
    old_manifest_bytes = read_regular(pkg.path / MANIFEST_FILE, f"Model package {pkg.path}", MANIFEST_FILE,
                                      min(max_file_bytes(), MAX_MANIFEST_BYTES))
    old_digest = _digest_line(old_manifest_bytes)
    placed: list[Path] = []
    created_dirs: list[Path] = []
    staging = temp_name(pkg.path)
    swapped = False
    try:
        staging.mkdir()
        entries = _write_tree(staging, files)
        new_manifest = _deep_merge(pkg.manifest, updates)
        new_manifest["format_version"] = FORMAT_VERSION
        new_manifest["files"] = {**pkg._entries, **entries}
        new_manifest_bytes = _encode_manifest(new_manifest)
        new_digest = _digest_line(new_manifest_bytes)
        for relpath in sorted(files):
            target = pkg.path.joinpath(*relpath.split("/"))
            missing = [d for d in [target.parent, *target.parent.parents] if not d.exists()]
            target.parent.mkdir(parents=True, exist_ok=True)
            created_dirs.extend(reversed(missing))
            if os.path.lexists(target):
                raise ArtifactError(f"Model package {pkg.path}: file {relpath!r} appeared while adding files; not overwriting it.")
            os.rename(staging.joinpath(*relpath.split("/")), target)
            placed.append(target)
            fsync_dir(target.parent)
        # Both digests are valid while manifest.json is swapped, so a crash between the two
        # replaces below still leaves a manifest that matches MANIFEST.sha256.
        replace_file(pkg.path / DIGEST_FILE, (old_digest + new_digest).encode("ascii"))
        swapped = True
        replace_file(pkg.path / MANIFEST_FILE, new_manifest_bytes)
        replace_file(pkg.path / DIGEST_FILE, new_digest.encode("ascii"))
    except BaseException:
        for target in reversed(placed):
            target.unlink(missing_ok=True)
        for d in reversed(created_dirs):
            try:
                d.rmdir()
            except OSError:
                pass
        if swapped:
            replace_file(pkg.path / MANIFEST_FILE, old_manifest_bytes)
            replace_file(pkg.path / DIGEST_FILE, old_digest.encode("ascii"))
        raise
    finally:
        remove_tree(staging)
    return ModelPackage.load(pkg.path, verify=True)


# --------------------------------------------------------------------------- reading


class ModelPackage:
    """A loaded (and, by default, fully verified) model package directory.

    Create one with :meth:`ModelPackage.load` or :meth:`fulcrum.artifact.Registry.load`.
    """

    def __init__(self, path: Path, manifest: dict[str, Any], *, verify: bool = True) -> None:
        self.path = Path(path)
        self.manifest = manifest
        self._verify = verify
        self._entries: dict[str, dict[str, Any]] = manifest["files"]

    # -- construction ------------------------------------------------------

    @classmethod
    def load(cls, path: Path | str, *, verify: bool = True) -> ModelPackage:
        """Read ``path/manifest.json``; with ``verify`` (the default) check MANIFEST.sha256, then the
        sha256 and size of every listed file, and that no unlisted file is present."""
        path = Path(path)
        if not path.is_dir():
            raise NotFoundError(
                f"No model package at {path}: the directory does not exist; check the path or use a registry "
                f"reference such as 'name@3'."
            )
        try:
            raw = cls._read_manifest(path)
        except FileNotFoundError:
            raise FormatError(
                f"{path} is not a model package: {MANIFEST_FILE} is missing; point at a directory written by "
                f"Fulcrum (e.g. <registry>/<name>/<version>)."
            ) from None
        try:
            manifest: Any = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            manifest, parse_error = None, exc
        else:
            parse_error = None
        fv = manifest.get("format_version") if isinstance(manifest, dict) else None
        if isinstance(fv, int) and not isinstance(fv, bool) and fv > FORMAT_VERSION:
            raise FormatError(
                f"Model package {path} was written by a newer Fulcrum (format {fv}; this one reads up to "
                f"format {FORMAT_VERSION}); upgrade fulcrum (pip install -U fulcrum)."
            )
        if verify:
            cls._verify_manifest_digest(path, raw)
        if parse_error is not None or not isinstance(manifest, dict):
            why = f"it is not valid JSON ({parse_error})" if parse_error is not None else "it is not a JSON object"
            raise FormatError(f"Model package {path}: {MANIFEST_FILE} cannot be read: {why}; re-train or restore the package.")
        if not isinstance(fv, int) or isinstance(fv, bool) or fv < 1:
            raise FormatError(
                f"Model package {path}: {MANIFEST_FILE} has no valid format_version (got {fv!r}); "
                f"it was not written by Fulcrum; re-train or restore the package."
            )
        files = manifest.get("files")
        if not isinstance(files, dict) or not all(
            isinstance(e, dict) and isinstance(e.get("sha256"), str) and isinstance(e.get("bytes"), int) for e in files.values()
        ):
            raise FormatError(
                f"Model package {path}: {MANIFEST_FILE} has no valid 'files' table ({{relpath: {{sha256, bytes}}}}); "
                f"re-train or restore the package."
            )
        for relpath in files:
            try:
                _check_relpath(relpath)
            except ArtifactError as exc:
                raise FormatError(f"Model package {path}: {MANIFEST_FILE} lists an unsafe file name: {exc}") from None
        pkg = cls(path, manifest, verify=verify)
        if verify:
            pkg.verify()
        return pkg

    @staticmethod
    def _read_manifest(path: Path) -> bytes:
        limit = max_file_bytes()
        return read_regular(path / MANIFEST_FILE, f"Model package {path}", MANIFEST_FILE,
                            min(limit, MAX_MANIFEST_BYTES), manifest_limit=limit > MAX_MANIFEST_BYTES)

    @staticmethod
    def _verify_manifest_digest(path: Path, raw: bytes) -> None:
        try:
            text = read_regular(path / DIGEST_FILE, f"Model package {path}", DIGEST_FILE,
                                min(max_file_bytes(), MAX_DIGEST_BYTES), manifest_limit=True).decode("ascii")
        except FileNotFoundError:
            raise IntegrityError(
                f"Model package {path}: {DIGEST_FILE} is missing, so {MANIFEST_FILE} cannot be checked; "
                f"re-train or restore the package from a backup."
            ) from None
        except UnicodeDecodeError:
            text = ""
        digests = {line.split()[0] for line in text.splitlines() if line.strip()}
        if sha256_bytes(raw) not in digests:
            raise IntegrityError(
                f"Model package {path}: file '{MANIFEST_FILE}' fails its checksum in {DIGEST_FILE} "
                f"(tampered or corrupted); re-train or restore it from a backup."
            )

    def verify(self) -> None:
        """Check every listed file (a regular file within the size limit, its size, then sha256; an ONNX
        graph also for external data) and that the directory holds nothing else."""
        where = f"Model package {self.path}"
        limit = max_file_bytes()
        for relpath, entry in sorted(self._entries.items()):
            target = self._target(relpath)
            if entry["bytes"] > limit:  # refused before a byte is read
                raise IntegrityError(
                    f"{where}: file {relpath!r} is {entry['bytes']} bytes, over the {limit}-byte limit per package "
                    f"file; if you trust this package, raise the limit with FULCRUM_MAX_FILE_MB (now {limit / 1e6:g})."
                )
            try:
                if is_graph_file(relpath, self.manifest):
                    data = read_regular(target, where, relpath, limit)
                    ok = len(data) == entry["bytes"] and sha256_bytes(data) == entry["sha256"]
                else:
                    data = None
                    ok = sha256_regular(target, where, relpath, limit) == (entry["sha256"], entry["bytes"])
            except FileNotFoundError:
                raise self._missing_error(relpath) from None
            if not ok:
                raise self._checksum_error(relpath)
            if data is not None:
                check_onnx_graph(data, relpath, package=self.path)
        for dirpath, dirnames, filenames in os.walk(self.path):
            base = Path(dirpath)
            rel_dir = base.relative_to(self.path).as_posix()
            if rel_dir == ".":  # debris of an interrupted write: never a package file, never read
                dirnames[:] = [d for d in dirnames if not d.startswith(TMP_PREFIX)]
                filenames = [f for f in filenames if not f.startswith(TMP_PREFIX)]
            for fname in sorted(filenames) + sorted(d for d in dirnames if (base / d).is_symlink()):
                relpath = fname if rel_dir == "." else f"{rel_dir}/{fname}"
                if relpath in self._entries or relpath in _RESERVED:
                    continue
                raise IntegrityError(
                    f"Model package {self.path}: file {relpath!r} is not listed in the manifest (added after the "
                    f"package was written, or left by an interrupted add_files); remove it or restore the package."
                )

    def _target(self, relpath: str) -> Path:
        """The path of a listed file, refusing a package whose directories along the way are links."""
        parts = relpath.split("/")
        d = self.path
        for part in parts[:-1]:
            d = d / part
            try:
                mode = os.lstat(d).st_mode
            except FileNotFoundError:
                raise self._missing_error(relpath) from None
            if not stat.S_ISDIR(mode):
                raise IntegrityError(
                    f"Model package {self.path}: {d.relative_to(self.path).as_posix()!r} (on the way to {relpath!r}) is "
                    f"not a directory of the package (a link or file); re-train or restore it from a backup."
                )
        return d / parts[-1]

    def _missing_error(self, relpath: str) -> IntegrityError:
        return IntegrityError(
            f"Model package {self.path}: file {relpath!r} listed in the manifest is missing; "
            f"re-train or restore it from a backup."
        )

    def _checksum_error(self, relpath: str) -> IntegrityError:
        return IntegrityError(
            f"Model package {self.path}: file {relpath!r} fails its checksum (tampered or corrupted); "
            f"re-train or restore it from a backup."
        )

    # -- identity ----------------------------------------------------------

    @property
    def name(self) -> str:
        name = self.manifest.get("name")
        return str(name) if name else self.path.name

    @property
    def version(self) -> int | None:
        v = self.manifest.get("version")
        return v if isinstance(v, int) and not isinstance(v, bool) else None

    @property
    def ref(self) -> str:
        return self.name if self.version is None else f"{self.name}@{self.version}"

    @property
    def format_version(self) -> int:
        return int(self.manifest["format_version"])

    # -- contents ----------------------------------------------------------

    @property
    def files(self) -> list[str]:
        return sorted(self._entries)

    @property
    def size_bytes(self) -> int:
        """Total size of the files the manifest lists (manifest.json itself excluded)."""
        return sum(int(e["bytes"]) for e in self._entries.values())

    def has_file(self, relpath: str) -> bool:
        return relpath in self._entries

    def file_path(self, relpath: str) -> Path:
        """Filesystem path of a listed file (for engines that load by path, e.g. ONNX Runtime)."""
        self._entry(relpath)
        return self.path.joinpath(*relpath.split("/"))

    def _entry(self, relpath: str) -> dict[str, Any]:
        entry = self._entries.get(relpath) if isinstance(relpath, str) else None
        if entry is None:
            raise NotFoundError(
                f"Model package {self.ref} has no file {relpath!r}; its files are: {', '.join(self.files) or '(none)'}."
            )
        return entry

    def read_bytes(self, relpath: str) -> bytes:
        """Contents of a listed file, checked against its manifest sha256 when the package was verified."""
        entry = self._entry(relpath)
        target = self._target(relpath)
        try:
            data = read_regular(target, f"Model package {self.path}", relpath)
        except FileNotFoundError:
            raise self._missing_error(relpath) from None
        if self._verify and (len(data) != entry["bytes"] or sha256_bytes(data) != entry["sha256"]):
            raise self._checksum_error(relpath)
        return data

    def read_json(self, relpath: str) -> Any:
        data = self.read_bytes(relpath)
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FormatError(f"Model package {self.ref}: {relpath!r} is not valid JSON ({exc}); re-train or restore it.") from exc

    def __repr__(self) -> str:
        return f"ModelPackage({self.ref!r}, path={str(self.path)!r}, files={len(self._entries)})"
