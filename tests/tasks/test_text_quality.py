"""What makes the text default strong: sublinear-tf word + char n-grams exported exactly into the graph, and
an ensemble whose weight is chosen on the validation split."""

from __future__ import annotations

import numpy as np
import pytest
from text_fixtures import EDGE_TEXTS, bbc_small, labels_of, text_cache_dir  # noqa: F401  (fixtures)

from fulcrum.tasks.text import TextTask
from fulcrum.tasks.text._config import TextConfig
from fulcrum.tasks.text._fit import ensemble_weight, fit_models, select
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


def _probs(y: np.ndarray, right: np.ndarray, p_true: np.ndarray, k: int = 3) -> np.ndarray:
    """Probabilities giving p_true to the true class where ``right``, else to the next class."""
    p = np.tile((1 - p_true)[:, None] / (k - 1), (1, k))
    hit = np.where(right, y, (y + 1) % k)
    p[np.arange(len(y)), hit] = p_true
    return p


def test_selection_lets_validation_log_loss_decide_when_accuracy_is_tied():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 400)
    right = np.ones(400, bool)
    right[:8] = False  # 98% accurate, both: the same 8 errors
    ngram = _probs(y, right, np.where(right, 0.55, 0.6))  # right but hesitant
    ens = _probs(y, right, np.where(right, 0.95, 0.6))  # right and confident: far lower log-loss
    family, why = select(y, {"ngram": ngram, "minilm": ngram, "ensemble": ens})
    assert family == "ensemble" and "log-loss" in why
    # log-loss inside the noise of the paired differences: the simplest tied candidate stays
    # (the ensemble very sure on half the rows and unsure on the rest: a lower mean, by less than the noise)
    close = _probs(y, right, np.where(right, np.where(np.arange(400) % 2 == 0, 0.9, 0.35), 0.6))
    family, why = select(y, {"ngram": ngram, "ensemble": close})
    assert family == "ngram" and "simpler" in why and "lowest, ensemble" in why
    # accuracy beyond one standard error decides alone, whatever the log-loss
    worse = right.copy()
    worse[8:40] = False
    family, why = select(y, {"ngram": _probs(y, worse, np.full(400, 0.99)), "ensemble": ens})
    assert family == "ensemble" and "beyond one standard error" in why


def test_fit_models_selects_on_validation_rows_only(bbc_small, text_cache_dir):
    labels, y = labels_of(bbc_small)
    texts = list(bbc_small["text"])
    tr, va = list(range(0, 100)), list(range(100, 150))
    cfg = TextConfig(target="label", max_length=32, progress=False)
    models = fit_models([texts[i] for i in tr], y[tr], [texts[i] for i in va], y[va], len(labels), cfg)
    assert set(models.val_p) == {"ngram", "minilm", "ensemble"}
    # the rule, re-done here from the validation probabilities: accuracy ties within one binomial standard
    # error, then the simplest within one paired standard error of the lowest log-loss
    acc = {f: float((p.argmax(1) == y[va]).mean()) for f, p in models.val_p.items()}
    top = max(acc.values())
    tied = [f for f in ("ngram", "minilm", "ensemble") if acc[f] >= top - np.sqrt(top * (1 - top) / len(va))]
    loss = {f: -np.log(np.clip(models.val_p[f][np.arange(len(va)), y[va]], 1e-15, 1)) for f in tied}
    low = min(tied, key=lambda f: loss[f].mean())
    expect = next(f for f in tied if (loss[f] - loss[low]).mean() <= (loss[f] - loss[low]).std(ddof=1) / np.sqrt(len(va)))
    assert models.family == expect
    for f, c in models.candidates.items():
        assert c["validation_log_loss"] == pytest.approx(float(np.mean(
            -np.log(np.clip(models.val_p[f][np.arange(len(va)), y[va]], 1e-15, 1)))), rel=1e-6)
    # what it predicts is the selected, refit model (n-gram and head on train + validation)
    p = models.predict_proba(texts[:5])
    assert p.shape == (5, len(labels)) and np.allclose(p.sum(1), 1, atol=1e-5)
    assert models.refit and all(r["rows"] == 150 for r in models.refit.values())


def test_ngram_ood_thresholds_come_from_the_train_split_model(bbc_small):
    # the share of validation words unseen in training: measured with the model fit on the train split, not
    # with the refit one, which has seen every validation word (its shares would all be 0)
    trained = TextTask().fit(bbc_small, {**FAST, "model": "ngram"})
    m = trained.manifest
    thresholds = m["outputs"][2]["thresholds"]
    assert m["model"]["family"] == "ngram" and m["metrics"]["refit"]["ngram"]["rows"] == 120
    assert 0.05 < thresholds["p95"] <= thresholds["p99"] < 1
    assert trained.extra["ngram"].oov_share(list(trained.test_frame["text"])).mean() > 0  # the test texts: unseen words
