"""What the media tasks (image, speech) share when reading a table: which columns hold encoded files or file
paths, base64, and resolving a table's relative paths inside its dataset root only."""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import pandas as pd

from ..errors import ConfigError, DataError, SchemaError

__all__ = ["SAMPLE", "FileKind", "b64decode", "read_checked", "is_class_folder", "read_class_folder", "load_path_column",
           "dataset_root", "resolve_file_column", "Prepared", "FolderReading",
           "to_base64", "encoded_columns", "suffix_columns", "inside_root", "ood_thresholds", "OOD_BASIS", "augmented_views"]

SAMPLE = 50  # values looked at per column when detecting
AUG_VIEWS = 4  # augmented views of each training input among the OOD threshold's inputs
#: what the OOD thresholds of the media tasks are quantiles of
OOD_BASIS = "the scores of the training and validation inputs and of augmented views of the training inputs"


def to_base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _text_columns(frame: pd.DataFrame, target: str | None) -> Iterator[tuple[str, list]]:
    """(name, up to SAMPLE non-missing values) of each object/string column other than ``target``."""
    for name in frame.columns:
        if name == target or not (pd.api.types.is_object_dtype(frame[name].dtype)
                                   or pd.api.types.is_string_dtype(frame[name].dtype)):
            continue
        yield name, frame[name].dropna().head(SAMPLE).tolist()


def encoded_columns(frame: pd.DataFrame, target: str | None, looks: Callable[[bytes], bool]) -> list[str]:
    """Columns whose sampled values all are files that ``looks`` recognises from their first bytes: raw bytes,
    base64 text, or a ``data:`` URL."""
    found = []
    for name, values in _text_columns(frame, target):
        if not values:
            continue
        ok = 0
        for v in values:
            if isinstance(v, (bytes, bytearray)):
                ok += looks(bytes(v[:16]))
            elif isinstance(v, str) and len(v) >= 24:
                s = v.split(",", 1)[1] if v.startswith("data:") else v
                try:
                    ok += looks(base64.b64decode(s[:24], validate=True))
                except (binascii.Error, ValueError):
                    pass
        if ok == len(values):
            found.append(str(name))
    return found


def suffix_columns(frame: pd.DataFrame, target: str | None, suffixes: tuple[str, ...]) -> list[str]:
    """Columns whose sampled values all are file names ending in one of ``suffixes`` (a table of paths)."""
    return [str(name) for name, values in _text_columns(frame, target)
            if values and all(isinstance(v, str) and v.lower().endswith(suffixes) for v in values)]


def inside_root(root: Path, rel: str, where: str, what: str) -> Path:
    """``root / rel`` resolved (symlinks followed), refused unless it stays inside ``root``; ``what`` names the
    files in the message (``every image``)."""
    base = root.resolve()
    if os.path.isabs(rel):
        raise DataError(f"{where}: {rel!r} is an absolute path; paths in the table are relative to the dataset root "
                        f"{str(base)!r}.")
    path = (base / rel).resolve()
    if path != base and base not in path.parents:
        raise DataError(f"{where}: {rel!r} points outside the dataset root {str(base)!r} (through '..' or a symlink); "
                        f"keep {what} inside the dataset's folder.")
    return path


def quantiles(x: Any) -> dict[str, float]:
    """Mean, p5, p50 and p95 of ``x`` (a manifest's summary of a measured quantity); {} for no values."""
    import numpy as np

    x = np.asarray(x, dtype=np.float64)
    if not x.size:
        return {}
    return {"mean": float(x.mean()), **{f"p{q}": float(v) for q, v in zip((5, 50, 95), np.percentile(x, (5, 50, 95)))}}


def ood_thresholds(*scores: Sequence[float]) -> dict[str, float]:
    """The 95th and 99th percentiles of OOD scores of training-like inputs: the training and validation inputs and
    augmented views of the training inputs (the variation the model was trained to accept). A validation split of a
    few dozen inputs alone puts its p99 at its maximum, and the training inputs' own scores are the lowest there are:
    on either, a good share of new inputs like them is flagged (measured on held-out digits: 19% on training +
    validation, 8% with the augmented views). The server and monitor flag a score at or above ``p99``."""
    import numpy as np

    s = np.concatenate([np.asarray(x, np.float64).ravel() for x in scores]) if scores else np.zeros(0)
    if not len(s):
        return {}
    return {"p95": float(np.percentile(s, 95)), "p99": float(np.percentile(s, 99))}


def augmented_views(augment: Any, X: Any, views: int = AUG_VIEWS, seed: int = 0, batch: int = 512) -> Iterator[Any]:
    """``views`` augmented copies of ``X`` (a float numpy batch), in batches, from a seeded private random state
    (the global torch state is left as it was: training stays reproducible)."""
    import numpy as np
    import torch

    if augment is None or not len(X):
        return
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for _ in range(views):
            for s in range(0, len(X), batch):
                yield np.ascontiguousarray(augment(torch.from_numpy(np.ascontiguousarray(X[s: s + batch]))).numpy())


@dataclass(frozen=True)
class FileKind:
    """How a media task names its files in messages, and which files it reads."""

    column: str  # the table column the files go to (``image``, ``audio``)
    suffixes: tuple[str, ...]
    folder: str  # "In the <folder> folder ..."
    files: str  # what class folders hold ("image files", "clips")
    every: str  # "every row needs <every>" ("an image file", "a clip")
    plural: str  # "images", "clips"
    not_one: str  # "is not <not_one>" ("an image file", "a WAV or FLAC file")
    layout: str  # "root/<class>/<image>.png|jpg|webp"
    folder_of: str  # "a folder of class subfolders of <folder_of>"
    data_uri: str  # an example data URI
    send: str  # what to send instead of text that is not base64
    one: str = ""  # "an image", "a clip"
    formats: str = ""  # "a PNG, JPEG or WebP file", "a WAV or FLAC file"
    smaller: str = ""  # "a smaller file", "a shorter clip"
    signatures: str = ""  # the formats its signature check knows: "PNG, JPEG or WebP"
    looks: Callable[[bytes], bool] | None = None  # the signature check


def encoded_bytes(value: Any, where: str, kind: FileKind, max_bytes: int) -> bytes:
    """The file bytes a request or table cell holds (base64 text, a data URI or raw bytes), checked for size and
    signature before any decoder sees them; SchemaError naming ``where``, the problem and the fix otherwise."""
    if isinstance(value, str):
        if not value.strip():
            raise SchemaError(f"{where} is empty; send {kind.one} (base64 of {kind.formats}).")
        if len(value) > max_bytes * 4 // 3 + 8:
            raise SchemaError(f"{where} has over {max_bytes} bytes (base64), more than this model's limit of "
                              f"{max_bytes} (max_bytes); send {kind.smaller}.")
        data = b64decode(value, where, kind)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
    elif value is None or (isinstance(value, float) and value != value):
        raise SchemaError(f"{where} is missing; send {kind.one} (base64 of {kind.formats}).")
    else:
        raise SchemaError(f"{where} must be {kind.one} (base64 string or bytes of {kind.formats}), got "
                          f"{type(value).__name__}.")
    if len(data) > max_bytes:
        raise SchemaError(f"{where} has {len(data)} bytes, more than this model's limit of {max_bytes} (max_bytes); "
                          f"send {kind.smaller}.")
    if kind.looks is not None and not kind.looks(data):
        raise SchemaError(f"{where} is not a {kind.signatures} file (unknown signature); send one of those.")
    return data


def b64decode(text: str, where: str, kind: FileKind) -> bytes:
    """Base64 text or a base64 ``data:`` URI -> bytes; SchemaError naming ``where`` otherwise."""
    s = text.strip()
    if s.startswith("data:"):
        head, _, s = s.partition(",")
        if ";base64" not in head:
            raise SchemaError(f"{where}: a data URI must be base64 ({kind.data_uri}).")
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        raise SchemaError(f"{where} is not base64: send {kind.send}.") from None


def read_checked(path: Path, where: str, max_bytes: int, check: Callable[[bytes], Any]) -> bytes:
    """The bytes of ``path`` after a size check and ``check`` (a full decode that raises SchemaError); DataError
    naming ``where`` otherwise."""
    if not path.is_file():
        raise DataError(f"{where}: {str(path)!r} is not a file; check the path.")
    size = path.stat().st_size
    if size > max_bytes:
        raise DataError(f"{where}: {str(path)!r} has {size} bytes, more than the limit of {max_bytes} (max_bytes).")
    data = path.read_bytes()
    try:
        check(data)
    except SchemaError as exc:
        raise DataError(str(exc)) from None
    return data


def is_class_folder(source: Any, suffixes: tuple[str, ...]) -> bool:
    """Whether ``source`` is a folder with at least one subfolder holding a file ending in one of ``suffixes``."""
    try:
        p = Path(os.fspath(source))
    except TypeError:
        return False
    if not p.is_dir():
        return False
    for sub in p.iterdir():
        if sub.is_dir() and not sub.name.startswith("."):
            if any(f.suffix.lower() in suffixes for f in sub.iterdir() if f.is_file()):
                return True
    return False


def read_class_folder(source: Any, kind: FileKind, read: Callable[[Path, str], bytes],
                      log: Callable[[str], None] | None = None) -> pd.DataFrame:
    """``root/<class>/<file>`` -> a table ``kind.column`` (base64), ``label`` (the subfolder), ``path`` (relative).

    ``read(path, where)`` checks and returns each file. A folder inside a class folder, a file of another kind, a
    symlink out of the root: one DataError naming it. Hidden files are skipped; files directly in the root are
    left out with a note."""
    root = Path(os.fspath(source))
    if not root.is_dir():
        raise DataError(f"{str(root)!r} is not a folder of class subfolders of {kind.folder_of}.")
    rows = []
    stray = [f.name for f in root.iterdir() if f.is_file() and f.suffix.lower() in kind.suffixes]
    if stray and log:
        log(f"note: {len(stray)} {kind.plural[:-1]}(s) directly in {str(root)!r} are not in a class subfolder and "
            "were left out")
    for d in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")):
        for f in sorted(d.iterdir()):
            if f.name.startswith("."):
                continue
            rel = f"{d.name}/{f.name}"
            where = f"In the {kind.folder} folder {str(root)!r}, file {rel!r}"
            path = inside_root(root, rel, where, f"every {kind.plural[:-1]}")
            if f.is_dir():
                raise DataError(f"{where} is a folder; class folders hold {kind.files} only (one level: "
                                "root/class/file).")
            if f.suffix.lower() not in kind.suffixes:
                raise DataError(f"{where} is not {kind.not_one} (expected {', '.join(kind.suffixes)}); move it out "
                                "of the class folder.")
            rows.append({kind.column: to_base64(read(path, where)), "label": d.name, "path": rel})
    if not rows:
        raise DataError(f"The folder {str(root)!r} has no {kind.plural} in class subfolders ({kind.layout}).")
    return pd.DataFrame(rows)


def load_path_column(frame: pd.DataFrame, column: str, root: Path, kind: FileKind,
                     read: Callable[[Path, str], bytes]) -> pd.DataFrame:
    """A table of paths -> the same table with a ``kind.column`` column (base64) read from inside ``root``."""
    out = frame.copy()
    values = []
    for i, rel in enumerate(frame[column].tolist()):
        where = f"Row {i} (0-based) of column {column!r}"
        if not isinstance(rel, str) or not rel.strip():
            raise DataError(f"{where} has no path; every row needs {kind.every}.")
        where = f"{where}, file {rel!r},"
        values.append(to_base64(read(inside_root(root, rel, where, f"every {kind.plural[:-1]}"), where)))
    out[kind.column] = values
    return out


class Prepared:
    """A media run's data (the table with its files, the splits, labels, decoded inputs): a plain namespace."""

    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)


def dataset_root(explicit: str | None, source: str) -> Path:
    """Where a table's relative file paths are resolved: ``explicit``, else the table's folder, else the cwd."""
    if explicit:
        return Path(explicit)
    if source and source not in ("dataframe", "estimator") and not source.startswith("builtin:") and Path(source).exists():
        p = Path(source)
        return p if p.is_dir() else p.parent
    return Path.cwd()


def resolve_file_column(frame: pd.DataFrame, target: str | None, column: str | None, kind: FileKind, *,
                        encoded: Callable[[pd.DataFrame, str | None], list[str]],
                        paths: Callable[[pd.DataFrame, str | None], list[str]],
                        load: Callable[[pd.DataFrame, str], pd.DataFrame], missing: str) -> tuple[pd.DataFrame, str, str]:
    """(table with a column of encoded files, its name, the target): the file column is ``column``, else the first
    column of encoded files, else the first column of paths, which ``load(frame, column)`` reads into
    ``kind.column``. ``missing``: the message when no column holds either."""
    target = target or ("label" if "label" in frame.columns else None)
    if not target:
        raise ConfigError("No target column given; pass --target COLUMN (a folder of class subfolders has 'label').")
    if target not in frame.columns:
        raise DataError(f"No target column {target!r} in the data; its columns are {list(map(str, frame.columns))[:10]}.")
    col = column
    if col is not None and col not in frame.columns:
        raise DataError(f"No column {col!r} in the data; its columns are {list(map(str, frame.columns))[:10]}.")
    if col is None:
        found = encoded(frame, target)
        col = found[0] if found else None
    if col is None or col in paths(frame, target):
        names = [col] if col else paths(frame, target)
        if not names:
            raise DataError(missing)
        frame, col = load(frame, names[0]), kind.column
    return frame, col, target


class FolderReading:
    """The training-side reading a media task shares (mixed in before ``Task``): a folder of class subfolders is
    claimed and read, a table is recognised by a column of encoded files or of file paths. The task names its
    ``files`` (FileKind), its column detectors and the columns besides the file and target it tolerates."""

    files: FileKind
    encoded_what: str  # "images (PNG/JPEG/WebP)"
    paths_what: str  # "image file paths"
    tolerated: tuple[str, ...] = ("path",)
    max_other_columns: int = 3

    @staticmethod
    def encoded_columns(frame: pd.DataFrame, target: str | None) -> list[str]:
        raise NotImplementedError

    @staticmethod
    def path_columns(frame: pd.DataFrame, target: str | None) -> list[str]:
        raise NotImplementedError

    @staticmethod
    def read_folder(source: Any, *, log: Callable[[str], None] | None = None) -> pd.DataFrame:
        raise NotImplementedError

    def claims(self, source: Any) -> str | None:
        if is_class_folder(source, self.files.suffixes):
            return f"{str(source)!r} is a folder of class subfolders of {self.files.folder_of}"
        return None

    def read(self, source: Any, *, log: Callable[[str], None] | None = None) -> pd.DataFrame:
        if not isinstance(source, pd.DataFrame) and not (isinstance(source, str) and source.startswith("builtin:")):
            try:
                is_dir = Path(source).is_dir()
            except TypeError:
                is_dir = False
            if is_dir:
                return self.read_folder(source, log=log)
        return super().read(source, log=log)  # type: ignore[misc]

    def detect(self, frame: pd.DataFrame, target: str | None) -> str | None:
        found = self.encoded_columns(frame, target)
        why = f"column {found[0]!r} holds {self.encoded_what}" if found else None
        if not found:
            found = self.path_columns(frame, target)
            if not found:
                return None
            why = f"column {found[0]!r} holds {self.paths_what}"
        others = [c for c in frame.columns if c not in (target, found[0], *self.tolerated)]
        return None if len(others) > self.max_other_columns else why
