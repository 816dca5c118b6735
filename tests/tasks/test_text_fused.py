"""The packaged MiniLM graph carries ONNX Runtime's fused encoder (what makes batch-1 serving and the int8
variant fast), still runs with plain onnxruntime + onnxruntime-extensions, and its int8 variant agrees with
it on real texts."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnxruntime_extensions import get_library_path
from text_fixtures import bbc_small, text_cache_dir  # noqa: F401  (fixtures)

from fulcrum.data import load_builtin
from fulcrum.tasks.text import TextTask

FAST = {"target": "label", "max_length": 32, "progress": False, "measure_inference": False}  # as test_text_task (shared cache)


def plain_session(model_bytes: bytes) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.register_custom_ops_library(get_library_path())
    so.intra_op_num_threads = 1
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


def one_at_a_time(sess: ort.InferenceSession, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Batch 1, as the speed target is measured: labels (N,) and probabilities (N, K)."""
    labels, probs = [], []
    for t in texts:
        lab, p = sess.run(["label", "probabilities"], {"text": np.asarray([[t]], dtype=object)})
        labels.append(lab[0])
        probs.append(p[0])
    return np.asarray(labels), np.stack(probs)


@pytest.fixture(scope="module")
def package(bbc_small, text_cache_dir, tmp_path_factory):
    from fulcrum.artifact import ModelPackage, write_package

    trained = TextTask().fit(bbc_small, {**FAST, "model": "minilm"}, source="dataframe")
    path = write_package(tmp_path_factory.mktemp("pkg") / "news", {**trained.manifest, "name": "news"}, trained.files)
    return ModelPackage.load(path), trained


@pytest.fixture(scope="module")
def real_texts(bbc_small):
    tweets = load_builtin("tweets")["text"].sample(60, random_state=3).tolist()
    return list(bbc_small["text"][:60]) + tweets


def test_packaged_graph_holds_the_fused_encoder(package):
    _, trained = package
    graph = onnx.load_from_string(trained.files["model.onnx"])
    ops = Counter(n.op_type for n in graph.graph.node)
    layers = trained.manifest["model"]["encoder"]["layers"]
    # one fused op per block instead of ~20 MatMul/Reshape/Transpose/Softmax/Erf nodes
    assert ops["EmbedLayerNormalization"] == 1 and ops["Attention"] == layers and ops["BiasGelu"] == layers
    # residuals as Sum + LayerNormalization (faster than ORT's CPU SkipLayerNormalization at batch 1)
    assert ops["SkipLayerNormalization"] == 0 and ops["Sum"] == 2 * layers
    assert ops["Softmax"] == 1 and ops["Erf"] == 0  # only the head's softmax is left outside the fused ops
    assert {o.domain for o in graph.opset_import} >= {"com.microsoft", "ai.onnx.contrib"}
    # still the model it was trained as: the recorded parity against the torch reference, and plain onnxruntime
    assert trained.manifest["onnx"]["parity_max_abs_diff"] < 1e-4
    test = trained.test_frame
    labels, _ = one_at_a_time(plain_session(trained.files["model.onnx"]), test["text"].tolist())
    assert np.mean(labels == test["label"].astype(str).to_numpy()) == pytest.approx(
        trained.manifest["metrics"]["primary"]["value"], abs=1e-12)


def test_int8_variant_quantizes_the_fused_encoder_and_agrees_with_fp32(package, real_texts):
    pkg, trained = package
    kinds, _ = TextTask().variant_kinds(pkg.manifest)
    params = next(k for k in kinds if k.kind == "int8-dynamic").params
    int8, _, notes = TextTask().build_variant("int8-dynamic", params, pkg, None)
    graph = onnx.load_from_string(int8)
    ops = Counter(n.op_type for n in graph.graph.node)
    layers = trained.manifest["model"]["encoder"]["layers"]
    assert ops["QAttention"] == layers and ops["Attention"] == 0 and ops["MatMulInteger"] >= 2 * layers
    # signed int8 weights (what the VNNI / AMX integer kernels take), 7-bit range (no saturation on AVX2)
    qweights = [i for i in graph.graph.initializer if i.name.endswith("_quantized") and i.dims and len(i.dims) == 2]
    assert qweights and all(i.data_type == onnx.TensorProto.INT8 for i in qweights)
    w = onnx.numpy_helper.to_array(max(qweights, key=lambda i: np.prod(i.dims)))
    assert -64 <= w.min() and w.max() <= 64
    assert notes["quantization"]["weight_type"] == "QInt8"

    lab32, p32 = one_at_a_time(plain_session(trained.files["model.onnx"]), real_texts)
    lab8, p8 = one_at_a_time(plain_session(int8), real_texts)
    dp = np.abs(p8 - p32).max(axis=1)
    # stated tolerance, batch 1, 120 real news articles and tweets: probabilities within 0.05 on average, 0.12 for
    # 95% of the texts and 0.25 at worst (one text near a decision boundary was seen to move 0.16 in the full suite,
    # where the small model's head differs from run to run), and the same label for at least 95% of the texts
    assert dp.mean() < 0.05 and np.quantile(dp, 0.95) < 0.12 and dp.max() < 0.25, (
        dp.mean(), np.quantile(dp, 0.95), dp.max())
    assert np.mean(lab8 == lab32) >= 0.95
