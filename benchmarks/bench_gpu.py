"""The GPU script of issue 12: run this once on a machine with a CUDA device (it also runs, and says so, on CPU).

1. The GPU-marked tests first (``pytest -m gpu tests/ -q``), when CUDA is present; their result line is printed.
2. Training samples/s through the project's ``Trainer`` (so on CUDA: bf16 autocast where supported, pinned
   memory, non-blocking copies -- the trainer's own path, no separate loop), on CPU and on CUDA with the same
   data, epochs and batch size: the tabular MLP (``fulcrum.models.MLP``) and the image CNN
   (``fulcrum.tasks.image._cnn``). Each device gets one untimed 1-epoch warm-up fit (CUDA context, cuDNN
   autotune) before the timed fit; samples/s = training rows x epochs / wall time of ``fit`` (its per-epoch
   validation included); the final validation accuracy of each is printed beside it.
3. Inference of each model's exported ONNX graph (the MLP's InferenceHead through the tabular exporter, the
   CNN with BatchNorm folded through the image exporter) at batch 1 and 256 with ONNX Runtime's
   CPUExecutionProvider and, when the installed onnxruntime has it, CUDAExecutionProvider (inputs from host
   memory, as the server feeds them); torch eager on the same devices for reference. Warm-up runs first;
   p50 / p99 latency per call and rows/s (batch / mean latency).

Printed with the figures: the device name, torch / onnxruntime versions, CPU count and load average.
Where there is no CUDA device or no CUDA execution provider, that part is reported as skipped, with the reason.

    .venv/bin/python benchmarks/bench_gpu.py [--quick] [--json OUT]

``--quick``: tiny sizes, a CPU smoke run of the whole script in seconds (tests/test_bench_gpu.py runs it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

FULL = {"mlp_rows": 100_000, "mlp_features": 32, "mlp_hidden": (256, 128), "mlp_batch": 256,
        "cnn_rows": 4096, "cnn_size": 32, "cnn_width": 32, "cnn_depth": 2, "cnn_stages": 3, "cnn_batch": 128,
        "epochs": 3, "batches": (1, 256), "warmup": 20, "iters": 200}
QUICK = {"mlp_rows": 600, "mlp_features": 8, "mlp_hidden": (16,), "mlp_batch": 64,
         "cnn_rows": 96, "cnn_size": 16, "cnn_width": 4, "cnn_depth": 1, "cnn_stages": 2, "cnn_batch": 32,
         "epochs": 1, "batches": (1, 256), "warmup": 3, "iters": 15}
CLASSES = 4


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# ---------------------------------------------------------------------------------------------- data


def tabular_data(rows: int, features: int, seed: int = 0) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, rows)
    centers = rng.normal(scale=0.8, size=(CLASSES, features))
    X = (rng.normal(size=(rows, features)) + centers[y]).astype(np.float32)
    cut = int(rows * 0.9)
    return (X[:cut], y[:cut]), (X[cut:], y[cut:])


def image_data(rows: int, size: int, seed: int = 0) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """RGB pixels in [0, 1]; each class is a brighter channel or a brighter top half (learnable, not trivial)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, rows)
    X = rng.uniform(0.0, 0.7, size=(rows, 3, size, size)).astype(np.float32)
    for c in range(3):
        X[y == c, c] += 0.3
    X[y == 3, :, : size // 2] += 0.3
    cut = int(rows * 0.9)
    return (X[:cut], y[:cut]), (X[cut:], y[cut:])


# ---------------------------------------------------------------------------------------------- training


def _accuracy(out: Any, y: Any) -> dict[str, float]:
    return {"accuracy": float((out.argmax(1) == y).float().mean())}


def make_mlp(p: dict[str, Any]) -> Any:
    from fulcrum.models import MLP

    return MLP(p["mlp_features"], CLASSES, p["mlp_hidden"], 0.1)


def make_cnn(p: dict[str, Any], mean: list[float], std: list[float]) -> Any:
    from fulcrum.tasks.image._cnn import build_cnn

    return build_cnn(3, CLASSES, p["cnn_width"], p["cnn_depth"], p["cnn_stages"], mean, std)


def train_once(model_name: str, device: str, p: dict[str, Any], data: Any, epochs: int) -> tuple[Any, dict[str, Any]]:
    """One fit through the shared Trainer; returns (the trained torch module, its row of figures)."""
    import torch
    from torch import nn

    from fulcrum.config import TrainConfig
    from fulcrum.tasks.image._cnn import LogitsOnly
    from fulcrum.training import Trainer
    from fulcrum.training._trainer import autocast_dtype

    train, val = data
    torch.manual_seed(0)
    if model_name == "mlp":
        model = make_mlp(p)
        fit_module, bs = model, p["mlp_batch"]
    else:
        mean = train[0].mean(axis=(0, 2, 3)).tolist()
        std = (train[0].std(axis=(0, 2, 3)) + 1e-6).tolist()
        model = make_cnn(p, mean, std)
        fit_module, bs = LogitsOnly(model), p["cnn_batch"]
    cfg = TrainConfig(epochs=epochs, batch_size=bs, lr=1e-3, early_stopping=False, lr_schedule="constant",
                      optimizer="adamw", progress=False, device=device)
    trainer = Trainer(cfg, monitor="val_accuracy")
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    res = trainer.fit(fit_module, train, val, loss_fn=nn.CrossEntropyLoss(), metric_fn=_accuracy,
                      target_dtype=torch.long)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    amp = autocast_dtype(trainer.device)
    row = {"kind": "train", "model": model_name, "device": device, "rows": int(len(train[0])), "epochs": epochs,
           "batch_size": bs, "wall_s": round(wall, 4), "samples_per_s": round(len(train[0]) * epochs / wall, 1),
           "val_accuracy": round(res.history[-1].get("val_accuracy", float("nan")), 4),
           "precision": "bf16 autocast" if amp is not None else "fp32"}
    return model, row


def bench_training(model_name: str, device: str, p: dict[str, Any], data: Any) -> tuple[Any, dict[str, Any]]:
    train_once(model_name, device, p, data, 1)  # warm-up, not counted
    return train_once(model_name, device, p, data, p["epochs"])


# ---------------------------------------------------------------------------------------------- inference


def export_mlp(model: Any, features: int) -> bytes:
    """The tabular exporter's graph of the MLP's InferenceHead (softmax probabilities), batch dimension dynamic."""
    from fulcrum.models._mlp import InferenceHead
    from fulcrum.tasks.tabular._export import DEFAULT_OPSET, _torch_graph

    adapter = types.SimpleNamespace(torch_module=lambda: InferenceHead(model.cpu().eval(), "classification").eval())
    graph, _ = _torch_graph(adapter, "classification", features, DEFAULT_OPSET)
    return graph.SerializeToString()


def export_cnn_graph(model: Any, size: int) -> tuple[bytes, Any]:
    """The image exporter's CNN graph (BatchNorm folded, as in a package): pixels -> logits, features."""
    from fulcrum.tasks.image._cnn import fused_copy
    from fulcrum.tasks.image._graph import export_cnn

    fused = fused_copy(model.cpu())
    return export_cnn(fused, size, 3).SerializeToString(), fused


def _timed(fn: Any, warmup: int, iters: int, batch: int) -> dict[str, Any]:
    for _ in range(warmup):
        fn()
    lat = np.empty(iters)
    for i in range(iters):
        t0 = time.perf_counter()
        fn()
        lat[i] = time.perf_counter() - t0
    return {"p50_ms": round(float(np.percentile(lat, 50)) * 1e3, 4), "p99_ms": round(float(np.percentile(lat, 99)) * 1e3, 4),
            "rows_per_s": round(batch / float(lat.mean()), 1), "iters": iters}


def _iters(p: dict[str, Any], batch: int) -> int:
    """Timed calls: ``iters`` at batch 1, a quarter of them (at least 10) at larger batches."""
    return p["iters"] if batch == 1 else max(10, p["iters"] // 4)


def bench_ort(model_name: str, graph: bytes, provider: str, x_by_batch: dict[int, np.ndarray], p: dict[str, Any]) -> list[dict[str, Any]]:
    import onnxruntime as ort

    providers = [provider] + (["CPUExecutionProvider"] if provider != "CPUExecutionProvider" else [])
    sess = ort.InferenceSession(graph, providers=providers)
    used = sess.get_providers()[0]
    if used != provider:
        raise RuntimeError(f"onnxruntime fell back to {used} when {provider} was asked for")
    name = sess.get_inputs()[0].name
    rows = []
    for b, x in x_by_batch.items():
        r = _timed(lambda: sess.run(None, {name: x}), p["warmup"], _iters(p, b), b)
        rows.append({"kind": "infer", "model": model_name, "engine": f"onnxruntime {provider}", "batch": b, **r})
    return rows


def bench_eager(model_name: str, module: Any, device: str, x_by_batch: dict[int, np.ndarray], p: dict[str, Any]) -> list[dict[str, Any]]:
    """torch eager in fp32 on ``device``, input copied from host each call (like ONNX Runtime is fed)."""
    import torch

    dev = torch.device(device)
    module = module.to(dev).eval()
    rows = []
    for b, x in x_by_batch.items():
        xt = torch.from_numpy(x)

        def call() -> None:
            with torch.inference_mode():
                module(xt.to(dev, non_blocking=False))
            if dev.type == "cuda":
                torch.cuda.synchronize()

        r = _timed(call, p["warmup"], _iters(p, b), b)
        rows.append({"kind": "infer", "model": model_name, "engine": f"torch eager {device}", "batch": b, **r})
    module.cpu()
    return rows


# ---------------------------------------------------------------------------------------------- the run


def gpu_tests() -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "gpu", "tests/", "-q", "-p", "no:cacheprovider"],
                          cwd=ROOT, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    return {"ran": True, "returncode": proc.returncode, "result": lines[-1] if lines else proc.stderr.strip()[-300:]}


def environment() -> dict[str, Any]:
    import onnxruntime as ort
    import torch

    cuda = torch.cuda.is_available()
    env = {"python": platform.python_version(), "torch": torch.__version__, "torch_cuda_build": torch.version.cuda,
           "onnxruntime": ort.__version__, "ort_providers": ort.get_available_providers(), "cpu_count": os.cpu_count(),
           "torch_threads": torch.get_num_threads(), "cuda": cuda,
           "device": torch.cuda.get_device_name(0) if cuda else f"CPU only ({platform.processor() or platform.machine()})"}
    if cuda:
        env["bf16_supported"] = torch.cuda.is_bf16_supported()
    return env


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a CPU smoke run in seconds")
    ap.add_argument("--json", metavar="OUT", help="also write every figure and skip reason to this JSON file")
    args = ap.parse_args(argv)
    p = QUICK if args.quick else FULL
    import onnxruntime as ort
    import torch

    env = environment()
    out: dict[str, Any] = {"quick": bool(args.quick), "env": env, "load_before": _load(), "rows": [], "skipped": {}}
    print(f"device: {env['device']}   torch {env['torch']} (CUDA build: {env['torch_cuda_build']})   "
          f"onnxruntime {env['onnxruntime']} providers {env['ort_providers']}")
    print(f"cpus: {env['cpu_count']} (torch threads {env['torch_threads']})   load average: {out['load_before']}"
          f"   sizes: {'--quick' if args.quick else 'full'}")

    cuda = env["cuda"]
    if not cuda:
        reason = "no CUDA device: torch.cuda.is_available() is False" + (
            " (this torch is a CPU-only build)" if torch.version.cuda is None else "")
        out["skipped"]["gpu"] = reason
        out["skipped"]["gpu_tests"] = reason
        print(f"GPU part: skipped -- {reason}; only the CPU rows below")
    else:
        t = gpu_tests()
        out["gpu_tests"] = t
        print(f"GPU tests (pytest -m gpu tests/ -q): {t['result']}  [exit {t['returncode']}]")
    ort_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if not ort_cuda:
        out["skipped"]["ort_cuda"] = (f"the installed onnxruntime {ort.__version__} has no CUDAExecutionProvider; on a "
                                      "GPU machine: pip uninstall -y onnxruntime && pip install onnxruntime-gpu")
        print(f"onnxruntime CUDA: skipped -- {out['skipped']['ort_cuda']}")
    elif not cuda:
        out["skipped"]["ort_cuda"] = "onnxruntime has CUDAExecutionProvider but there is no CUDA device"
        print(f"onnxruntime CUDA: skipped -- {out['skipped']['ort_cuda']}")
    devices = ["cpu"] + (["cuda"] if cuda else [])

    def show(row: dict[str, Any]) -> None:
        out["rows"].append(row)
        if row["kind"] == "train":
            print(f"train  {row['model']:<4} {row['device']:<5} rows={row['rows']} epochs={row['epochs']} "
                  f"batch={row['batch_size']} {row['precision']:<13} wall={row['wall_s']:.3f}s "
                  f"samples/s={row['samples_per_s']:.0f}  val_acc={row['val_accuracy']:.3f}")
        else:
            print(f"infer  {row['model']:<4} {row['engine']:<40} batch={row['batch']:<4} p50={row['p50_ms']:.3f}ms "
                  f"p99={row['p99_ms']:.3f}ms rows/s={row['rows_per_s']:.0f}")

    rng = np.random.default_rng(1)
    for name in ("mlp", "cnn"):
        data = (tabular_data(p["mlp_rows"], p["mlp_features"]) if name == "mlp"
                else image_data(p["cnn_rows"], p["cnn_size"]))
        trained = None
        for dev in devices:
            model, row = bench_training(name, dev, p, data)
            show(row)
            trained = model if trained is None else trained  # the CPU model is the one exported
        if name == "mlp":
            graph = export_mlp(trained, p["mlp_features"])
            from fulcrum.models._mlp import InferenceHead

            eager = InferenceHead(trained.cpu().eval(), "classification")
            xs = {b: rng.normal(size=(b, p["mlp_features"])).astype(np.float32) for b in p["batches"]}
        else:
            graph, eager = export_cnn_graph(trained, p["cnn_size"])
            xs = {b: rng.uniform(0, 1, size=(b, 3, p["cnn_size"], p["cnn_size"])).astype(np.float32)
                  for b in p["batches"]}
        for provider in ["CPUExecutionProvider"] + (["CUDAExecutionProvider"] if ort_cuda and cuda else []):
            for row in bench_ort(name, graph, provider, xs, p):
                show(row)
        for dev in devices:
            for row in bench_eager(name, eager, dev, xs, p):
                show(row)

    # side-by-side ratios (same run): GPU / CPU
    def find(**kw: Any) -> dict[str, Any] | None:
        return next((r for r in out["rows"] if all(r.get(k) == v for k, v in kw.items())), None)

    ratios = {}
    for name in ("mlp", "cnn"):
        c, g = find(kind="train", model=name, device="cpu"), find(kind="train", model=name, device="cuda")
        if c and g:
            ratios[f"train_{name}_cuda_over_cpu"] = round(g["samples_per_s"] / c["samples_per_s"], 2)
        for b in p["batches"]:
            c = find(kind="infer", model=name, engine="onnxruntime CPUExecutionProvider", batch=b)
            g = find(kind="infer", model=name, engine="onnxruntime CUDAExecutionProvider", batch=b)
            if c and g:
                ratios[f"ort_{name}_b{b}_cuda_over_cpu"] = round(g["rows_per_s"] / c["rows_per_s"], 2)
    out["ratios"] = ratios
    for k, v in ratios.items():
        print(f"ratio  {k} = {v}x (rows/s)")
    out["load_after"] = _load()
    print(f"load average after: {out['load_after']}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
