from __future__ import annotations

import pytest

from fulcrum.artifact import parse_ref, sanitize_name, validate_alias, validate_name
from fulcrum.errors import InvalidNameError


@pytest.mark.parametrize("name", ["iris", "a", "Iris-2.v_3", "9lives", "x" * 64, "123"])
def test_valid_names_are_returned_unchanged(name):
    assert validate_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["../x", "a/b", "..", ".", "", "x" * 65, "a..b", ".hidden", "-x", "_x", "a b", "a\\b", "/abs", "a@b", "é",
     "index.sqlite", "index.sqlite-wal", "x\x00", None, 3],
)
def test_unsafe_names_are_rejected(name):
    with pytest.raises(InvalidNameError, match="letters, digits"):
        validate_name(name)


def test_rejection_explains_the_rule_and_suggests_a_safe_name():
    with pytest.raises(InvalidNameError) as info:
        validate_name("../x")
    msg = str(info.value)
    assert "'../x'" in msg and "starting with a letter or digit" in msg and "Try 'x'" in msg
    assert info.value.http_status == 400 and isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("my data (v2)", "my-data-v2"),
        ("../x", "x"),
        ("a/b", "a-b"),
        ("..", "model"),
        ("", "model"),
        ("Café crème", "Cafe-creme"),
        ("x" * 100, "x" * 64),
        ("__init__", "init"),
        ("index.sqlite", "model-index.sqlite"),
        ("a..b", "a.b"),
    ],
)
def test_sanitize_name_gives_a_valid_name(text, expected):
    assert sanitize_name(text) == expected
    assert validate_name(sanitize_name(text)) == expected


def test_aliases_follow_the_name_rule_and_cannot_be_all_digits():
    assert validate_alias("production") == "production"
    assert validate_alias("v2") == "v2"
    with pytest.raises(InvalidNameError, match="cannot be all digits.*Try 'v3'"):
        validate_alias("3")
    with pytest.raises(InvalidNameError):
        validate_alias("../prod")


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("iris", ("iris", None)),
        ("iris@3", ("iris", 3)),
        ("iris@03", ("iris", 3)),
        ("iris@production", ("iris", "production")),
        ("my-model.v2@staging", ("my-model.v2", "staging")),
    ],
)
def test_parse_ref(ref, expected):
    got = parse_ref(ref)
    assert got == expected
    assert type(got[1]) is type(expected[1])


@pytest.mark.parametrize("ref", ["", "@3", "iris@", "iris@@3", "iris@3@4", "../x@1", "iris@0", "iris@../p", "iris@a b", 5])
def test_parse_ref_rejects_bad_syntax(ref):
    with pytest.raises(InvalidNameError):
        parse_ref(ref)


@pytest.mark.parametrize("ref", ["iris@\u0661", "iris@\uff10\uff11", "iris@\u0663", "iris@\u00b2", "iris@1\u0662"])
def test_versions_are_ascii_digits_only(ref):
    """``str.isdigit`` accepts Arabic-Indic, full-width and superscript digits; a version does not."""
    with pytest.raises(InvalidNameError):
        parse_ref(ref)


def test_an_alias_of_non_ascii_digits_is_refused_too():
    with pytest.raises(InvalidNameError):
        validate_alias("\u0661")


@pytest.mark.parametrize(
    ("ref", "is_path"),
    [
        ("iris", False), ("iris@3", False), ("iris@production", False), ("my-model.v2", False),
        ("./iris", True), ("../models/iris", True), ("/srv/models/iris", True), ("models/iris", True),
        (".", True), ("..", True), (".iris", True), ("iris/", True), ("~/models/iris", True),
    ],
)
def test_a_reference_is_a_path_only_when_it_clearly_is_one(ref, is_path):
    from fulcrum.artifact import is_path_ref

    assert is_path_ref(ref) is is_path
