"""The ONNX input encoder's fast paths give exactly the general path's feeds, notices and errors.

The general path is ``InputEncoder._column`` over the pandas Series a caller's values make (a
list as ``pd.Series(list)`` reads it, the Preprocessor's rules in ``fulcrum.data._coerce``). Every
case runs at 1 repetition (per-value code) and 40 (per-distinct-value code), through
``encode_columns``, ``encode_frame`` and, for one row, ``encode_row``; a fast path that diverged
from the general one in a value, a dtype, a notice or an error message fails here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from fulcrum.data import Preprocessor
from fulcrum.data._schema import ColumnSpec, Schema
from fulcrum.errors import DataError, FulcrumError, SchemaError
from fulcrum.tasks.tabular._codec import InputEncoder

N_TRAIN = 40


@pytest.fixture(scope="module")
def pre() -> Preprocessor:
    """One column of every kind; ``x`` reads "n/a" as missing (its na_tokens)."""
    rng = np.random.default_rng(0)
    train = pd.DataFrame({
        "x": rng.normal(size=N_TRAIN),
        "n": rng.integers(0, 9, N_TRAIN).astype(float),
        "flag": [True, False] * (N_TRAIN // 2),
        "cat": ["a", "b", "3", "true"] * (N_TRAIN // 4),
        "note": ["red fox", "blue sky", "red sky", "fox"] * (N_TRAIN // 4),
        "when": pd.date_range("2024-01-01", periods=N_TRAIN, freq="D"),
        "y": [0, 1] * (N_TRAIN // 2),
    })
    schema = Schema(
        [ColumnSpec("x", "numeric", "float64", ["n/a"]), ColumnSpec("n", "numeric", "float64"),
         ColumnSpec("flag", "boolean", "bool"), ColumnSpec("cat", "categorical", "object"),
         ColumnSpec("note", "text", "object"), ColumnSpec("when", "datetime", "datetime64[ns]")],
        target="y",
    )
    return Preprocessor(schema).fit(train)


@pytest.fixture(scope="module")
def enc(pre: Preprocessor) -> InputEncoder:
    return InputEncoder(pre.to_dict())


FILL: dict[str, Any] = {"x": 1.0, "n": 2.0, "flag": True, "cat": "a", "note": "red fox", "when": "2024-02-01"}

CASES: dict[str, list[Any]] = {
    "x": [
        np.array([1.5, np.nan, -2.0, -0.0]), np.array([1.5, 0.25], dtype=np.float32), np.array([3, -7], dtype=np.int64),
        np.array([3, 200], dtype=np.uint8), np.array([[1.5], [2.5]]), [1.5, 2, None], [1, 2**60, None], [2**70, 3],
        [None, None], np.array([1.5, None, "2.5"], dtype=object), ["5.1", " 6 ", "", "n/a", " n/a ", "-1.5e3", ".5"],
        np.array(["5.1", "7", " n/a"]), np.array(["5.1", None, "  "], dtype=object),
        ["5_1"], ["nan"], ["0x10"], ["1,5"], ["true"], [True, 2.0], np.array([True, False]),
        np.array([1.0, True], dtype=object), np.array([np.bool_(True)], dtype=object), [1.0, float("inf")],
        np.array([1.0, -np.inf]), ["1e999"], [np.float64(1.5), 2.0], [{"a": 1}], [[1.0, 2.0]],
    ],
    "flag": [
        [True, False, None], np.array([True, False]), ["yes", "N", " true ", "", "F", "1", "0"], [1, 0], [1.0, np.nan],
        np.array([0, 1]), np.array([0.0, 1.0, np.nan]), np.array([True, None], dtype=object),
        np.array([np.bool_(False), "t"], dtype=object), np.array([0.0, 2.0]), ["maybe"], [2], [float("inf")],
    ],
    "cat": [
        ["a", " b ", None, "", "zzz", "  "], [3, 4], [3.0, 2.5, np.nan, float("inf")], [True, 1, 1.0, False],
        [True, None], np.array([3, 4]), np.array([3.0, np.nan, -0.0]), np.array([True, False]), np.array(["a", "b "]),
        np.array(["a", 3, None, 3.0, np.nan], dtype=object), [2**60, None], [2**60 + 1, 1.5], [1, "a"],
        np.array([0.1, 2.0], dtype=np.float32), [np.int64(3), "a"], [pd.NA, "a"],
    ],
    "note": [
        ["hello world", None, "  "], np.array(["x y", "y"]), [1.5, "x"], np.array(["a", np.nan], dtype=object),
        [None, None], [1, None], [True, "x"],
    ],
    "when": [["2024-01-31", None], ["2024-01-31T12:00:00", ""], ["notadate"]],
}
PARAMS = [(col, i) for col, cases in CASES.items() for i in range(len(cases))]


def _repeat(values: Any, k: int) -> Any:
    if isinstance(values, np.ndarray):
        return np.concatenate([values] * k)
    return list(values) * k


def _columns(col: str, values: Any) -> dict[str, Any]:
    n = len(values)
    cols: dict[str, Any] = {c: [v] * n for c, v in FILL.items()}
    cols[col] = values
    return cols


def _outcome(fn: Any) -> tuple[str, Any]:
    try:
        return "ok", fn()
    except (FulcrumError, ValueError, TypeError, OverflowError) as exc:
        return "error", (type(exc), str(exc))


def _general_columns(enc: InputEncoder, cols: dict[str, Any], on_unknown: str) -> Any:
    """The general path, column by column in the model's order: shape checks, then each value as
    pandas reads it (``pd.Series(list)``; an array as it is) through ``_column``."""
    enc.reset_notices()
    feeds: dict[str, np.ndarray] = {}
    n = None
    for step in enc.steps:
        feeds[step["name"]] = feed = enc._given_column(step, cols[step["name"]], n, on_unknown)
        n = len(feed)
    return feeds, enc.last_unknown_, enc.last_unknown_counts_


def _general_frame(enc: InputEncoder, df: pd.DataFrame, on_unknown: str) -> Any:
    enc.reset_notices()
    feeds = {step["name"]: enc._column(step, df[step["name"]], on_unknown) for step in enc.steps}
    return feeds, enc.last_unknown_, enc.last_unknown_counts_


def _general_row(enc: InputEncoder, row: dict[str, Any], on_unknown: str) -> Any:
    """One row as ``pd.DataFrame([row])`` would read each of its values."""
    enc.reset_notices()
    feeds = {step["name"]: enc._column(step, pd.Series([row[step["name"]]]), on_unknown) for step in enc.steps}
    return feeds, enc.last_unknown_, enc.last_unknown_counts_


def _fast(fn: Any, enc: InputEncoder) -> Any:
    feeds = fn()
    return feeds, enc.last_unknown_, enc.last_unknown_counts_


def _same(got: tuple[str, Any], want: tuple[str, Any]) -> None:
    assert got[0] == want[0], (got, want)
    if got[0] == "error":
        assert got[1] == want[1]
        return
    (feeds, unknown, counts), (ref, ref_unknown, ref_counts) = got[1], want[1]
    assert list(feeds) == list(ref)
    for name, a in feeds.items():
        b = ref[name]
        assert a.dtype == b.dtype and a.shape == b.shape, (name, a, b)
        if a.dtype == object:
            assert a.tolist() == b.tolist(), name
            assert all(type(v) is str for v in a.ravel().tolist()), name
        else:
            np.testing.assert_array_equal(a, b, err_msg=name)
            if a.dtype.kind == "f":
                assert (np.signbit(a) == np.signbit(b)).all(), name
    assert unknown == ref_unknown and counts == ref_counts


@pytest.mark.parametrize("repeat", [1, 20])
@pytest.mark.parametrize(("col", "case"), PARAMS)
@pytest.mark.parametrize("on_unknown", ["ignore", "error"])
def test_encode_columns_matches_the_general_path(enc: InputEncoder, col: str, case: int, repeat: int, on_unknown: str):
    cols = _columns(col, _repeat(CASES[col][case], repeat))
    want = _outcome(lambda: _general_columns(enc, cols, on_unknown))
    _same(_outcome(lambda: _fast(lambda: enc.encode_columns(cols, on_unknown), enc)), want)
    # the other columns as numpy arrays, as the server's batcher passes them
    arrays = {c: (v if c == col else np.array(v, dtype=np.float64 if c in ("x", "n") else object)) for c, v in cols.items()}
    _same(_outcome(lambda: _fast(lambda: enc.encode_columns(arrays, on_unknown), enc)),
          _outcome(lambda: _general_columns(enc, arrays, on_unknown)))


@pytest.mark.parametrize("repeat", [1, 20])
@pytest.mark.parametrize(("col", "case"), PARAMS)
def test_encode_frame_matches_the_general_path(enc: InputEncoder, col: str, case: int, repeat: int):
    values = _repeat(CASES[col][case], repeat)
    if isinstance(values, np.ndarray) and values.ndim == 2:
        values = values[:, 0]
    try:
        df = pd.DataFrame(_columns(col, values))
    except ValueError:
        pytest.skip("pandas makes no frame of these values")
    _same(_outcome(lambda: _fast(lambda: enc.encode_frame(df), enc)), _outcome(lambda: _general_frame(enc, df, "ignore")))


@pytest.mark.parametrize(("col", "case"), PARAMS)
def test_encode_row_matches_the_general_path(enc: InputEncoder, col: str, case: int):
    values = CASES[col][case]
    value = values[0] if not (isinstance(values, np.ndarray) and values.ndim == 2) else values[0, 0]
    if isinstance(value, np.generic) and isinstance(values, np.ndarray) and values.dtype != object:
        value = value.item()  # a record holds Python values (numpy scalars have their own cases below)
    row = dict(FILL, **{col: value})
    _same(_outcome(lambda: _fast(lambda: enc.encode_row(row), enc)), _outcome(lambda: _general_row(enc, row, "ignore")))


@pytest.mark.parametrize("value", [np.float64(1.5), np.float32(0.1), np.int64(7), np.int32(-2), np.bool_(True), True, None,
                                   float("nan"), float("inf"), np.float32("-inf"), 2**70, "5.1", " n/a ", "5_1", ""])
def test_encode_row_numeric_values_match_the_general_path(enc: InputEncoder, value: Any):
    for col in ("x", "n"):
        row = dict(FILL, **{col: value})
        _same(_outcome(lambda: _fast(lambda: enc.encode_row(row), enc)), _outcome(lambda: _general_row(enc, row, "ignore")))


def test_a_list_holding_a_boolean_is_refused_in_a_numeric_column(enc: InputEncoder, pre: Preprocessor):
    """numpy turns [True, 2.0] into [1.0, 2.0]; the rule (and the Preprocessor) refuses the boolean."""
    cols = _columns("x", [True, 2.0])
    with pytest.raises(SchemaError, match=r"Column 'x' holds non-numeric value True at row 0") as exc:
        enc.encode_columns(cols)
    with pytest.raises(SchemaError) as ref:
        pre.transform(pd.DataFrame(cols))
    assert str(exc.value) == str(ref.value)


def test_unseen_categories_are_reported_alike_on_both_paths(enc: InputEncoder):
    """Top five by count, ties in order of first appearance, " q" and "q" one label; counts of every row."""
    values = ["q", " q", "r", "s", "t", "u", "v", "v", "a", None, "w"] * 5
    for cols in (_columns("cat", values), _columns("cat", np.array(values, dtype=object))):
        got = _fast(lambda: enc.encode_columns(cols), enc)
        assert got[1] == {"cat": ["q", "v", "r", "s", "t"]} and got[2] == {"cat": 45}
        _same(("ok", got), ("ok", _general_columns(enc, cols, "ignore")))
        _same(_outcome(lambda: enc.encode_columns(cols, "error")), _outcome(lambda: _general_columns(enc, cols, "error")))


def test_an_infinite_number_is_reported_before_a_later_column_error(enc: InputEncoder):
    """The general path stops at the first bad column; the fast path looks for infinities last, so it
    must hand over to the general path rather than raise a later column's error first."""
    for repeat in (1, 20):
        cols = _columns("x", _repeat(np.array([1.0, np.inf]), repeat))
        cols["cat"] = ["zzz", "a"] * repeat  # unseen
        with pytest.raises(DataError, match="Column 'x' holds an infinite value at row 1"):
            enc.encode_columns(cols, "error")
        cols["when"] = ["notadate", "2024-01-01"] * repeat
        with pytest.raises(DataError, match="Column 'x' holds an infinite value at row 1"):
            enc.encode_columns(cols)


def test_columns_of_different_lengths_name_the_column(enc: InputEncoder):
    cols = _columns("x", np.array([1.0, 2.0]))
    cols["cat"] = ["a"]
    with pytest.raises(SchemaError, match=r"Columns have different lengths: 'cat' has 1 values, others 2"):
        enc.encode_columns(cols)
    cols = _columns("x", np.zeros((2, 2)))
    with pytest.raises(SchemaError, match=r"Column 'x' must be one-dimensional .* shape \(2, 2\)"):
        enc.encode_columns(cols)


# --------------------------------------------------------------------------- an all-numeric model (frames in one array)


@pytest.fixture(scope="module")
def wide() -> InputEncoder:
    rng = np.random.default_rng(1)
    names = [f"f{i}" for i in range(9)]
    train = pd.DataFrame({n: rng.normal(size=N_TRAIN) for n in names})
    train["y"] = [0, 1] * (N_TRAIN // 2)
    schema = Schema([ColumnSpec(n, "numeric", "float64") for n in names], target="y")
    return InputEncoder(Preprocessor(schema).fit(train).to_dict())


def _wide_frames() -> list[pd.DataFrame]:
    rng = np.random.default_rng(2)
    base = pd.DataFrame({f"f{i}": rng.normal(size=50) for i in range(9)})
    base.loc[3, "f2"] = np.nan
    ints = base.copy()
    ints["f4"] = np.arange(50)
    shuffled = base[list(reversed(base.columns))].copy()
    shuffled["extra"] = np.arange(50)
    text = base.copy()
    text["f5"] = text["f5"].map(lambda v: f"{v:.3f}").astype(object)
    infinite = base.copy()
    infinite.loc[7, "f8"] = -np.inf
    boolean = base.copy()
    boolean["f0"] = True
    with_id = base.copy()
    with_id["id"] = [f"r{i}" for i in range(50)]
    dup = pd.concat([base, base[["f1"]].rename(columns={"f1": "other"}), base[["f2"]].rename(columns={"f2": "other"})], axis=1)
    return [base, ints, shuffled, text, infinite, boolean, with_id, dup, base.iloc[::2], base.head(1)]


@pytest.mark.parametrize("k", range(len(_wide_frames())))
def test_all_numeric_frames_match_the_general_path(wide: InputEncoder, k: int):
    df = _wide_frames()[k]
    _same(_outcome(lambda: _fast(lambda: wide.encode_frame(df), wide)), _outcome(lambda: _general_frame(wide, df, "ignore")))
    row = {c: (v.item() if isinstance(v, np.generic) else v) for c, v in df.iloc[0].to_dict().items()}
    _same(_outcome(lambda: _fast(lambda: wide.encode_row(row), wide)), _outcome(lambda: _general_row(wide, row, "ignore")))


def _wide_columns() -> list[dict[str, Any]]:
    """Column dicts for the all-numeric model: every numeric column a numpy array is read as one block."""
    out = []
    for df in _wide_frames():
        cols = {c: df[c].to_numpy() for c in df.columns.unique()}
        out.append(cols)
    base = out[0]
    out.append({**base, "f3": base["f3"].astype(np.float32), "f6": np.arange(50, dtype=np.uint16)})
    out.append({**base, "f3": base["f3"] > 0})  # booleans are not numbers, even among arrays
    out.append({**base, "f3": base["f3"][:49]})  # one length short
    out.append({**base, "f3": base["f3"].reshape(-1, 1)})  # a [N, 1] column
    out.append({**base, "f3": base["f3"].tolist()})
    out.append({**base, "f3": base["f3"].astype(str)})
    out.append({**base, "f8": np.full(50, np.inf)})
    return out


@pytest.mark.parametrize("k", range(len(_wide_columns())))
def test_all_numeric_columns_match_the_general_path(wide: InputEncoder, k: int):
    cols = _wide_columns()[k]
    _same(_outcome(lambda: _fast(lambda: wide.encode_columns(cols), wide)),
          _outcome(lambda: _general_columns(wide, cols, "ignore")))


def test_numeric_block_lengths_are_checked_against_earlier_columns():
    """A categorical column first, then numeric arrays read as one block: a length mismatch either way
    is the general path's error, naming the column."""
    train = pd.DataFrame({"c": ["a", "b"] * 10, "u": np.arange(20.0), "v": np.arange(20.0) % 3, "y": [0, 1] * 10})
    schema = Schema([ColumnSpec("c", "categorical", "object"), ColumnSpec("u", "numeric", "float64"),
                     ColumnSpec("v", "numeric", "float64")], target="y")
    enc = InputEncoder(Preprocessor(schema).fit(train).to_dict())
    for cols in ({"c": ["a", "b", "a"], "u": np.zeros(2), "v": np.ones(2)}, {"c": ["a"], "u": np.zeros(2), "v": np.ones(2)}):
        want = _outcome(lambda: _general_columns(enc, cols, "ignore"))
        assert want[0] == "error" and "Columns have different lengths" in want[1][1]
        _same(_outcome(lambda: _fast(lambda: enc.encode_columns(cols), enc)), want)
