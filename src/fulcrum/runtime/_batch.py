"""Batch prediction over files: stream in chunks, bounded memory, atomic output."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import pandas as pd

from ..errors import DataError

__all__ = ["predict_file", "iter_chunks", "TableWriter"]

READ_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def _kind(path: Path, what: str) -> str:
    kind = READ_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"{what} {str(path)!r}: unsupported extension {path.suffix!r}; use .csv, .parquet or .jsonl.")
    return kind


def iter_chunks(path: str | os.PathLike[str], chunk_rows: int = 50_000) -> Iterator[pd.DataFrame]:
    """Yield DataFrames of at most ``chunk_rows`` rows; memory stays bounded by the chunk."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"Input file {str(p)!r} does not exist; check the path.")
    kind = _kind(p, "Input file")
    if p.stat().st_size == 0:
        raise DataError(f"Input file {str(p)!r} is empty; it needs a header and at least one row.")
    try:
        if kind == "csv":
            sep = "\t" if p.suffix.lower() == ".tsv" else ","
            with pd.read_csv(p, sep=sep, chunksize=chunk_rows) as reader:
                yield from reader
        elif kind == "jsonl":
            with pd.read_json(p, lines=True, chunksize=chunk_rows) as reader:
                yield from reader
        else:
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(p).iter_batches(batch_size=chunk_rows):
                yield batch.to_pandas()
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"Cannot read {str(p)!r}: {exc}") from exc


class TableWriter:
    """Appends DataFrames to a temp file next to ``path``; ``commit()`` renames it into place."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.kind = _kind(self.path, "Output file")
        if not self.path.parent.is_dir():
            raise DataError(f"Output directory {str(self.path.parent)!r} does not exist; create it first.")
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        self._first = True
        self._pq: Any = None

    def write(self, df: pd.DataFrame) -> None:
        if self.kind == "csv":
            sep = "\t" if self.path.suffix.lower() == ".tsv" else ","
            df.to_csv(self.tmp, mode="w" if self._first else "a", header=self._first, index=False, sep=sep)
        elif self.kind == "jsonl":
            with open(self.tmp, "w" if self._first else "a", encoding="utf-8") as fh:
                df.to_json(fh, orient="records", lines=True)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(df, preserve_index=False)
            if self._pq is None:
                self._pq = pq.ParquetWriter(self.tmp, table.schema)
            self._pq.write_table(table)
        self._first = False

    def commit(self) -> Path:
        if self._pq is not None:
            self._pq.close()
        with open(self.tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        if self._pq is not None:
            try:
                self._pq.close()
            except Exception:  # noqa: BLE001 - best effort on the error path
                pass
        self.tmp.unlink(missing_ok=True)


def _estimate_rows(path: Path) -> int:
    """A cheap row-count estimate for the progress bar (exact for Parquet)."""
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        with open(path, "rb") as fh:
            head = fh.read(1 << 20)
        lines = max(1, head.count(b"\n"))
        return max(1, int(path.stat().st_size / (len(head) / lines)))
    except OSError:
        return 1


def predict_file(
    predictor: Any,
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    chunk_rows: int = 50_000,
    on_unknown: str = "ignore",
    progress: bool = True,
    notice: Callable[[str], None] | None = None,
) -> int:
    """Predict every row of ``input_path`` into ``output_path``; returns the row count.

    Nothing is written at ``output_path`` unless every chunk succeeded.
    """
    from tqdm.auto import tqdm

    size = Path(input_path).stat().st_size if Path(input_path).is_file() else 0
    rows_hint = _estimate_rows(Path(input_path))
    writer = TableWriter(output_path)
    seen: set[str] = set()
    rows = 0
    try:
        with tqdm(total=size, unit="B", unit_scale=True, desc="predict", disable=None if progress else True) as bar:
            for chunk in iter_chunks(input_path, chunk_rows):
                out = predictor.predict(chunk, on_unknown=on_unknown)
                writer.write(out)
                rows += len(chunk)
                for msg in getattr(predictor, "notices", []):
                    if notice and msg not in seen:
                        seen.add(msg)
                        notice(f"note: {msg}")
                bar.set_postfix(rows=rows, refresh=False)
                bar.update(max(0, int(size * min(1.0, rows / max(rows_hint, rows))) - bar.n))
        if rows == 0:
            raise DataError(f"Input file {str(input_path)!r} has no rows to predict.")
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return rows
