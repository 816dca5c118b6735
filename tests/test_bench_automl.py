"""The AutoML benchmark's scoring and noise statistics (benchmarks/bench_automl.py, peers/run_peer.py).

The peers themselves (AutoGluon, FLAML) live in .venv-peers and are not run here; these tests pin
what every system's numbers go through: the score and the paired bootstrap of the goal checks.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import r2_score

ROOT = Path(__file__).resolve().parents[1]


def _module(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def bench() -> Any:
    return _module("bench_automl", ROOT / "benchmarks" / "bench_automl.py")


def _dataset(bench: Any, task: str, y: list[Any]) -> Any:
    return bench.Dataset("t", "y", task, "test", Path("train.csv"), Path("test.csv"), len(y) * 5, len(y) * 4, len(y),
                         np.asarray([str(v) for v in y], dtype=object) if task == "classification"
                         else np.asarray(y, dtype=np.float64))


def test_score_compares_labels_as_text_and_regression_is_r2(bench: Any) -> None:
    score = bench.run_peer.score
    assert score("classification", ["1", "0", "1", "1"], [1, 0, 0, 1]) == 0.75  # ints from one system, text from the CSV
    y, p = [3.0, 1.0, 4.0, 1.5, 9.0], [2.5, 1.2, 4.4, 1.0, 8.0]
    assert score("regression", y, p) == pytest.approx(r2_score(y, p))


def test_paired_bootstrap_separates_a_real_gap_and_not_identical_predictions(bench: Any) -> None:
    y = ["a", "b"] * 20
    ds = _dataset(bench, "classification", y)
    right = {"predictions": list(y)}
    wrong = {"predictions": ["b" if i < 12 and v == "a" else v for i, v in enumerate(y)]}  # 6 of 40 wrong
    res = {"t": {"x": [right, right], "y": [wrong, wrong], "z": [right, right]}}
    d = bench.paired_diff([ds], res, "x", "y")
    assert d["mean"] == pytest.approx(6 / 40)
    assert 0 < d["lo"] < d["mean"] < d["hi"]
    same = bench.paired_diff([ds], res, "x", "z")
    assert same["mean"] == same["lo"] == same["hi"] == 0


def test_paired_bootstrap_averages_seeds_and_skips_failed_runs(bench: Any) -> None:
    y = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    ds = _dataset(bench, "regression", y)
    exact = {"predictions": list(y)}
    off = {"predictions": [v + 1.0 for v in y]}
    res = {"t": {"a": [exact, off, {"error": "crashed"}], "b": [exact]}}
    d = bench.paired_diff([ds], res, "a", "b")
    assert d["mean"] == pytest.approx((r2_score(y, off["predictions"]) - 1.0) / 2)
    assert bench.paired_diff([ds], {"t": {"a": [{"skipped": "no venv"}], "b": [exact]}}, "a", "b") is None
