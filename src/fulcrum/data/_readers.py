"""Read a table from a file, a ``builtin:NAME`` reference or a DataFrame."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from ..errors import DataError

__all__ = ["read_table", "SUPPORTED_EXTENSIONS", "sniff_separator", "separator_notice", "not_utf8_error"]

_CSV = (".csv", ".tsv")
_PARQUET = (".parquet", ".pq")
_JSONL = (".jsonl", ".ndjson")
_JSON = (".json",)
SUPPORTED_EXTENSIONS: tuple[str, ...] = _CSV + _PARQUET + _JSONL + _JSON
BUILTIN_PREFIX = "builtin:"
#: Field separators a ``.csv`` may really use; the first lines decide (see sniff_separator).
SEPARATORS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
_SNIFF_BYTES = 1 << 16
_SNIFF_LINES = 200


def _field_counts(text: str, sep: str) -> set[int] | None:
    try:
        return {len(rec) for rec in csv.reader(io.StringIO(text), delimiter=sep) if rec}
    except csv.Error:
        return None


def sniff_separator(path: str | os.PathLike[str]) -> str:
    """The field separator of a delimited text file, from its first lines (at most 64 KiB).

    ``,`` when it splits every sampled line (header included) into the same number of fields,
    or when no other separator does better; else the one of ``;``, TAB, ``|`` that splits every
    line into the same number (more than one) of fields, the most fields winning. Quoted fields
    are honoured, so a separator inside quotes changes nothing. Only the sample is parsed here;
    the file itself is read by pandas' C parser with the separator found.
    """
    with open(path, "rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    text = head.decode("utf-8", errors="replace")
    lines = text.splitlines()
    if len(head) == _SNIFF_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut short
    sample = "\n".join(line for line in lines[:_SNIFF_LINES] if line.strip())
    comma = _field_counts(sample, ",")
    if comma is not None and len(comma) == 1 and min(comma) > 1:
        return ","
    best, best_fields = ",", 1
    for sep in SEPARATORS:
        if sep == ",":
            continue
        counts = _field_counts(sample, sep)
        if counts is not None and len(counts) == 1 and min(counts) > best_fields:
            best, best_fields = sep, min(counts)
    return best


def separator_notice(path: str | os.PathLike[str], sep: str) -> str:
    return (f"note: {str(path)!r} is a .csv whose fields are separated by {sep!r} ({SEPARATORS[sep]}), "
            "not commas; it is read with that separator.")


def read_table(source: str | os.PathLike[str] | pd.DataFrame, *, log: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Return ``source`` as a DataFrame with unique string column names and at least one row.

    ``source`` is a path to a CSV/TSV, Parquet, JSON Lines or JSON (a list of
    records) file, ``"builtin:NAME"`` for a bundled dataset, or a DataFrame
    (returned as a copy). A ``.csv`` separated by ``;``, TAB or ``|`` instead of commas is
    read with its own separator (see :func:`sniff_separator`), and ``log`` hears about it.
    """
    if isinstance(source, pd.DataFrame):
        return _check_frame(source.copy(), "The DataFrame passed in")
    if isinstance(source, str) and source.startswith(BUILTIN_PREFIX):
        from ._builtin import load_builtin

        return load_builtin(source[len(BUILTIN_PREFIX) :])
    if not isinstance(source, (str, os.PathLike)):
        raise DataError(
            f"Cannot read data from a {type(source).__name__}; pass a file path, 'builtin:NAME' or a pandas DataFrame."
        )
    path = Path(source)
    ext = path.suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        raise DataError(
            f"File {str(path)!r} has an unsupported extension {ext or '(none)'!r}; "
            f"supported extensions are {', '.join(SUPPORTED_EXTENSIONS)} (or use 'builtin:NAME')."
        )
    if not path.exists():
        raise DataError(f"Data file {str(path)!r} does not exist; check the path.")
    if not path.is_file():
        raise DataError(f"Data path {str(path)!r} is not a file; pass the path of a {', '.join(SUPPORTED_EXTENSIONS)} file.")
    if path.stat().st_size == 0:
        raise DataError(f"Data file {str(path)!r} is empty; it needs a header and at least one row.")
    try:
        if ext in _CSV:
            sep = "\t" if ext == ".tsv" else sniff_separator(path)
            if ext == ".csv" and sep != "," and log is not None:
                log(separator_notice(path, sep))
            df = pd.read_csv(path, sep=sep, low_memory=False)
        elif ext in _PARQUET:
            df = pd.read_parquet(path)
        elif ext in _JSONL:
            df = _read_jsonl(path)
        else:
            df = _read_json(path)
    except DataError:
        raise
    except UnicodeDecodeError as exc:
        raise not_utf8_error(path, exc) from exc
    except Exception as exc:  # every parser has its own exception types
        raise DataError(f"Cannot read {str(path)!r} as {ext[1:].upper()}: {exc}. Check that the file is complete and in that format.") from exc
    return _check_frame(df, f"Data file {str(path)!r}")


def not_utf8_error(path: str | os.PathLike[str], exc: UnicodeDecodeError) -> DataError:
    """One line for a text file that is not UTF-8: the first line (1-based, the header is line 1) and byte that
    do not decode, and how to convert the file."""
    where = ""
    try:
        with open(path, "rb") as fh:
            for lineno, line in enumerate(fh, start=1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as bad:
                    where = f": line {lineno} holds the byte 0x{line[bad.start]:02x}, which is not UTF-8"
                    break
    except OSError:
        pass
    if not where:
        where = f" ({exc.reason} at byte {exc.start} of a block)"
    return DataError(
        f"{str(path)!r} is not UTF-8 text{where} (it was probably saved as Latin-1 / Windows-1252); save it as UTF-8 "
        f"(e.g. `iconv -f cp1252 -t utf-8 IN > OUT`) and run again."
    )


def _records_frame(records: list[Any], path: Path, what: str) -> pd.DataFrame:
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise DataError(
                f"{str(path)!r}: {what} {i + 1} is a {type(rec).__name__}, not an object; "
                'each record must be a JSON object like {"column": value}.'
            )
    return pd.DataFrame.from_records(records)


def _read_jsonl(path: Path) -> pd.DataFrame:
    records: list[Any] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"Cannot read {str(path)!r} as JSON Lines: line {lineno} is not valid JSON ({exc.msg}). "
                    "Each line must hold one JSON object."
                ) from exc
    if not records:
        raise DataError(f"Data file {str(path)!r} holds no records; it needs at least one row.")
    return _records_frame(records, path, "line")


def _read_json(path: Path) -> pd.DataFrame:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"Cannot read {str(path)!r} as JSON: {exc}. Check that the file is complete.") from exc
    if not isinstance(data, list):
        raise DataError(
            f"{str(path)!r} holds a JSON {type(data).__name__}; a .json data file must hold a list of records "
            '([{"column": value}, ...]); use .jsonl for one record per line.'
        )
    return _records_frame(data, path, "record")


def _check_frame(df: pd.DataFrame, what: str) -> pd.DataFrame:
    if df.shape[1] == 0:
        raise DataError(f"{what} has no columns; it needs a header row naming the columns.")
    if len(df) == 0:
        raise DataError(f"{what} has zero rows; it needs at least one row of data.")
    names = [str(c) for c in df.columns]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataError(f"{what} has duplicate column names {dupes}; give every column a unique name.")
    df.columns = names
    return df
