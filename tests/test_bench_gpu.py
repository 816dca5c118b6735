"""benchmarks/bench_gpu.py (issue 12's one GPU script) as a user runs it: ``--quick`` on CPU, in a subprocess.

CUDA is hidden from the subprocess (CUDA_VISIBLE_DEVICES=""), so on any machine it must report the CPU rows and
say that the GPU part was skipped and why. No timing is asserted, only that each figure is there and positive.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], dict]:
    tmp = tmp_path_factory.mktemp("bench_gpu")
    out = tmp / "gpu.json"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "FULCRUM_HOME": str(tmp / "home")}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py"), "--quick", "--json", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, json.loads(out.read_text())


def test_quick_cpu_run_reports_training_and_inference_rows_for_both_models(quick_run):
    proc, res = quick_run
    train = {(r["model"], r["device"]): r for r in res["rows"] if r["kind"] == "train"}
    assert set(train) == {("mlp", "cpu"), ("cnn", "cpu")}
    for r in train.values():
        assert r["samples_per_s"] > 0 and r["precision"] == "fp32" and r["epochs"] >= 1
    infer = {(r["model"], r["engine"], r["batch"]) for r in res["rows"] if r["kind"] == "infer"}
    for model in ("mlp", "cnn"):
        for batch in (1, 256):
            assert (model, "onnxruntime CPUExecutionProvider", batch) in infer
            assert (model, "torch eager cpu", batch) in infer
    for r in res["rows"]:
        if r["kind"] == "infer":
            assert 0 < r["p50_ms"] <= r["p99_ms"] and r["rows_per_s"] > 0
    assert "train  mlp  cpu" in proc.stdout and "train  cnn  cpu" in proc.stdout
    assert "onnxruntime CPUExecutionProvider" in proc.stdout
    assert "torch" in res["env"] and "onnxruntime" in res["env"] and res["load_before"]
    assert "load average" in proc.stdout


def test_quick_cpu_run_says_the_gpu_part_was_skipped_and_why(quick_run):
    proc, res = quick_run
    assert res["env"]["cuda"] is False
    assert "torch.cuda.is_available() is False" in res["skipped"]["gpu"]
    assert "gpu_tests" in res["skipped"] and "gpu_tests" not in res
    assert "GPU part: skipped -- no CUDA device" in proc.stdout
    # no CUDA row was timed
    assert not [r for r in res["rows"] if "cuda" in (r.get("device", "") + r.get("engine", "")).lower()]
    # the ONNX Runtime CUDA provider: skipped with its own reason (no EP in this build, or no device)
    assert "onnxruntime CUDA: skipped --" in proc.stdout
    assert "CUDAExecutionProvider" in res["skipped"]["ort_cuda"] or "no CUDA device" in res["skipped"]["ort_cuda"]
