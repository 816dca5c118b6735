"""TextTask end to end on small real data: fit -> a package-ready Trained whose model.onnx runs with plain
onnxruntime + onnxruntime-extensions and reproduces the recorded test metric; contract answers; variants."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
from onnxruntime_extensions import get_library_path
from text_fixtures import bbc_small, text_cache_dir  # noqa: F401  (fixtures)

from fulcrum.tasks.text import TextTask
from fulcrum.tasks.text._cache import EmbeddingCache

FAST = {"target": "label", "max_length": 32, "progress": False, "measure_inference": False}


def plain_session(model_bytes: bytes) -> ort.InferenceSession:
    """What a user runs: onnxruntime plus the extensions' operators, nothing of Fulcrum."""
    so = ort.SessionOptions()
    so.register_custom_ops_library(get_library_path())
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


def graph_accuracy(trained) -> float:
    m = trained.manifest
    test = trained.test_frame
    sess = plain_session(trained.files["model.onnx"])
    texts = np.asarray(test[m["task"]["text_column"]].tolist(), dtype=object).reshape(-1, 1)
    label, proba, ood = sess.run(["label", "probabilities", "ood_score"], {"text": texts})
    assert proba.shape == (len(test), len(m["task"]["labels"])) and ood.shape == (len(test),)
    return float(np.mean(label == test[m["task"]["target"]].astype(str).to_numpy()))


@pytest.fixture(scope="module")
def trained_auto(bbc_small, text_cache_dir):
    notes: list[str] = []
    trained = TextTask().fit(bbc_small, FAST, source="builtin:bbc_news", log=notes.append)
    return trained, notes


def test_fit_produces_a_package_ready_graph_that_reproduces_its_metric(trained_auto):
    trained, notes = trained_auto
    m = trained.manifest
    assert m["task"]["workload"] == "text" and m["task"]["text_column"] == "text"
    assert m["model"]["family"] in ("ngram", "minilm", "ensemble")
    assert set(m["metrics"]["candidates"]) == {"ngram", "minilm", "ensemble"}
    assert any(n.startswith("selected: ") for n in notes)
    assert {"model.onnx", "profile.json"} <= set(trained.files)
    assert graph_accuracy(trained) == pytest.approx(m["metrics"]["primary"]["value"], abs=1e-12)
    assert m["metrics"]["primary"]["name"] == "accuracy" and m["metrics"]["primary"]["value"] > 0.7
    assert m["onnx"]["parity_max_abs_diff"] < 1e-4
    profile = json.loads(trained.files["profile.json"])
    assert profile["text"]["chars"]["p50"] > 100 and profile["vocabulary"] and profile["ood"]["thresholds"]["p95"] >= 0
    assert m["outputs"][2]["kind"] == "ood_score" and "p99" in m["outputs"][2]["thresholds"]
    assert trained.training_flops > 0


@pytest.mark.parametrize("family", ["minilm", "ensemble"])
def test_each_family_exports_one_graph_from_raw_strings(bbc_small, text_cache_dir, family):
    trained = TextTask().fit(bbc_small, {**FAST, "model": family})
    m = trained.manifest
    assert m["model"]["family"] == family and m["model"]["encoder"]["fine_tuned"] is False
    assert graph_accuracy(trained) == pytest.approx(m["metrics"]["primary"]["value"], abs=1e-12)
    assert m["onnx"]["parity_max_abs_diff"] < 1e-4
    assert "weights.safetensors" in trained.files
    # out-of-scope texts score above the in-domain p99 threshold (centroid distance of the embeddings)
    sess = plain_session(trained.files["model.onnx"])
    off = ["Preheat the oven to 200C and grease a baking tin.", "ERROR 0x80070005: access denied writing a registry key"]
    ood = sess.run(["ood_score"], {"text": np.asarray(off, dtype=object).reshape(-1, 1)})[0]
    assert (ood > m["outputs"][2]["thresholds"]["p95"]).all()


def test_fine_tune_goes_through_the_shared_trainer(bbc_small, text_cache_dir, tmp_path):
    small = bbc_small.iloc[:60]
    trained = TextTask().fit(small, {**FAST, "model": "minilm", "fine_tune": True, "fine_tune_epochs": 1},
                             checkpoint_dir=tmp_path)
    m = trained.manifest
    assert m["model"]["encoder"]["fine_tuned"] is True
    history = json.loads(trained.files["history.json"])
    assert len(history) == 1 and "val_accuracy" in history[0] and history[0]["attempt"] == 1
    assert (tmp_path / "minilm-finetune" / "checkpoint.pt").is_file()  # the Trainer's atomic checkpoint
    assert graph_accuracy(trained) == pytest.approx(m["metrics"]["primary"]["value"], abs=1e-12)
    assert m["onnx"]["parity_max_abs_diff"] < 1e-4


def test_embeddings_are_cached_by_content(tmp_path):
    calls: list[list[str]] = []

    def compute(texts):
        calls.append(list(texts))
        return np.stack([np.full(4, len(t), np.float32) for t in texts])

    cache = EmbeddingCache("enc-a", compute, dim=4, root=tmp_path)
    first = cache.get(["aa", "b", "aa"])
    assert calls == [["aa", "b"]] and cache.last_new_ == 2 and first[:, 0].tolist() == [2, 1, 2]
    again = EmbeddingCache("enc-a", compute, dim=4, root=tmp_path).get(["b", "ccc"])  # a new process: from disk
    assert calls[-1] == ["ccc"] and again[:, 0].tolist() == [1, 3]
    # a torn shard is skipped (its texts are embedded again), never fatal
    from safetensors.numpy import load_file

    # the first call's shard holds "aa" and "b" (two rows; names can share a millisecond, so not by name)
    first = next(p for p in tmp_path.glob("*.safetensors") if len(load_file(str(p))["keys"]) == 2)
    first.write_bytes(b"not a safetensors file")
    EmbeddingCache("enc-a", compute, dim=4, root=tmp_path).get(["aa", "b", "ccc"])
    assert sorted(calls[-1]) == ["aa", "b"]


def test_contract_answers(trained_auto):
    trained, _ = trained_auto
    task, m = TextTask(), trained.manifest
    (field,) = task.request_schema(m)
    assert field.name == "text" and field.v2 == ("BYTES",) and field.limits["max_chars"] >= 10_000
    assert task.shorthand(m) == ("texts", "text")
    codec = task.input_codec(m, lambda name: json.loads(trained.files[name]))
    assert codec.encode_columns({"text": ["a news story"]})["text"].shape == (1, 1)
    flops, how = task.flops_per_prediction(m)
    assert flops > 0 and how
    kinds, why = task.variant_kinds(m)
    assert "onnx-fp32" in [k.kind for k in kinds] and "int8-static" in why


def test_minilm_flops_grow_with_text_length():
    task = TextTask()
    base = {"task": {"labels": ["a", "b"]}, "model": {"family": "minilm", "max_length": 256,
                                                       "encoder": {"layers": 6, "mean_tokens": 20}}}
    short, how = task.flops_per_prediction(base)
    long_ = task.flops_per_prediction({**base, "model": {**base["model"], "encoder": {"layers": 6, "mean_tokens": 80}}})[0]
    three = task.flops_per_prediction({**base, "model": {**base["model"], "encoder": {"layers": 3, "mean_tokens": 20}}})[0]
    assert 3.5 * short < long_ < 4.5 * short and 0.4 * short < three < 0.6 * short and "FlopCounterMode" in how


@pytest.fixture(scope="module")
def ensemble_package(bbc_small, text_cache_dir, tmp_path_factory):
    from fulcrum.artifact import ModelPackage, write_package

    trained = TextTask().fit(bbc_small, {**FAST, "model": "ensemble"}, source="dataframe")
    path = write_package(tmp_path_factory.mktemp("pkg") / "news", {**trained.manifest, "name": "news"}, trained.files)
    return ModelPackage.load(path), trained


def _variant_accuracy(model_bytes: bytes, trained) -> float:
    return graph_accuracy(type(trained)(trained.manifest, {"model.onnx": model_bytes}, test_frame=trained.test_frame))


def test_int8_variant_quantizes_the_encoder_only(ensemble_package):
    import onnx

    pkg, trained = ensemble_package
    kinds, _ = TextTask().variant_kinds(pkg.manifest)
    int8 = next(k for k in kinds if k.kind == "int8-dynamic")
    assert int8.params["per_channel"] and int8.params["reduce_range"] and int8.params["weight_type"] == "QInt8"
    model_bytes, _, notes = TextTask().build_variant("int8-dynamic", int8.params, pkg, None)
    graph = onnx.load_from_string(model_bytes)
    ops = [n.op_type for n in graph.graph.node]
    assert "DynamicQuantizeLinear" in ops or "MatMulInteger" in ops
    assert all(n.op_type == "MatMul" for n in graph.graph.node if n.name.startswith("ng/ngram/") and "MatMul" in n.op_type)
    assert len(model_bytes) < 0.7 * len(trained.files["model.onnx"])  # the word embeddings (47 MB) stay float
    assert _variant_accuracy(model_bytes, trained) >= trained.manifest["metrics"]["primary"]["value"] - 0.05


def test_ngram_fallback_and_distilled_student(ensemble_package, bbc_small):
    pkg, trained = ensemble_package
    task = TextTask()
    ng_bytes, _, notes = task.build_variant("ngram", {}, pkg, {"data": bbc_small})
    assert notes["family"] == "ngram" and _variant_accuracy(ng_bytes, trained) > 0.6
    student, _, notes = task.build_variant("distilled", {"layers": 2, "max_texts": 48, "epochs": 1}, pkg,
                                           {"data": bbc_small})
    assert notes["student_layers"] == 2 and notes["texts"] == 48
    assert len(student) < 0.8 * len(trained.files["model.onnx"])
    assert _variant_accuracy(student, trained) >= 0.0  # runs end to end from raw strings
    with pytest.raises(Exception, match="fingerprint mismatch"):
        task.build_variant("ngram", {}, pkg, {"data": bbc_small.iloc[:-1]})


def test_profile_has_the_monitor_column_layout(trained_auto):
    trained, _ = trained_auto
    col = json.loads(trained.files["profile.json"])["columns"]["text"]
    assert col["kind"] == "text" and col["count"] == trained.manifest["data"]["rows"]["train"]
    assert col["length"]["quantiles"]["p50"] > 100 and len(col["length"]["histogram"]["fractions"]) >= 1
    assert 0.0 < col["oov"]["mean"] < 1.0  # validation texts hold words the training split never had
    assert col["tokens"]["lowercase"] is True


def test_splits_are_re_created_like_the_run(ensemble_package, bbc_small):
    pkg, trained = ensemble_package
    train, val, test = TextTask().splits(pkg, bbc_small)
    assert test["text"].tolist() == trained.test_frame["text"].tolist()
    assert len(train) == trained.manifest["data"]["rows"]["train"] and len(val) == trained.manifest["data"]["rows"]["validation"]
    with pytest.raises(Exception, match="in-memory table"):
        TextTask().splits(pkg, None)


def test_native_engine_is_the_torch_reference(bbc_small, text_cache_dir, tmp_path):
    from fulcrum.artifact import ModelPackage, write_package
    from fulcrum.errors import ConfigError

    trained = TextTask().fit(bbc_small, {**FAST, "model": "minilm"})
    pkg = ModelPackage.load(write_package(tmp_path / "m", {**trained.manifest, "name": "m"}, trained.files))
    native = TextTask().native_predictor(pkg)
    frame = trained.test_frame.iloc[:12]
    p_native = native.output(frame)
    p_graph = plain_session(trained.files["model.onnx"]).run(
        ["probabilities"], {"text": np.asarray(frame["text"].tolist(), dtype=object).reshape(-1, 1)})[0]
    assert np.abs(p_native - p_graph).max() < 1e-4 and native.last_extra_ == ["label"]
    ng = TextTask().fit(bbc_small, {**FAST, "model": "ngram"})
    ng_pkg = ModelPackage.load(write_package(tmp_path / "n", {**ng.manifest, "name": "n"}, ng.files))
    with pytest.raises(ConfigError, match="no native engine"):
        TextTask().native_predictor(ng_pkg)


def test_example_trains_in_seconds_and_config_comes_from_options():
    task = TextTask()
    ex = task.example()
    assert ex.target == "label" and ex.options == {"model": "ngram"} and len(ex.data) == 200
    cfg = task.make_config({"target": "label", "fine_tune": True, "max_length": 64})
    assert cfg.fine_tune and cfg.tokens == 64
    with pytest.raises(Exception, match="Did you mean 'max_length'"):
        task.make_config({"max_lenght": 64})
    trained = task.fit(ex.data, {"target": ex.target, **ex.options, "progress": False})
    assert trained.manifest["model"]["family"] == "ngram" and trained.manifest["metrics"]["primary"]["value"] > 0.8
