from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from fulcrum.data import ColumnSpec, Schema, fingerprint, infer_schema, profile_frame


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x": [1.0, 2.0, 3.0, 4.0, np.nan],
            "c": ["a", "b", "a", None, "a"],
            "f": ["yes", "no", "yes", "yes", None],
            "d": ["one two three", "four five", "six seven eight nine ten", "a b c", None],
            "t": ["2024-01-01", "2024-02-01", "2025-01-01", None, "2024-01-15"],
            "y": [0, 1, 0, 1, 1],
        }
    )


def test_profile_numbers(frame):
    schema = infer_schema(frame, "y")
    assert [c.kind for c in schema.features] == ["numeric", "categorical", "boolean", "text", "datetime"]
    prof = json.loads(json.dumps(profile_frame(frame, schema)))  # JSON-able
    assert prof["n_rows"] == 5
    x = prof["columns"]["x"]
    assert x["count"] == 4 and x["missing"] == 0.2
    assert x["mean"] == 2.5 and x["std"] == pytest.approx(np.sqrt(1.25)) and (x["min"], x["max"]) == (1.0, 4.0)
    # linear interpolation over [1, 2, 3, 4]: p25 = 1.75, p50 = 2.5, p1 = 1.03
    assert x["quantiles"]["p25"] == pytest.approx(1.75) and x["quantiles"]["p50"] == 2.5 and x["quantiles"]["p1"] == pytest.approx(1.03)
    hist = x["histogram"]
    assert len(hist["edges"]) == 11 and hist["edges"][0] == 1.0 and hist["edges"][-1] == 4.0
    assert hist["edges"][1] == pytest.approx(1.3)
    assert sum(hist["fractions"]) == pytest.approx(1.0) and hist["fractions"][0] == 0.25

    c = prof["columns"]["c"]
    assert c["missing"] == 0.2 and c["top"] == {"a": 0.75, "b": 0.25} and c["n_unique"] == 2
    f = prof["columns"]["f"]
    assert f["top"] == {"true": 0.75, "false": 0.25} and f["missing"] == 0.2
    assert prof["columns"]["d"]["avg_tokens"] == pytest.approx((3 + 2 + 5 + 3) / 4)
    t = prof["columns"]["t"]
    assert t["min"] == "2024-01-01T00:00:00" and t["max"] == "2025-01-01T00:00:00"
    assert t["parts"]["year"]["mean"] == 2024.25 and t["parts"]["month"]["max"] == 2.0
    assert prof["target"]["kind"] == "categorical" and prof["target"]["top"] == {"1": 0.6, "0": 0.4}


def test_constant_values_make_one_bin():
    df = pd.DataFrame({"x": [5.0] * 20 + [1.0], "k": [2.0] * 21})
    schema = Schema([ColumnSpec("x", "numeric", "float64"), ColumnSpec("k", "numeric", "float64")])
    prof = profile_frame(df, schema)
    hist = prof["columns"]["x"]["histogram"]
    assert hist["edges"] == [1.0, 5.0] and hist["fractions"] == [1.0]  # deciles 0.1..1.0 all fall on 5
    assert prof["columns"]["k"]["histogram"] == {"edges": [2.0, 2.0], "fractions": [1.0]}
    assert prof["columns"]["k"]["std"] == 0.0
    assert prof["target"] is None


def test_regression_target_profile():
    df = pd.DataFrame({"x": [1, 2, 3, 4], "y": [0.5, 1.5, 2.5, 3.5]})
    prof = profile_frame(df, infer_schema(df, "y"))
    assert prof["target"]["kind"] == "numeric" and prof["target"]["mean"] == 2.0


def test_fingerprint_sensitivity(frame):
    fp = fingerprint(frame)
    assert len(fp) == 64 and int(fp, 16) >= 0
    assert fingerprint(frame.copy()) == fp
    assert fingerprint(frame.set_axis(range(10, 15))) == fp  # index is not content
    changed = frame.copy()
    changed.loc[0, "x"] = 1.5
    assert fingerprint(changed) != fp
    assert fingerprint(frame.rename(columns={"x": "z"})) != fp
    assert fingerprint(frame.astype({"y": "float64"})) != fp
    assert fingerprint(frame.iloc[::-1]) != fp


def test_fingerprint_stable_across_processes(frame):
    code = (
        "import pandas as pd, numpy as np; from fulcrum.data import fingerprint;"
        "print(fingerprint(pd.DataFrame({'x': [1.0, 2.0, np.nan], 'c': ['a', None, 'b']})))"
    )
    here = fingerprint(pd.DataFrame({"x": [1.0, 2.0, np.nan], "c": ["a", None, "b"]}))
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == here
