"""The GPU path: bf16 autocast, pinned memory and non-blocking copies in the Trainer, CUDA in ONNX Runtime.
The CUDA tests run only where a CUDA device is (marker gpu); the CPU checks say the path stays off on CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fulcrum.config import TrainConfig
from fulcrum.models import MLP
from fulcrum.training import Trainer
from fulcrum.training._trainer import _to_device, autocast_dtype

CUDA = torch.cuda.is_available()


def _data(n=256, d=6):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, n)
    X = (rng.normal(size=(n, d)) + y[:, None] * 1.5).astype(np.float32)
    return (X[:200], y[:200]), (X[200:], y[200:])


def test_cpu_keeps_full_precision_and_plain_copies():
    cpu = torch.device("cpu")
    assert autocast_dtype(cpu) is None
    t = _to_device(np.ones((2, 3), np.float32), torch.float32, cpu)
    assert t.device == cpu and not t.is_pinned()


def test_onnx_runtime_puts_cuda_first_only_when_this_build_has_it():
    import onnxruntime as ort

    from fulcrum.runtime._engines import default_providers

    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    assert default_providers() == (["CUDAExecutionProvider"] if has_cuda else []) + ["CPUExecutionProvider"]


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_cuda_training_uses_bf16_autocast_where_supported_and_learns():
    dev = torch.device("cuda")
    assert autocast_dtype(dev) == (torch.bfloat16 if torch.cuda.is_bf16_supported() else None)
    t = _to_device(np.ones((2, 3), np.float32), torch.float32, dev)
    assert t.is_cuda
    train, val = _data()
    cfg = TrainConfig(epochs=15, batch_size=32, lr=1e-2, hidden_sizes=(32,), progress=False, device="cuda")
    model = MLP(6, 3, cfg.hidden_sizes, 0.0)
    seen = []
    model.register_forward_pre_hook(lambda m, i: seen.append(torch.is_autocast_enabled("cuda")))
    res = Trainer(cfg).fit(model, train, val, loss_fn=nn.CrossEntropyLoss(), target_dtype=torch.long,
                           metric_fn=lambda o, y: {"accuracy": float((o.argmax(1) == y).float().mean())})
    assert res.history[-1]["val_accuracy"] > 0.8
    assert seen and all(seen) == torch.cuda.is_bf16_supported()  # every forward ran under bf16 autocast
    assert next(model.parameters()).dtype == torch.float32  # weights stay fp32; autocast computes in bf16


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_onnx_predictor_runs_on_cuda_when_onnxruntime_gpu_is_installed(tmp_path):
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime without the CUDA execution provider (install onnxruntime-gpu)")
    import fulcrum

    pkg = fulcrum.train("builtin:iris", model="linear", progress=False, registry=str(tmp_path / "reg"))
    pred = fulcrum.load(pkg.ref, registry=str(tmp_path / "reg"))
    assert pred._onnx.session.get_providers()[0] == "CUDAExecutionProvider"
