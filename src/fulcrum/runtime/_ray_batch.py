"""Batch prediction on a Ray cluster (``fulcrum predict ... --backend ray``): Ray Data spreads the chunks of a
large file, or the files of a folder, over workers; the output is the single-process run's, byte for byte.

How:

- the work is a list of units: for one file, its chunks as the single-process reader cuts them
  (``iter_chunks``: the same separator sniffing, the same per-chunk types), put into Ray's object store
  by the driver; for a folder, one unit per table file (sorted by path), which the worker reads itself
  with the same reader;
- ``ray.data.range(units).map_batches(_predict_units, ...)`` runs the units as Ray tasks (1 CPU each); a
  worker process loads the package once (its files travel through the object store and are verified
  against the manifest's checksums, so workers need no shared registry) and keeps the ONNX Runtime
  predictor for the following units;
- each unit returns its output frames (Arrow IPC streams plus a JSON header: data, never code, so the
  driver runs nothing it reads back) with the unit number; the
  driver reads them back in order (``preserve_order``) and writes them with the single-process
  ``TableWriter``: atomic, all or nothing. A unit whose rows are bad returns the error instead of raising
  it, and the driver raises it (with the file and row) before anything is written;
- a worker that dies mid-job (a killed process, a lost node) makes Ray retry its task (Ray Data
  retries tasks lost to system failures without limit by default); a retried unit is recomputed whole and returned once, and the driver checks that unit
  numbers arrive exactly once, in order, so no row is duplicated or missing.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from ..errors import DataError, FulcrumError

__all__ = ["predict_file_ray", "table_files"]

_LOADED: dict[str, Any] = {}  # per worker process: package digest -> Predictor


def table_files(folder: Path) -> list[Path]:
    """The table files under ``folder`` (recursively), sorted by relative path."""
    from ._batch import READ_SUFFIXES

    files = sorted((p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in READ_SUFFIXES),
                   key=lambda p: p.relative_to(folder).as_posix())
    if not files:
        raise DataError(f"Input folder {str(folder)!r} holds no table files ({', '.join(sorted(READ_SUFFIXES))}); "
                        "give a folder of .csv/.parquet/.jsonl files or one file.")
    return files


def _package_files(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def _predictor(job: dict[str, Any]) -> Any:
    """This worker's predictor for the job's package (written once to a private temp dir, verified on load)."""
    key = job["digest"]
    if key not in _LOADED:
        import ray

        from .. import load

        files = ray.get(job["package"])
        root = Path(tempfile.mkdtemp(prefix="fulcrum-ray-pkg-")) / "pkg"
        for rel, data in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        _LOADED[key] = load(root, threads=job["threads"])
    return _LOADED[key]


def _predict_frames(predictor: Any, chunks: Any, *, keep: Sequence[str], on_unknown: str, source: str,
                    first_row: int) -> tuple[list[pd.DataFrame], list[str]]:
    """The single-process loop over one unit's chunks: predictions with the kept columns in front."""
    from ._batch import _at_file_row, _check_keep

    frames, notes, rows = [], [], first_row
    for chunk in chunks:
        try:
            out = predictor.predict(chunk, on_unknown=on_unknown)
        except FulcrumError as exc:
            raise _at_file_row(exc, rows) from exc
        if keep:
            if rows == 0:
                _check_keep(keep, [str(c) for c in chunk.columns], [str(c) for c in out.columns], source)
            out = pd.concat([chunk[list(keep)].reset_index(drop=True), out.reset_index(drop=True)], axis=1)
        frames.append(out)
        notes += [f"note: {m}" for m in getattr(predictor, "notices", [])]
        rows += len(chunk)
    return frames, notes


def _predict_units(batch: dict[str, np.ndarray], job: dict[str, Any]) -> dict[str, np.ndarray]:
    """A Ray Data task: predict the units in ``batch["id"]``; one output row per unit."""
    import ray

    from ._batch import iter_chunks

    out_ids, out_frames = [], []
    for unit in batch["id"].tolist():
        if job.get("before_unit") is not None:
            job["before_unit"](unit)  # a hook for tests (kill this worker on a first attempt)
        try:
            predictor = _predictor(job)
            if job["refs"] is not None:  # one file cut by the driver: this unit is one chunk
                chunk = ray.get(job["refs"][unit])
                result: Any = _predict_frames(predictor, [chunk], keep=job["keep"], on_unknown=job["on_unknown"],
                                              source=job["source"], first_row=job["offsets"][unit])
            else:  # a folder: this unit is one whole file
                path = job["files"][unit]
                result = _predict_frames(predictor, iter_chunks(path, job["chunk_rows"]), keep=job["keep"],
                                         on_unknown=job["on_unknown"], source=path, first_row=0)
                if not result[0]:
                    raise DataError(f"Input file {path!r} has no rows to predict.")
        except FulcrumError as exc:  # returned, not raised: Ray must not retry a bad row, the driver raises it
            result = exc
        out_ids.append(unit)
        out_frames.append(_encode(result))
    return {"id": np.asarray(out_ids, dtype=np.int64), "result": np.asarray(out_frames, dtype=object)}


def _encode(result: Any) -> bytes:
    """A unit's result as data: ``(frames, notes)`` as a JSON header (notes, frame sizes) and one Arrow IPC stream
    per frame, or a FulcrumError as its class name and message. Nothing here can run code when it is read back."""
    import pyarrow as pa

    if isinstance(result, FulcrumError):
        head, body = {"error": type(result).__name__, "message": str(result)}, b""
    else:
        frames, notes = result
        streams = []
        for frame in frames:
            sink = pa.BufferOutputStream()
            table = pa.Table.from_pandas(frame, preserve_index=False)
            with pa.ipc.new_stream(sink, table.schema) as w:
                w.write_table(table)
            streams.append(sink.getvalue().to_pybytes())
        head, body = {"notes": list(notes), "sizes": [len(b) for b in streams]}, b"".join(streams)
    raw = json.dumps(head).encode()
    return struct.pack("<I", len(raw)) + raw + body


def _decode(blob: bytes) -> Any:
    """The inverse of ``_encode``: ``(frames, notes)``, or the FulcrumError the worker returned."""
    import pyarrow as pa

    from .. import errors

    (n,) = struct.unpack_from("<I", blob)
    head = json.loads(blob[4:4 + n])
    if "error" in head:
        cls = getattr(errors, str(head["error"]), None)
        cls = cls if isinstance(cls, type) and issubclass(cls, FulcrumError) else FulcrumError
        return cls(head["message"])
    frames, at = [], 4 + n
    for size in head["sizes"]:
        frames.append(pa.ipc.open_stream(blob[at:at + size]).read_all().to_pandas())
        at += size
    return frames, head["notes"]


def _batches(ds: Any) -> Any:
    """The dataset's output batches; a failure of Ray itself (not of the rows) becomes one FulcrumError."""
    try:
        yield from ds.iter_batches(batch_size=None, batch_format="numpy")
    except FulcrumError:
        raise
    except Exception as exc:  # a worker that kept dying, a lost object, a cluster going away
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        why = " ".join((lines[-1] if lines else type(exc).__name__).split())[:300]
        raise FulcrumError(f"Batch prediction on Ray failed ({type(exc).__name__}: {why}); nothing was written. "
                           "Rerun the command (or use --backend local).") from None


def predict_file_ray(
    predictor: Any,
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    chunk_rows: int = 50_000,
    on_unknown: str = "ignore",
    keep: Sequence[str] = (),
    address: str | None = None,
    notice: Callable[[str], None] | None = None,
    before_unit: Callable[[int], None] | None = None,
) -> int:
    """:func:`~fulcrum.runtime.predict_file` on a Ray cluster (see the module docstring); returns the row count.

    ``input_path`` is a table file or a folder of them. ``before_unit(unit)`` runs in the worker before each
    unit (tests kill a worker there)."""
    from .._ray import connect
    from ._batch import TableWriter, iter_chunks

    if chunk_rows < 1:
        raise DataError(f"chunk_rows must be a positive number of rows, got {chunk_rows}.")
    src = Path(input_path)
    if not src.exists():
        raise DataError(f"Input {str(src)!r} does not exist; check the path.")
    files = table_files(src) if src.is_dir() else None
    say_seen: set[str] = set()

    def say(msg: str) -> None:
        if notice and msg not in say_seen:
            say_seen.add(msg)
            notice(msg)

    writer = TableWriter(output_path)  # checks the output path before any work
    try:
        ray = connect(address, log=notice)
        import ray.data

        refs = offsets = None
        if files is None:
            refs, offsets, rows = [], [], 0
            for chunk in iter_chunks(src, chunk_rows, notice=say):
                refs.append(ray.put(chunk))
                offsets.append(rows)
                rows += len(chunk)
            if rows == 0:
                raise DataError(f"Input file {str(src)!r} has no rows to predict.")
        units = len(refs) if refs is not None else len(files or [])
        import hashlib

        pkg_files = _package_files(Path(predictor.package.path))
        digest = hashlib.sha256(json.dumps(sorted((k, hashlib.sha256(v).hexdigest()) for k, v in pkg_files.items())).encode()).hexdigest()
        job = {"package": ray.put(pkg_files), "digest": digest, "threads": 1, "refs": refs, "offsets": offsets,
               "files": [str(f) for f in files] if files is not None else None, "chunk_rows": chunk_rows,
               "keep": list(keep), "on_unknown": on_unknown, "source": str(src), "before_unit": before_unit}
        ctx = ray.data.DataContext.get_current()
        ordered, ctx.execution_options.preserve_order = ctx.execution_options.preserve_order, True
        ds = ray.data.range(units, override_num_blocks=units).map_batches(
            _predict_units, fn_kwargs={"job": job}, batch_size=1, batch_format="numpy", num_cpus=1)
        if notice:
            notice(f"predicting {units} {'chunk' if files is None else 'file'}(s) on Ray Data "
                   f"({int(ray.cluster_resources().get('CPU', 1))} CPU(s) in the cluster)")
        expected, total = 0, 0
        for batch in _batches(ds):
            for unit, blob in zip(batch["id"].tolist(), batch["result"]):
                if unit != expected:  # a duplicated, missing or reordered unit: never written
                    raise DataError(f"Ray returned unit {unit} where unit {expected} was due; nothing was written. "
                                    "Rerun the command.")
                expected += 1
                result = _decode(blob)
                if isinstance(result, BaseException):
                    raise result
                frames, notes = result
                for n in notes:
                    say(n)
                for frame in frames:
                    writer.write(frame)
                    total += len(frame)
        ctx.execution_options.preserve_order = ordered
        if expected != units:
            raise DataError(f"Ray returned {expected} of {units} units; nothing was written. Rerun the command.")
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return total
