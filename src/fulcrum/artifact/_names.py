"""Model names, aliases and references (``name``, ``name@3``, ``name@production``).

A name becomes a directory under the registry root, so the rule is strict enough
that no name can leave it: 1-64 characters of ``[A-Za-z0-9._-]``, starting with a
letter or digit, never containing ``..``. A version is ASCII digits only (``iris@3``;
never ``iris@\u0663`` or a full-width digit, which ``str.isdigit`` would accept).

A reference is a package *directory* only when it clearly is a path: it contains a
``/`` (or the OS separator) or starts with ``.``; anything else is a registry
reference, even when a directory of that name exists (:func:`is_path_ref`).
"""

from __future__ import annotations

import os
import re
import unicodedata

from ..errors import InvalidNameError

MAX_LEN = 64
NAME_RULE = "1-64 characters of letters, digits, '.', '_' or '-', starting with a letter or digit, without '..'"
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_VERSION_RE = re.compile(r"[0-9]+")  # ASCII only: [0-9] never matches other scripts' digits
_BAD_RUN = re.compile(r"[^A-Za-z0-9._-]+")
_SEP_RUN = re.compile(r"[._-]{2,}")
# Files the registry keeps beside the model directories; a model may not be named like them.
_RESERVED_PREFIX = "index.sqlite"

Selector = int | str | None


def sanitize_name(text: str, *, default: str = "model") -> str:
    """A valid name derived from free text, e.g. a file stem: ``"my data (v2)"`` -> ``"my-data-v2"``."""
    s = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode("ascii")
    s = _BAD_RUN.sub("-", s)
    s = _SEP_RUN.sub(lambda m: "-" if "-" in m.group() else m.group()[0], s)
    s = s.strip("._-")[:MAX_LEN].rstrip("._-")
    if s.lower().startswith(_RESERVED_PREFIX):
        s = "model-" + s[: MAX_LEN - 6]
    return s if s else default


def _check(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidNameError(f"A {what} must be a string, not {type(value).__name__}; it must be {NAME_RULE}.")
    if _NAME_RE.fullmatch(value) and ".." not in value and not value.lower().startswith(_RESERVED_PREFIX):
        return value
    hint = sanitize_name(value)
    raise InvalidNameError(
        f"Invalid {what} {value!r}: it must be {NAME_RULE} (so it cannot leave the registry directory). "
        f"Try {hint!r}."
    )


def is_version_text(text: str) -> bool:
    """Whether ``text`` is a version number as written in a reference or a directory name: ASCII digits."""
    return isinstance(text, str) and _VERSION_RE.fullmatch(text) is not None


def is_path_ref(ref: object) -> bool:
    """Whether a reference names a package directory rather than a registry model: a ``os.PathLike``,
    or text containing ``/`` (or the OS separator) or starting with ``.``. ``iris`` is always the
    registry's model, even when ``./iris/`` exists; write ``./iris`` for the directory."""
    if isinstance(ref, os.PathLike):
        return True
    if not isinstance(ref, str):
        return False
    return "/" in ref or os.sep in ref or (os.altsep is not None and os.altsep in ref) or ref.startswith(".")


def validate_name(name: str) -> str:
    """Return ``name`` unchanged if it is a safe model name, else raise InvalidNameError with a suggestion."""
    return _check(name, "model name")


def validate_alias(alias: str) -> str:
    """Aliases follow the name rule and may not be all digits (``name@3`` always means version 3)."""
    alias = _check(alias, "alias")
    if is_version_text(alias):
        raise InvalidNameError(
            f"Invalid alias {alias!r}: an alias cannot be all digits, since name@{alias} means version {int(alias)}. "
            f"Try 'v{alias}'."
        )
    return alias


def parse_ref(ref: str) -> tuple[str, Selector]:
    """Split a reference into (name, selector): ``"iris"`` -> ("iris", None), ``"iris@3"`` -> ("iris", 3),
    ``"iris@production"`` -> ("iris", "production")."""
    if not isinstance(ref, str):
        raise InvalidNameError(f"A model reference must be a string like 'name', 'name@3' or 'name@production', not {ref!r}.")
    name, at, selector = ref.partition("@")
    if at and (not selector or "@" in selector):
        raise InvalidNameError(
            f"Invalid model reference {ref!r}: write 'name' (latest), 'name@3' (version 3) or 'name@production' (alias)."
        )
    name = validate_name(name)
    if not at:
        return name, None
    if is_version_text(selector):
        version = int(selector)
        if version < 1:
            raise InvalidNameError(f"Invalid model reference {ref!r}: versions start at 1; write '{name}@1' or just '{name}'.")
        return name, version
    return name, validate_alias(selector)


def format_ref(name: str, version: int | None) -> str:
    return name if version is None else f"{name}@{version}"
