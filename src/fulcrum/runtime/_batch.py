"""Batch prediction over files: stream in chunks, bounded memory, all-or-nothing output.

The output is written to a temporary file next to its destination (same directory, so the
final rename is atomic), fsynced, then renamed into place; on any failure (a bad row in a
later chunk, an interrupt) the temporary file is removed and an existing output file is left
as it was. ``-`` writes CSV to standard output, and only after every chunk succeeded (the
rows are spooled to an anonymous temporary file first), so a failure prints nothing.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import sys
import tempfile
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Sequence

import pandas as pd

from ..errors import DataError, FulcrumError

__all__ = ["predict_file", "iter_chunks", "TableWriter", "STDOUT"]

READ_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
WRITE_SUFFIXES = {**READ_SUFFIXES, ".json": "json"}
#: The output name that means standard output (CSV).
STDOUT = "-"
_ROW_IN_MESSAGE = re.compile(r"\bat row (\d+) \(0-based\)")


def _kind(path: Path, what: str, table: dict[str, str] = READ_SUFFIXES) -> str:
    kind = table.get(path.suffix.lower())
    if kind is None:
        choices = ", ".join(sorted(set(table)))
        raise DataError(f"{what} {str(path)!r}: unsupported extension {path.suffix!r}; use one of {choices}"
                        + (" (or - for CSV on standard output)." if table is WRITE_SUFFIXES else "."))
    return kind


def iter_chunks(path: str | os.PathLike[str], chunk_rows: int = 50_000, *,
                notice: Callable[[str], None] | None = None) -> Iterator[pd.DataFrame]:
    """Yield DataFrames of at most ``chunk_rows`` rows; memory stays bounded by the chunk.

    A ``.csv`` separated by ``;``, TAB or ``|`` is read with that separator (``notice`` hears it).
    """
    from ..data._readers import separator_notice, sniff_separator

    p = Path(path)
    if not p.is_file():
        raise DataError(f"Input file {str(p)!r} does not exist; check the path.")
    kind = _kind(p, "Input file")
    if p.stat().st_size == 0:
        raise DataError(f"Input file {str(p)!r} is empty; it needs a header and at least one row.")
    try:
        if kind == "csv":
            sep = "\t" if p.suffix.lower() == ".tsv" else sniff_separator(p)
            if p.suffix.lower() == ".csv" and sep != "," and notice is not None:
                notice(separator_notice(p, sep))
            with pd.read_csv(p, sep=sep, chunksize=chunk_rows) as reader:
                yield from reader
        elif kind == "jsonl":
            # dtype=False: cells keep their JSON types ("5_1" stays a string, true a boolean) for the
            # shared cell parser to judge; pandas would turn "5_1" into 51 and true into 1.
            with pd.read_json(p, lines=True, chunksize=chunk_rows, dtype=False) as reader:
                yield from reader
        else:
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(p).iter_batches(batch_size=chunk_rows):
                yield batch.to_pandas()
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        if isinstance(exc, DataError):
            raise
        if isinstance(exc, UnicodeDecodeError):
            from ..data._readers import not_utf8_error

            raise not_utf8_error(p, exc) from exc
        raise DataError(f"Cannot read {str(p)!r}: {exc}") from exc


def _create_beside(path: Path) -> tuple[Path, IO[bytes]]:
    """A new, uniquely named hidden file in ``path``'s directory, opened for binary writing.

    Created with mode 0o666 filtered by the umask (as any file the user writes), or with the
    permissions of the file it will replace.
    """
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        mode = None
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:  # pragma: no cover - 48 random bits
            continue
    if mode is not None:
        os.chmod(tmp, mode)
    return tmp, os.fdopen(fd, "wb")


class TableWriter:
    """Appends DataFrames to a temporary file; ``commit()`` moves it into place, ``abort()`` removes it.

    ``path``: ``.csv``/``.tsv``, ``.parquet``/``.pq``, ``.jsonl``/``.ndjson``, ``.json`` (one array of
    records) or ``-`` (CSV on standard output, written at ``commit()``).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.stdout = str(path) == STDOUT
        self.path = Path(path)
        self.tmp: Path | None = None
        if self.stdout:
            self.kind, self.sep = "csv", ","
            self._fh: IO[bytes] = tempfile.TemporaryFile()  # anonymous: nothing to clean up on disk
        else:
            self.kind = _kind(self.path, "Output file", WRITE_SUFFIXES)
            self.sep = "\t" if self.path.suffix.lower() == ".tsv" else ","
            if not self.path.parent.is_dir():
                raise DataError(f"Output directory {str(self.path.parent)!r} does not exist; create it first.")
            if self.path.is_dir():
                raise DataError(f"Output path {str(self.path)!r} is a directory; give a file name such as predictions.csv.")
            self.tmp, self._fh = _create_beside(self.path)
        self._first = True
        self._pq: Any = None
        self._schema: Any = None
        self._wrote_json = False

    def write(self, df: pd.DataFrame) -> None:
        fh = self._fh
        if self.kind == "csv":
            fh.write(df.to_csv(index=False, header=self._first, sep=self.sep).encode("utf-8"))
        elif self.kind == "jsonl":
            if len(df):
                fh.write(df.to_json(orient="records", lines=True).rstrip("\n").encode("utf-8") + b"\n")
        elif self.kind == "json":
            if len(df):  # one record per line; JSON strings never hold a raw newline
                body = df.to_json(orient="records", lines=True).strip().replace("\n", ",\n")
                fh.write((b",\n" if self._wrote_json else b"[\n") + body.encode("utf-8"))
                self._wrote_json = True
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            try:
                table = pa.Table.from_pandas(df, schema=self._schema, preserve_index=False)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise DataError(f"Cannot write {str(self.path)!r}: a column changes type between chunks ({exc}); "
                                "write .csv instead, or make the column's values one type.") from exc
            if self._pq is None:
                self._schema = table.schema
                self._pq = pq.ParquetWriter(fh, table.schema)
            self._pq.write_table(table)
        self._first = False

    def commit(self) -> Path:
        """Finish the file and move it into place (or copy it to standard output)."""
        if self.kind == "json":
            self._fh.write(b"\n]\n" if self._wrote_json else b"[]\n")
        if self._pq is not None:
            self._pq.close()
        self._fh.flush()
        if self.stdout:
            self._fh.seek(0)
            sys.stdout.flush()
            out = getattr(sys.stdout, "buffer", None)
            if out is not None:
                shutil.copyfileobj(self._fh, out)
                out.flush()
            else:  # a text-only stream
                sys.stdout.write(self._fh.read().decode("utf-8"))
                sys.stdout.flush()
            self._fh.close()
            return self.path
        assert self.tmp is not None
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self.tmp, self.path)
        _fsync_dir(self.path.parent)
        return self.path

    def abort(self) -> None:
        if self._pq is not None:
            try:
                self._pq.close()
            except Exception:  # noqa: BLE001 - best effort on the error path
                pass
        try:
            self._fh.close()
        except Exception:  # noqa: BLE001
            pass
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


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


def _at_file_row(exc: FulcrumError, offset: int) -> FulcrumError:
    """The same error with a chunk-relative ``at row N (0-based)`` turned into the file's row number."""
    msg = str(exc)
    if offset == 0 or not _ROW_IN_MESSAGE.search(msg):
        return exc
    fixed = _ROW_IN_MESSAGE.sub(lambda m: f"at row {int(m.group(1)) + offset} (0-based)", msg, count=1)
    try:
        new = type(exc)(fixed)
    except TypeError:  # an error type with another constructor: keep it as it was
        return exc
    return new


def _check_keep(keep: Sequence[str], columns: Sequence[str], outputs: Sequence[str], source: str) -> None:
    missing = [c for c in keep if c not in columns]
    if missing:
        raise DataError(f"--keep: column(s) {', '.join(map(repr, missing))} not in {source!r}; "
                        f"its columns are {', '.join(map(repr, columns))}.")
    clash = [c for c in keep if c in outputs]
    if clash:
        raise DataError(f"--keep: column(s) {', '.join(map(repr, clash))} would clash with the prediction output "
                        f"columns ({', '.join(map(repr, outputs))}); rename them in the input first.")
    dupes = sorted({c for c in keep if list(keep).count(c) > 1})
    if dupes:
        raise DataError(f"--keep: column(s) {', '.join(map(repr, dupes))} listed twice; list each once.")


def predict_file(
    predictor: Any,
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    chunk_rows: int = 50_000,
    on_unknown: str = "ignore",
    progress: bool = True,
    notice: Callable[[str], None] | None = None,
    keep: Sequence[str] = (),
) -> int:
    """Predict every row of ``input_path`` into ``output_path`` (a file, or ``-`` for CSV on stdout);
    returns the row count.

    The output holds the ``keep`` input columns (e.g. ids), then ``prediction`` (and ``proba_<label>``
    for classifiers). Nothing is written at ``output_path`` unless every chunk succeeded.
    """
    from tqdm.auto import tqdm

    if chunk_rows < 1:
        raise DataError(f"chunk_rows must be a positive number of rows, got {chunk_rows}.")
    keep = list(keep)
    size = Path(input_path).stat().st_size if Path(input_path).is_file() else 0
    rows_hint = _estimate_rows(Path(input_path))
    writer = TableWriter(output_path)
    seen: set[str] = set()
    rows = 0

    def say(msg: str) -> None:
        if notice and msg not in seen:
            seen.add(msg)
            notice(msg)

    try:
        with tqdm(total=size, unit="B", unit_scale=True, desc="predict", disable=None if progress else True) as bar:
            for chunk in iter_chunks(input_path, chunk_rows, notice=say):
                try:
                    out = predictor.predict(chunk, on_unknown=on_unknown)
                except FulcrumError as exc:
                    moved = _at_file_row(exc, rows)
                    if moved is exc:
                        raise
                    raise moved from exc
                if keep:
                    if rows == 0:
                        _check_keep(keep, [str(c) for c in chunk.columns], [str(c) for c in out.columns], str(input_path))
                    out = pd.concat([chunk[keep].reset_index(drop=True), out.reset_index(drop=True)], axis=1)
                writer.write(out)
                rows += len(chunk)
                for msg in getattr(predictor, "notices", []):
                    say(f"note: {msg}")
                bar.set_postfix(rows=rows, refresh=False)
                bar.update(max(0, int(size * min(1.0, rows / max(rows_hint, rows))) - bar.n))
        if rows == 0:
            raise DataError(f"Input file {str(input_path)!r} has no rows to predict.")
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return rows
