"""Batch prediction over media files: a folder of images or clips, or a table of their paths -> one table.

``fulcrum predict MODEL photos/`` walks the folder recursively (hidden files and folders skipped, symlinked
folders not followed, every path in sorted order) for the files the model takes: its file input's formats
(``PNG/JPEG/WEBP`` -> ``.png .jpg .jpeg .webp``; ``WAV/FLAC/OGG`` -> ``.wav .flac .ogg``). Other files are
left out with a note. ``fulcrum predict MODEL files.csv`` with a column of such paths (relative to the
table's folder) reads each one from inside that folder only: an absolute path, a ``..`` or a symlink that
leaves it is refused, naming the row.

The output has one row per file: ``path`` relative to the folder (a table's path column as written), the
``--keep`` columns of a table, then ``prediction``, ``proba_<label>`` and ``ood_score``. A file that cannot
be used (corrupt, truncated, empty, over the model's limits) stops the run with one error naming that
file; the output is written to a temporary file beside its destination and renamed into place only when
every file succeeded (see _batch.TableWriter), so nothing half-written is left.
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import pandas as pd

from ..errors import DataError, FulcrumError

__all__ = ["FORMAT_SUFFIXES", "file_input", "is_media_source", "predict_media"]

FORMAT_SUFFIXES = {"PNG": (".png",), "JPEG": (".jpg", ".jpeg"), "WEBP": (".webp",), "WAV": (".wav",),
                   "FLAC": (".flac",), "OGG": (".ogg",)}
FILE_KINDS = ("image", "audio")
CHUNK_FILES = 128
_ROW = re.compile(r"'[^']*' at row (\d+) \(0-based\):? ?")


class FileInput:
    """The model's one file input: its name, kind, accepted suffixes and byte limit."""

    def __init__(self, name: str, kind: str, suffixes: tuple[str, ...], max_bytes: int, aliases: Sequence[str]) -> None:
        self.name, self.kind, self.suffixes, self.max_bytes = name, kind, suffixes, max_bytes
        self.names = [name, *aliases]


def file_input(predictor: Any) -> FileInput | None:
    """The model's file input (an image or audio field), or None for models that take no files."""
    task = getattr(predictor, "task", None)
    if task is None:
        return None
    fields = [f for f in task.request_schema(predictor.package.manifest) if f.kind in FILE_KINDS]
    if len(fields) != 1:
        return None
    f = fields[0]
    lim = dict(f.limits or {})
    suffixes = tuple(s for fmt in lim.get("formats") or () for s in FORMAT_SUFFIXES.get(str(fmt).upper(), ()))
    return FileInput(f.name, f.kind, suffixes, int(lim.get("max_bytes") or 0),
                     [str(a) for a in lim.get("aliases") or []])


def _path_column(frame: pd.DataFrame, fi: FileInput) -> str | None:
    from ..tasks._media import suffix_columns

    found = suffix_columns(frame, None, fi.suffixes)
    for name in fi.names:  # the model's own input column holding paths instead of encoded files
        if name in found:
            return name
    if any(n in frame.columns for n in fi.names):
        return None  # encoded files (base64) in the model's input column: an ordinary table
    return found[0] if found else None


def is_media_source(predictor: Any, source: str | os.PathLike[str]) -> bool:
    """Whether ``source`` is a folder, or a table with a column of file paths, for a model that takes files."""
    fi = file_input(predictor)
    if fi is None:
        return False
    p = Path(source)
    if p.is_dir():
        return True
    if str(source) == "-" or not p.is_file() or p.stat().st_size == 0:
        return False
    from ._batch import iter_chunks

    try:
        first = next(iter_chunks(p, 50))
    except (FulcrumError, StopIteration):
        return False
    return _path_column(first, fi) is not None


def _walk(root: Path, fi: FileInput, say: Callable[[str], None]) -> list[str]:
    """Files under ``root`` with the model's suffixes, relative POSIX paths in sorted order."""
    found, skipped = [], 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel_dir = Path(dirpath).relative_to(root)
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            if name.lower().endswith(fi.suffixes):
                found.append((rel_dir / name).as_posix())
            else:
                skipped += 1
    if skipped:
        say(f"note: {skipped} file(s) under {str(root)!r} are not {'/'.join(s.lstrip('.') for s in fi.suffixes)} "
            "files and were left out")
    if not found:
        raise DataError(f"The folder {str(root)!r} holds no {fi.kind} files ({', '.join(fi.suffixes)}); point at a "
                        f"folder of {fi.kind} files or a table of their paths.")
    return sorted(found)


def _read(root: Path, rel: str, fi: FileInput, where: str) -> str:
    from ..tasks._media import inside_root

    path = inside_root(root, rel, where, f"every {fi.kind} file")
    if not path.is_file():
        raise DataError(f"{where}: {str(path)!r} is not a file; check the path.")
    size = path.stat().st_size
    if fi.max_bytes and size > fi.max_bytes:
        raise DataError(f"{where} has {size} bytes, more than this model's limit of {fi.max_bytes} (max_bytes); "
                        "leave it out or make it smaller.")
    if size == 0:
        raise DataError(f"{where} is empty (0 bytes); leave it out or replace it with a complete {fi.kind} file.")
    return base64.b64encode(path.read_bytes()).decode("ascii")


def _chunks(source: Path, fi: FileInput, chunk: int, say: Callable[[str], None],
            column: str | None) -> Iterator[tuple[pd.DataFrame, pd.DataFrame, list[str], str]]:
    """(input rows for the model, rows to keep in the output, each row's 'where', the path column) per chunk."""
    if source.is_dir():
        root = source
        rels = _walk(root, fi, say)
        for s in range(0, len(rels), chunk):
            part = rels[s: s + chunk]
            wheres = [f"File {r!r} in {str(root)!r}" for r in part]
            values = [_read(root, r, fi, w) for r, w in zip(part, wheres)]
            yield pd.DataFrame({fi.name: values}), pd.DataFrame({"path": part}), wheres, "path"
        return
    from ._batch import iter_chunks

    root = source.resolve().parent
    offset = 0
    for frame in iter_chunks(source, chunk, notice=say):
        col = column or _path_column(frame, fi)
        if col is None or col not in frame.columns:
            raise DataError(f"{str(source)!r} has no column of {fi.kind} file paths ({', '.join(fi.suffixes)}); "
                            "its columns are " + ", ".join(map(repr, map(str, frame.columns[:10]))) + ".")
        rels = frame[col].tolist()
        wheres, values = [], []
        for i, rel in enumerate(rels):
            where = f"Row {offset + i} (0-based) of {str(source)!r}, file {rel!r},"
            if not isinstance(rel, str) or not rel.strip():
                raise DataError(f"Row {offset + i} (0-based) of {str(source)!r} has no path in column {col!r}; every "
                                f"row needs a {fi.kind} file.")
            wheres.append(where.rstrip(","))
            values.append(_read(root, rel, fi, where.rstrip(",")))
        yield pd.DataFrame({fi.name: values}), frame.reset_index(drop=True), wheres, str(col)
        offset += len(frame)


def _named(exc: FulcrumError, wheres: list[str]) -> FulcrumError:
    """The model's ``'image' at row i (0-based)`` turned into the file's name."""
    msg = str(exc)
    m = _ROW.search(msg)
    if m is None or int(m.group(1)) >= len(wheres):
        return exc
    rest = msg[m.end():]
    return DataError(f"{wheres[int(m.group(1))]}: {rest}" if rest else f"{wheres[int(m.group(1))]}: {msg}")


def predict_media(predictor: Any, source: str | os.PathLike[str], output: str | os.PathLike[str], *,
                  keep: Sequence[str] = (), column: str | None = None, chunk_files: int = CHUNK_FILES,
                  progress: bool = True, notice: Callable[[str], None] | None = None) -> int:
    """Predict every file of a folder (recursively) or of a table of paths into ``output``; returns the count.
    Nothing is written unless every file succeeded."""
    from tqdm.auto import tqdm

    from ._batch import TableWriter, _check_keep

    fi = file_input(predictor)
    if fi is None:
        raise DataError(f"{predictor.package.ref} takes no image or audio files; predict a table of its input columns.")
    src = Path(source)
    if src.is_dir() and keep:
        raise DataError("--keep copies columns of a table; a folder's output has the column 'path' already.")
    seen: set[str] = set()

    def say(msg: str) -> None:
        if notice and msg not in seen:
            seen.add(msg)
            notice(msg)

    writer = TableWriter(output)
    rows = 0
    try:
        with tqdm(unit="file", desc="predict", disable=None if progress else True) as bar:
            for inputs, kept, wheres, path_col in _chunks(src, fi, max(1, int(chunk_files)), say, column):
                try:
                    out = predictor.predict(inputs)
                except FulcrumError as exc:
                    named = _named(exc, wheres)
                    if named is exc:
                        raise
                    raise named from None
                cols = [path_col] + [c for c in keep if c != path_col]
                if rows == 0:
                    _check_keep(cols, [str(c) for c in kept.columns], [str(c) for c in out.columns], str(source))
                writer.write(pd.concat([kept[cols].reset_index(drop=True), out.reset_index(drop=True)], axis=1))
                rows += len(out)
                bar.update(len(out))
        if rows == 0:
            raise DataError(f"{str(source)!r} lists no files to predict.")
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return rows
