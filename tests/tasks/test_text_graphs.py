"""The text graphs against their Python/torch references: tokenizer, n-gram, MiniLM, ensemble."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from text_fixtures import EDGE_TEXTS, bbc_small, labels_of, text_cache_dir  # noqa: F401  (fixtures)

from fulcrum.tasks.text._graph import (EncoderHead, ensemble_graph, export_encoder_head, minilm_graph, run_graph, session,
                                       tokenizer_nodes)
from fulcrum.tasks.text._minilm import MiniLM, encode, load_tokenizer, model_dir
from fulcrum.tasks.text._ngram import NgramModel

MAX_LEN = 64


@pytest.fixture(scope="module")
def vocab():
    return (model_dir() / "vocab.txt").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def encoder():
    return MiniLM.from_package()


@pytest.fixture(scope="module")
def ngram(bbc_small):
    labels, y = labels_of(bbc_small)
    return NgramModel(C=8.0).fit(list(bbc_small["text"][:120]), y[:120], len(labels)), labels


def _tokenizer_model(vocab: str, max_len: int) -> onnx.ModelProto:
    from onnx import TensorProto, helper

    nodes, inits = tokenizer_nodes(vocab, max_len)
    g = helper.make_graph(nodes, "tok", [helper.make_tensor_value_info("text", TensorProto.STRING, ["N", 1])],
                          [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["N", "T"]),
                           helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["N", "T"])],
                          initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.contrib", 1)])


def test_tokenizer_in_graph_matches_tokenizers(vocab, bbc_small):
    texts = EDGE_TEXTS + list(bbc_small["text"][:40])
    sess = session(_tokenizer_model(vocab, MAX_LEN))
    ids, mask = sess.run(None, {"text": np.asarray(texts, dtype=object).reshape(-1, 1)})
    ref_ids, ref_mask = encode(load_tokenizer(MAX_LEN), texts)
    assert np.array_equal(ids, ref_ids) and np.array_equal(mask, ref_mask)
    # one row at a time gives the same ids (batching only pads)
    for t in ("naïve café résumé", "Ünïcödé Çhàráçtèrs Ðð Þþ Øø Åå Ææ", "control\x01\x7fchars"):
        one = sess.run(None, {"text": np.asarray([[t]], dtype=object)})[0][0]
        assert one.tolist() == load_tokenizer(MAX_LEN).encode(t).ids
    # accents are stripped (gen_processing_models would not): "naïve café" -> naive cafe
    tk = load_tokenizer(MAX_LEN)
    assert tk.encode("naïve café").ids == tk.encode("naive cafe").ids


def test_minilm_module_reproduces_the_published_embedding(encoder):
    tk = load_tokenizer(128)
    ids, mask = encode(tk, ["hello world"])
    with torch.no_grad():
        e = torch.nn.functional.normalize(encoder(torch.from_numpy(ids), torch.from_numpy(mask)), dim=-1)[0]
    # all-MiniLM-L6-v2's sentence embedding of "hello world" (sentence-transformers, normalised)
    assert np.allclose(e[:3].numpy(), [-0.0345, 0.0310, 0.0067], atol=5e-4)


def test_ngram_graph_matches_the_python_model(ngram, bbc_small):
    model, labels = ngram
    texts = list(bbc_small["text"][120:]) + EDGE_TEXTS
    out = run_graph(session(model.to_onnx(labels)), texts)
    ref = model.predict_proba(texts)
    assert np.abs(out["probabilities"] - ref).max() < 1e-5
    assert out["label"].tolist() == [labels[i] for i in ref.argmax(1)]
    assert np.abs(out["ood_score"] - model.oov_share(texts)).max() < 1e-6
    assert out["ood_score"][texts.index("...")] == 1.0  # no word at all: fully out of vocabulary


def test_ngram_graph_edge_batches(ngram):
    model, labels = ngram
    sess = session(model.to_onnx(labels))
    for batch in ([], ["..."], ["", "  "], ["a b", "..."]):
        lab, p, ood = sess.run(None, {"text": np.asarray(batch, dtype=object).reshape(-1, 1)})
        assert lab.shape == (len(batch),) and p.shape == (len(batch), len(labels)) and ood.shape == (len(batch),)
        assert np.allclose(p.sum(1), 1.0)


@pytest.fixture(scope="module")
def encoder_head(encoder, ngram):
    _, labels = ngram
    rng = np.random.default_rng(0)
    W = rng.normal(size=(len(labels), 384)).astype(np.float32) * 0.3
    cent = rng.normal(size=(len(labels), 384)).astype(np.float32)
    cent /= np.linalg.norm(cent, axis=1, keepdims=True)
    return EncoderHead(encoder, W, np.zeros(len(labels), np.float32), cent).eval()


def test_minilm_graph_matches_torch(encoder_head, vocab, ngram, bbc_small):
    _, labels = ngram
    graph = minilm_graph(export_encoder_head(encoder_head), vocab, labels, MAX_LEN)
    texts = EDGE_TEXTS + list(bbc_small["text"][:20])
    out = run_graph(session(graph, threads=2), texts, batch_size=16)
    ids, mask = encode(load_tokenizer(MAX_LEN), texts)
    with torch.no_grad():
        p, ood = encoder_head(torch.from_numpy(ids), torch.from_numpy(mask))
    assert np.abs(out["probabilities"] - p.numpy()).max() < 1e-4
    assert np.abs(out["ood_score"] - ood.numpy()).max() < 1e-4
    assert out["label"].tolist() == [labels[i] for i in p.numpy().argmax(1)]
    one = session(graph).run(None, {"text": np.asarray([[texts[5]]], dtype=object)})[1][0]
    assert np.abs(one - out["probabilities"][5]).max() < 1e-5  # padding in a batch changes nothing
    empty = session(graph).run(None, {"text": np.zeros((0, 1), dtype=object)})
    assert [e.shape[0] for e in empty] == [0, 0, 0]


def test_ensemble_graph_is_the_weighted_average_of_its_branches(encoder_head, vocab, ngram, bbc_small):
    model, labels = ngram
    graph = ensemble_graph(export_encoder_head(encoder_head), model.to_onnx(labels, prefix="ng/"), vocab, labels,
                           MAX_LEN, 0.3)
    texts = EDGE_TEXTS[:10] + list(bbc_small["text"][120:135])
    out = run_graph(session(graph, threads=2), texts)
    ids, mask = encode(load_tokenizer(MAX_LEN), texts)
    with torch.no_grad():
        p, ood = encoder_head(torch.from_numpy(ids), torch.from_numpy(mask))
    expected = 0.3 * p.numpy() + 0.7 * model.predict_proba(texts)
    assert np.abs(out["probabilities"] - expected).max() < 1e-4
    assert np.abs(out["ood_score"] - ood.numpy()).max() < 1e-4
    assert out["label"].tolist() == [labels[i] for i in expected.argmax(1)]
