"""What makes the text default strong: sublinear-tf word + char n-grams exported exactly into the graph, and
an ensemble whose weight is chosen on the validation split."""

from __future__ import annotations

import numpy as np
import pytest
from text_fixtures import EDGE_TEXTS, bbc_small, labels_of, text_cache_dir  # noqa: F401  (fixtures)

from fulcrum.tasks.text import TextTask
from fulcrum.tasks.text._fit import ensemble_weight
from fulcrum.tasks.text._graph import run_graph, session
from fulcrum.tasks.text._ngram import NgramModel

FAST = {"target": "label", "max_length": 32, "progress": False, "measure_inference": False}
# repeated words and characters: counts above 1 are where sublinear and binary tf differ
REPEATS = ["goal goal goal goal for the team", "shares shares fell fell fell", "aaaa bbbb aaaa", "film film. Film!"]


@pytest.fixture(scope="module")
def sublinear(bbc_small):
    labels, y = labels_of(bbc_small)
    return NgramModel(C=8.0).fit(list(bbc_small["text"][:120]), y[:120], len(labels)), labels


def test_ngram_default_is_sublinear_tf_and_the_graph_agrees_with_scikit_learn(sublinear, bbc_small):
    model, labels = sublinear
    assert model.describe()["tf"] == "sublinear"
    assert all(v.sublinear_tf and not v.binary for v in model.vecs_)
    texts = list(bbc_small["text"][120:]) + REPEATS + EDGE_TEXTS
    out = run_graph(session(model.to_onnx(labels)), texts)
    ref = model.predict_proba(texts)  # scikit-learn's TfidfVectorizer + the logistic regression's weights
    assert np.abs(out["probabilities"] - ref).max() < 1e-5
    assert out["label"].tolist() == [labels[i] for i in ref.argmax(1)]
    # the counts matter: the same words once each give other probabilities
    once = run_graph(session(model.to_onnx(labels)), ["goal for the team", "shares fell"])["probabilities"]
    assert np.abs(once - out["probabilities"][[len(texts) - len(EDGE_TEXTS) - 4, len(texts) - len(EDGE_TEXTS) - 3]]).max() > 1e-4


def test_binary_ngram_still_exports(bbc_small):
    labels, y = labels_of(bbc_small)
    model = NgramModel(C=8.0, sublinear=False).fit(list(bbc_small["text"][:120]), y[:120], len(labels))
    texts = REPEATS + list(bbc_small["text"][120:140])
    out = run_graph(session(model.to_onnx(labels)), texts)
    assert np.abs(out["probabilities"] - model.predict_proba(texts)).max() < 1e-5


def test_ensemble_weight_is_the_best_on_validation():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    # n-gram right on the first 100 rows (confidently) and 50% elsewhere, MiniLM right on rows 100.. (mildly):
    # the best mix leans on MiniLM but needs the n-gram's confident rows
    p_ng = np.full((300, 3), 1 / 3)
    p_mi = np.full((300, 3), 0.3)
    for i, c in enumerate(y):
        if i < 100:
            p_ng[i] = 0.05
            p_ng[i, c] = 0.9
            p_mi[i] = [0.45 if j == (c + 1) % 3 else 0.25 if j == c else 0.30 for j in range(3)]
        else:
            p_mi[i] = 0.3
            p_mi[i, c] = 0.4
            p_ng[i] = 0.3
            p_ng[i, (c + 1) % 3] = 0.4
    p_mi /= p_mi.sum(1, keepdims=True)
    w, scores = ensemble_weight(y, p_mi, p_ng)
    acc = {float(k): v for k, v in scores.items()}
    assert acc[w] == max(acc.values()) and acc[w] == pytest.approx(1.0)
    assert 0 < w < 1 and acc[0.5] < 1.0  # the fixed half-and-half mix would be worse


def test_fit_records_the_ensemble_weight_chosen_on_validation(bbc_small, text_cache_dir):
    trained = TextTask().fit(bbc_small, {**FAST, "model": "ensemble"}, source="builtin:bbc_news")
    cand = trained.manifest["metrics"]["candidates"]["ensemble"]
    scores = {float(k): v for k, v in cand["weight_scores"].items()}
    assert cand["weight_minilm"] in scores and scores[cand["weight_minilm"]] == max(scores.values())
    assert cand["validation_accuracy"] == pytest.approx(scores[cand["weight_minilm"]])
    assert trained.manifest["model"]["ensemble_weight_minilm"] == cand["weight_minilm"]
