"""bench_text.py --cv: every row is predicted once by both pipelines, each trained on the other folds, and the
summary is made of those per-row results; the baseline's fold predictions are reused from its cache."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLD = re.compile(r"^\s+(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([+-][\d.]+)\s+(\d+)\s+(\d+)\s+(\w+) .*C=([\d.]+)( \(cached\))?")


def _run(home: Path) -> str:
    env = {**os.environ, "FULCRUM_HOME": str(home)}
    env.pop("FULCRUM_CACHE_DIR", None)
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_text.py"), "--sections", "quality",
                          "--datasets", "tweets", "--cap", "60", "--cv", "3"],
                         capture_output=True, text=True, env=env, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    home = tmp_path_factory.mktemp("bench-text-home")
    return _run(home), _run(home)


@pytest.mark.timeout(1200)  # two runs of the benchmark in the fixture; slow on a loaded machine
def test_cv_predicts_every_row_once_by_both_and_sums_them(runs):
    out = runs[0]
    folds = [m.groups() for m in map(FOLD.match, out.splitlines()) if m]
    assert [(int(r), int(f)) for r, f, *_ in folds] == [(0, 0), (0, 1), (0, 2)]
    rows = [int(g[2]) for g in folds]
    assert rows == [20, 20, 20]  # the 60 rows, each in one held-out fold
    acc_f = sum(float(g[3]) * n for g, n in zip(folds, rows)) / 60
    acc_b = sum(float(g[4]) * n for g, n in zip(folds, rows)) / 60
    total = re.search(r"accuracy over all rows and repeats: fulcrum ([\d.]+), baseline ([\d.]+)", out)
    assert total and float(total[1]) == pytest.approx(acc_f, abs=2e-4) and float(total[2]) == pytest.approx(acc_b, abs=2e-4)
    only = re.search(r"only Fulcrum right (\d+), only baseline right (\d+), exact McNemar p = ([\d.]+)", out)
    assert only and (int(only[1]), int(only[2])) == (sum(int(g[6]) for g in folds), sum(int(g[7]) for g in folds))
    assert 0 <= float(only[3]) <= 1
    diff = re.search(r"fulcrum - baseline: ([+-][\d.]+) \(95% CI ([+-][\d.]+) to ([+-][\d.]+), paired bootstrap over the 60 rows\)", out)
    assert diff and float(diff[1]) == pytest.approx(acc_f - acc_b, abs=3e-4) and float(diff[2]) <= float(diff[1]) <= float(diff[3])
    assert all(g[10] is None for g in folds)  # first run: the baseline was trained


@pytest.mark.timeout(1200)
def test_second_run_reads_the_baselines_fold_predictions_from_its_cache(runs):
    first, second = ([m.groups() for m in map(FOLD.match, out.splitlines()) if m] for out in runs)
    assert all(g[10] == " (cached)" for g in second)
    assert [(g[4], g[9]) for g in first] == [(g[4], g[9]) for g in second]  # same accuracy, same C
    assert [g[3] for g in first] == [g[3] for g in second]  # and Fulcrum's side is deterministic
