"""Multipart uploads on the friendly predict route: ``curl -F image=@photo.png .../v1/models/NAME/predict``.

A ``multipart/form-data`` body (parsed by Starlette's ``MultiPartParser`` over python-multipart into
``UploadFile`` parts) is turned into the same columns as the JSON body: each file part is one row, in the
order sent, under the model's file input (an ``image`` or ``audio`` field). A part's field name is the input's
name, one of its aliases, the shorthand key (``images``, ``audio``), ``file`` or ``files``. The body is already
bounded by the server's ``max_body_bytes`` (413); each file is checked here against the model's ``max_bytes``
(422 naming the file and the limit), and its pixels or duration by the task's codec like any other value
(422 naming the row, to which :func:`name_files` adds the file's name).

Files travel on as base64 text, the JSON route's form, so records and monitors see one kind of value.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from ..errors import ServeError

__all__ = ["MULTIPART", "is_multipart", "parse_upload", "name_files"]

MULTIPART = "multipart/form-data"
FILE_KINDS = ("image", "audio")
_ROW = re.compile(r"\bat row (\d+) \(0-based\)")


def is_multipart(scope: dict[str, Any]) -> str | None:
    """The request's content type when it is ``multipart/form-data``, else None."""
    for k, v in scope.get("headers") or ():
        if k == b"content-type":
            ctype = v.decode("latin-1")
            return ctype if ctype.split(";", 1)[0].strip().lower() == MULTIPART else None
    return None


def _file_field(model: Any) -> Any:
    files = [f for f in model.fields if f.kind in FILE_KINDS]
    if len(files) != 1:
        raise ServeError(f"Model {model.ref} takes no file input (its inputs: "
                         f"{[f.name for f in model.fields]}); multipart/form-data uploads are for image and audio "
                         "models. Send JSON: {\"records\": [...]}.", 415)
    return files[0]


async def parse_upload(model: Any, body: bytes, content_type: str) -> tuple[dict[str, list[Any]], int, list[str]]:
    """A multipart body -> (column value lists, rows, each row's file name). ServeError 422 for a form without a
    file, an unknown field, a text field or a file over ``max_bytes``; 413 for more files than rows allowed."""
    from starlette.datastructures import Headers, UploadFile
    from starlette.formparsers import MultiPartException, MultiPartParser

    field = _file_field(model)
    short = model.shorthand[0] if model.shorthand else None
    names = {field.name, *[str(a) for a in (field.limits or {}).get("aliases") or []], "file", "files"}
    if short:
        names.add(short)
    max_bytes = int((field.limits or {}).get("max_bytes") or 0)
    example = f"-F {field.name}=@{'photo.png' if field.kind == 'image' else 'clip.wav'}"

    async def stream() -> Any:
        yield body

    try:
        form = await MultiPartParser(Headers({"content-type": content_type}), stream(),
                                     max_files=model.max_rows + 1, max_fields=16).parse()
    except MultiPartException as exc:
        raise ServeError(f"The multipart/form-data body cannot be parsed ({exc}); send files as {example}.",
                         422) from None
    try:
        values: list[str] = []
        files: list[str] = []
        for key, item in form.multi_items():
            if not isinstance(item, UploadFile):
                raise ServeError(f"Form field {key!r} is text; a multipart upload to {model.ref} carries "
                                 f"{field.kind} files only ({example}).", 422)
            if key not in names:
                raise ServeError(f"Form field {key!r} is not an input of {model.ref}; send each {field.kind} file "
                                 f"under {field.name!r} ({example}).", 422)
            fname = item.filename or f"part {len(files)}"
            if len(files) >= model.max_rows:
                raise ServeError(f"Request has more than {model.max_rows} files; this server takes at most "
                                 f"{model.max_rows} per request. Split it.", 413)
            data = await item.read()
            if max_bytes and len(data) > max_bytes:
                raise ServeError(f"File {fname!r} (row {len(files)}) has {len(data)} bytes, more than this model's "
                                 f"limit of {max_bytes} (max_bytes); send a smaller file.", 422)
            if not data:
                raise ServeError(f"File {fname!r} (row {len(files)}) is empty (0 bytes); send a complete "
                                 f"{field.kind} file.", 422)
            values.append(base64.b64encode(data).decode("ascii"))
            files.append(fname)
    finally:
        await form.close()
    if not values:
        raise ServeError(f"The multipart/form-data body holds no file; send the {field.kind} as {example}.", 422)
    rest = {f.name: [None] * len(values) for f in model.fields if f.name != field.name}
    return {field.name: values, **rest}, len(values), files


def name_files(exc: BaseException, files: list[str]) -> BaseException:
    """``exc`` with the uploaded file's name after its ``at row N (0-based)``, so the answer names the file."""
    if not isinstance(exc, ServeError) or exc.http_status != 422 or not files:
        return exc
    msg = str(exc)
    m = _ROW.search(msg)
    if m is None:
        if len(files) != 1:
            return exc
        fixed = f"File {files[0]!r}: {msg}"
    else:
        i = int(m.group(1))
        if i >= len(files):
            return exc
        fixed = msg[: m.end()] + f" (file {files[i]!r})" + msg[m.end():]
    new = ServeError(fixed, exc.http_status)
    if getattr(exc, "detail", None) is not None:
        new.detail = exc.detail  # type: ignore[attr-defined]
    return new
