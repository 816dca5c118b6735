"""Text: quality vs a tuned TF-IDF + logistic regression, batch-1 speed vs a Hugging Face pipeline, and
training a head on frozen MiniLM embeddings of 10k texts. Everything side by side in one run.

quality   For each dataset, Fulcrum's own split (train / validation / test, seeded, stratified) is
          reproduced. Fulcrum trains with its defaults (``model="auto"``: n-gram, frozen MiniLM + head,
          or their ensemble, picked on validation). The baseline is the usual strong pipeline: word
          1-2-gram + char_wb 2-5-gram TF-IDF (sublinear tf, min_df 2) + LogisticRegression, C in
          {0.5, 2, 8, 32} by 5-fold CV on train + validation. Both are scored on the same test rows;
          the difference gets a paired-bootstrap 95% interval and a verdict (ahead / behind / tie).
          With ``--cv K``: K-fold stratified cross-validation over all rows instead (``--repeats R`` times
          with other folds): in each fold both pipelines train on the other folds only (Fulcrum splits them
          into its own train / validation parts and decides everything there; the baseline's C by 5-fold
          CV inside them) and predict the held-out fold, so every row is predicted once per repeat by both.
          Per fold and overall: accuracies, rows only one of them got right, exact McNemar p, and a
          paired bootstrap over rows of the difference. Fulcrum's side is scored in Python (the exported
          graph matches it to 1e-4, which fit checks); the baseline's fold predictions are cached on
          disk (deterministic), so re-running Fulcrum's side does not pay for the grid again.
speed     Raw string -> label, batch 1, the same test sentences, warm-up, interleaved rounds, best
          round and median: the fp32 graph and its int8 variant (onnxruntime + extensions) against a
          ``transformers`` pipeline("text-classification") in torch eager running *the same*
          fine-tuned encoder + mean pooling + head (transformers is installed with the MiniLM wheel;
          it is the peer here, not a Fulcrum dependency). ORT intra-op threads = torch threads.
          int8 accuracy is measured against fp32 on a real test split (tweets, frozen head). Besides
          wall-clock req/s (what the targets are stated in), each engine's CPU time per request is
          printed: on a shared machine it is the steadier figure.
          With ``--streams N`` (default: 2, this machine's cores; 0 skips it), the machine's throughput
          as a server uses it at batch 1: N worker processes per engine, each with one intra-op thread
          (torch threads 1 for the pipeline), each answering all the sentences, released together by a
          barrier, ``--rounds`` rounds; req/s = N x sentences / the slowest worker's wall time.
head      Embedding 10k tweets once (reported separately), then the cached pass, then the logistic
          head with C chosen on validation.

    python benchmarks/bench_text.py [--sections quality,speed,head] [--datasets bbc_news,tweets] [--cv 5 [--repeats 2]]
                                    [--cap 10000] [--threads 1,2] [--streams 2] [--sentences 100] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from fulcrum.data import load_builtin, train_val_test_split  # noqa: E402
from fulcrum.tasks.text import TextTask  # noqa: E402


def _load() -> str:
    a, b, c = os.getloadavg()
    return f"load average {a:.1f} / {b:.1f} / {c:.1f} on {os.cpu_count()} cores"


def _dataset(name: str, cap: int | None) -> pd.DataFrame:
    df = load_builtin(name)
    if cap and len(df) > cap:
        df = df.sample(cap, random_state=0).reset_index(drop=True)
    return df


def _bootstrap(a: np.ndarray, b: np.ndarray, n: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of a - b (per-row correctness) with a paired-bootstrap 95% interval."""
    rng = np.random.default_rng(seed)
    d = a.astype(float) - b.astype(float)
    idx = rng.integers(0, len(d), size=(n, len(d)))
    means = d[idx].mean(1)
    return float(d.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


# ----------------------------------------------------------------------------- quality


BASELINE_C = (0.5, 2, 8, 32)


def baseline(train: pd.DataFrame, test: pd.DataFrame, n_jobs: int = 1) -> tuple[np.ndarray, dict[str, Any]]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline, make_union

    from joblib import Memory

    with tempfile.TemporaryDirectory() as tmp:
        # the fitted TF-IDF union is cached per training fold (joblib Memory), so the 4 values of C reuse one
        # vectorization per fold instead of vectorizing 4 times: same fits, same predictions, less CPU
        pipe = make_pipeline(make_union(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2),
                                        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2)),
                             LogisticRegression(max_iter=2000), memory=Memory(tmp, verbose=0))
        t0, c0 = time.perf_counter(), time.process_time()
        gs = GridSearchCV(pipe, {"logisticregression__C": list(BASELINE_C)}, cv=StratifiedKFold(5, shuffle=True, random_state=0),
                          n_jobs=n_jobs)
        gs.fit(train["text"].tolist(), train["label"].tolist())
        pred = gs.predict(test["text"].tolist())
    return np.asarray(pred, dtype=object), {"C": gs.best_params_["logisticregression__C"],
                                            "fit_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}


def quality(datasets: list[str], cap: int | None) -> None:
    from sklearn.metrics import f1_score

    print(f"\n== quality: Fulcrum text default vs tuned TF-IDF + LR (C by 5-fold CV), same test rows ({_load()})")
    for name in datasets:
        df = _dataset(name, cap)
        print(f"  [{name}] start ({_load()})", flush=True)
        t0, c0 = time.perf_counter(), time.process_time()
        trained = TextTask().fit(df, {"target": "label", "progress": False}, source=f"builtin:{name}",
                                 log=lambda msg: print(f"   [{name}] {msg}", flush=True))
        f_s, f_cpu = time.perf_counter() - t0, time.process_time() - c0
        m = trained.manifest
        test = trained.test_frame
        # Fulcrum's split, reproduced for the baseline: train + validation to fit (and cross-validate) on
        tr, va, te = train_val_test_split(df[["text", "label"]], "label", task="classification", seed=0)
        assert te["text"].tolist() == test["text"].tolist(), "splits differ"
        out = trained.extra["test_outputs"]  # the graph's own outputs on the test rows (what the metric came from)
        y = test["label"].astype(str).to_numpy()
        ok_f = out["label"] == y
        pred_b, info = baseline(pd.concat([tr, va]), te)
        ok_b = pred_b.astype(str) == y
        diff, lo, hi = _bootstrap(ok_f, ok_b)
        verdict = "ahead" if lo > 0 else "behind" if hi < 0 else "tie (within noise)"
        print(f"{name}: {len(tr)}/{len(va)}/{len(te)} rows (train/val/test)")
        print(f"  fulcrum ({m['model']['family']:8s}) accuracy {ok_f.mean():.4f}  macro-F1 {f1_score(y, out['label'], average='macro'):.4f}"
              f"  fit {f_s:.0f} s wall / {f_cpu:.0f} CPU-s (incl. {m['metrics']['candidates'].get('minilm', {}).get('embed_s', 0):.0f} s embedding)")
        print(f"  tfidf+LR (C={info['C']:<4g}) accuracy {ok_b.mean():.4f}  macro-F1 {f1_score(y, pred_b.astype(str), average='macro'):.4f}"
              f"  fit {info['fit_s']:.0f} s wall / {info['cpu_s']:.0f} CPU-s (incl. CV)")
        cands = ", ".join(f"{k} {v['validation_accuracy']:.4f}" for k, v in m["metrics"]["candidates"].items())
        ens = m["metrics"]["candidates"].get("ensemble")
        print(f"  validation: {cands}" + (f" (w_minilm {ens['weight_minilm']:g}, chosen on validation)" if ens else ""))
        print(f"  fulcrum - baseline: {diff:+.4f} (95% CI {lo:+.4f} to {hi:+.4f}, paired bootstrap) -> {verdict}"
              f"  [{_load()}]", flush=True)


# ----------------------------------------------------------------------------- quality by cross-validation


def _mcnemar(ok_a: np.ndarray, ok_b: np.ndarray) -> tuple[int, int, float]:
    """(rows only a got right, rows only b got right, exact two-sided McNemar p-value on those discordant pairs)."""
    from scipy.stats import binomtest

    n10, n01 = int((ok_a & ~ok_b).sum()), int((~ok_a & ok_b).sum())
    return n10, n01, float(binomtest(n10, n10 + n01, 0.5).pvalue) if n10 + n01 else 1.0


def _baseline_cached(name: str, dev: pd.DataFrame, held: pd.DataFrame, n_jobs: int) -> tuple[np.ndarray, dict[str, Any], bool]:
    """The baseline's predictions for ``held`` trained on ``dev``; kept on disk keyed by the exact texts and labels
    of both, the grid and scikit-learn's version (the pipeline is deterministic), so a re-run of Fulcrum's side
    does not pay for the baseline's grid again. (predictions, info, read from the cache?)"""
    import hashlib
    import json

    import sklearn

    from fulcrum.tasks.text._cache import cache_root

    h = hashlib.sha256(json.dumps([name, sklearn.__version__, list(BASELINE_C), dev["text"].tolist(),
                                   dev["label"].astype(str).tolist(), held["text"].tolist()]).encode()).hexdigest()[:24]
    path = cache_root() / "bench_text_cv" / f"{h}.json"
    if path.exists():
        d = json.loads(path.read_text())
        return np.asarray(d["pred"], dtype=object), d["info"], True
    pred, info = baseline(dev, held, n_jobs)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pred": [str(v) for v in pred], "info": info}))
    tmp.replace(path)
    return pred, info, False


def _previous_rule(y_va: np.ndarray, val_p: dict[str, np.ndarray]) -> str:
    """The selection rule before the log-loss tie-break (to 2026-12-01): the simplest candidate whose validation
    accuracy is within one binomial standard error of the best one's."""
    from fulcrum.tasks.text._fit import ORDER

    acc = {f: float((p.argmax(1) == y_va).mean()) for f, p in val_p.items()}
    top = max(acc.values())
    se = float(np.sqrt(max(top * (1 - top), 1e-12) / len(y_va)))
    return next(f for f in ORDER if f in acc and acc[f] >= top - se)


def _previous_proba(models: Any, family: str, dev_texts: list[str], y_dev: np.ndarray, k: int, held: list[str]) -> np.ndarray:
    """Held-out probabilities of ``family`` refit on the training part, as fit_models refits the selected one."""
    from fulcrum.tasks.text._fit import _reference_proba
    from fulcrum.tasks.text._ngram import NgramModel

    ngram = models.ngram
    if family == models.family:
        return models.predict_proba(held)
    if family == "ngram" and models.family == "minilm":  # fit_models refit no n-gram: refit it as it would
        ngram = NgramModel(C=ngram.C, max_word=ngram.max_word, max_char=ngram.max_char, min_df=ngram.min_df,
                           sublinear=ngram.sublinear, seed=0).fit(dev_texts, y_dev, k)
    # otherwise the selected ensemble holds the refit n-gram model and the refit head
    return _reference_proba(family, ngram, models.mini, models.head, models.candidates, held)


def quality_cv(datasets: list[str], cap: int | None, folds: int, repeats: int, n_jobs: int,
               baseline_only: bool = False) -> None:
    """Every row predicted once per repeat by both pipelines, each trained on the other folds (the same folds).
    ``baseline_only``: only fill the baseline's cache, last fold first (run it beside a full run to share the work)."""
    from sklearn.model_selection import StratifiedKFold

    from fulcrum.data._split import _split
    from fulcrum.tasks.text._config import TextConfig
    from fulcrum.tasks.text._data import clean_training_texts
    from fulcrum.tasks.text._fit import fit_models

    print(f"\n== quality by {folds}-fold cross-validation x {repeats} repeat(s): Fulcrum text default vs tuned TF-IDF + LR "
          f"(C by 5-fold CV inside each training part), every row predicted once per repeat by both ({_load()})")
    cfg = TextConfig(target="label", progress=False)
    for name in datasets:
        df = clean_training_texts(_dataset(name, cap)[["text", "label"]], "text", print).reset_index(drop=True)
        labels = sorted(df["label"].astype(str).unique())
        y = np.asarray([labels.index(v) for v in df["label"].astype(str)])
        texts = df["text"].tolist()
        n = len(df)
        ok_f = np.zeros((repeats, n), bool)
        ok_b = np.zeros((repeats, n), bool)
        ok_prev = np.zeros((repeats, n), bool)
        chosen: list[str] = []
        prev: list[str] = []
        if baseline_only:
            jobs = [(r, f, dev, held) for r in range(repeats)
                    for f, (dev, held) in enumerate(StratifiedKFold(folds, shuffle=True, random_state=r).split(texts, y))]
            for r, f, dev, held in reversed(jobs):
                pred_b, info, cached = _baseline_cached(name, df.iloc[dev], df.iloc[held], n_jobs)
                acc = (pred_b.astype(str) == np.asarray(labels, dtype=object)[y[held]]).mean()
                print(f"  baseline only: repeat {r} fold {f}: accuracy {acc:.4f}, C={info['C']:g}"
                      f"{' (cached)' if cached else ''}, {info['fit_s']:.0f} s  [{_load()}]", flush=True)
            continue
        print(f"  [{name}] {n} rows, {len(labels)} classes ({_load()})", flush=True)
        print(f"  {'rep':>3s} {'fold':>4s} {'rows':>5s} {'fulcrum':>8s} {'baseline':>8s} {'diff':>7s}  {'only F':>6s} {'only B':>6s}"
              f"  fulcrum's choice (validation acc / log-loss of ngram, minilm, ensemble)  baseline C  load")
        for r in range(repeats):
            for f, (dev, held) in enumerate(StratifiedKFold(folds, shuffle=True, random_state=r).split(texts, y)):
                # Fulcrum: its own stratified train / validation split of the training part (validation = a quarter
                # of it, as 20% of all rows is a quarter of the 80% it trains on by default), then its defaults
                tr_i, va_i = _split(dev, round(len(dev) / 4), np.asarray(labels, dtype=object)[y], cfg.seed + 1)
                t0 = time.perf_counter()
                models = fit_models([texts[i] for i in tr_i], y[tr_i], [texts[i] for i in va_i], y[va_i], len(labels), cfg)
                p = models.predict_proba([texts[i] for i in held])
                f_s = time.perf_counter() - t0
                ok_f[r, held] = p.argmax(1) == y[held]
                old = _previous_rule(y[va_i], models.val_p)
                p_old = _previous_proba(models, old, [texts[i] for i in dev], y[dev], len(labels), [texts[i] for i in held])
                ok_prev[r, held] = p_old.argmax(1) == y[held]
                prev.append(old)
                pred_b, info, cached = _baseline_cached(name, df.iloc[dev], df.iloc[held], n_jobs)
                ok_b[r, held] = pred_b.astype(str) == np.asarray(labels, dtype=object)[y[held]]
                a, b = ok_f[r, held], ok_b[r, held]
                n10, n01, _ = _mcnemar(a, b)
                chosen.append(models.family)
                vals = "; ".join(f"{c['validation_accuracy']:.4f}/{c.get('validation_log_loss', float('nan')):.4f}"
                                 for c in models.candidates.values())
                print(f"  {r:3d} {f:4d} {len(held):5d} {a.mean():8.4f} {b.mean():8.4f} {a.mean() - b.mean():+7.4f}  {n10:6d} {n01:6d}"
                      f"  {models.family:8s} ({vals})  C={info['C']:g}{' (cached)' if cached else ''}"
                      f"  fulcrum {f_s:.0f} s, baseline {info['fit_s']:.0f} s; previous rule: {old} {ok_prev[r, held].mean():.4f}"
                      f"  [{_load()}]", flush=True)
        print(f"{name}: {folds}-fold CV x {repeats}, {n} rows each predicted {repeats}x by both; Fulcrum chose "
              + ", ".join(f"{c} {chosen.count(c)}x" for c in sorted(set(chosen))))
        for r in range(repeats):
            n10, n01, pv = _mcnemar(ok_f[r], ok_b[r])
            print(f"  repeat {r}: fulcrum {ok_f[r].mean():.4f} ({(~ok_f[r]).sum()} wrong), baseline {ok_b[r].mean():.4f} "
                  f"({(~ok_b[r]).sum()} wrong); discordant: only Fulcrum right {n10}, only baseline right {n01}, "
                  f"exact McNemar p = {pv:.3f}")
        # per row: mean correctness over the repeats; bootstrap over rows (rows are the independent units)
        diff, lo, hi = _bootstrap(ok_f.mean(0), ok_b.mean(0), n=5000)
        verdict = "ahead" if lo > 0 else "behind" if hi < 0 else "tie (within noise)"
        print(f"  accuracy over all rows and repeats: fulcrum {ok_f.mean():.4f}, baseline {ok_b.mean():.4f}")
        print(f"  fulcrum - baseline: {diff:+.4f} (95% CI {lo:+.4f} to {hi:+.4f}, paired bootstrap over the {n} rows) -> "
              f"{verdict}  [{_load()}]", flush=True)
        d2, lo2, hi2 = _bootstrap(ok_prev.mean(0), ok_b.mean(0), n=5000)
        n10, n01, pv = _mcnemar(ok_prev.ravel(), ok_b.ravel())
        print("  previous selection rule (simplest within one standard error of the best validation accuracy; chose "
              + ", ".join(f"{c} {prev.count(c)}x" for c in sorted(set(prev)))
              + f"): accuracy {ok_prev.mean():.4f}, minus baseline {d2:+.4f} (95% CI {lo2:+.4f} to {hi2:+.4f}); "
              f"only it right {n10}, only baseline right {n01}, McNemar p = {pv:.3f}", flush=True)


# ----------------------------------------------------------------------------- speed


def _hf_pipeline(weights: dict[str, Any], labels: list[str], max_length: int) -> Any:
    """transformers BertModel + mean pooling + Linear, loaded with the fine-tuned weights, in a pipeline."""
    import torch
    from torch import nn
    from transformers import AutoTokenizer, BertConfig, BertModel, BertPreTrainedModel, pipeline
    from transformers.utils import logging as hf_logging
    from transformers.modeling_outputs import SequenceClassifierOutput

    from fulcrum.tasks.text._minilm import model_dir

    class MeanPoolClassifier(BertPreTrainedModel):
        def __init__(self, config: Any) -> None:
            super().__init__(config)
            self.bert = BertModel(config, add_pooling_layer=False)
            self.classifier = nn.Linear(config.hidden_size, config.num_labels)
            self.post_init()

        def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, **kw):  # type: ignore[no-untyped-def]
            h = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            return SequenceClassifierOutput(logits=self.classifier((h * m).sum(1) / m.sum(1).clamp(min=1e-9)))

    config = BertConfig.from_pretrained(str(model_dir()), num_labels=len(labels), id2label=dict(enumerate(labels)),
                                        label2id={c: i for i, c in enumerate(labels)})
    model = MeanPoolClassifier(config).eval()
    back = {"word": "embeddings.word_embeddings", "pos": "embeddings.position_embeddings",
            "typ": "embeddings.token_type_embeddings", "ln": "embeddings.LayerNorm"}
    layer = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "o": "attention.output.dense", "ln1": "attention.output.LayerNorm", "fc1": "intermediate.dense",
             "fc2": "output.dense", "ln2": "output.LayerNorm"}
    state = {}
    for key, value in weights.items():
        if key.startswith("encoder."):
            rest = key[len("encoder."):]
            head, _, tail = rest.partition(".")
            if head in back:
                state[f"bert.{back[head]}.{tail}"] = value
            elif head == "layers":
                i, sub, leaf = tail.split(".", 2)
                state[f"bert.encoder.layer.{i}.{layer[sub]}.{leaf}"] = value
        elif key in ("head.weight", "head.bias"):
            state["classifier." + key.split(".")[1]] = value
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all("position_ids" in k for k in missing), (missing, unexpected)
    tok = AutoTokenizer.from_pretrained(str(model_dir()))
    hf_logging.set_verbosity_error()  # "MeanPoolClassifier is not supported for text-classification": it works
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = pipeline("text-classification", model=model, tokenizer=tok, device="cpu", top_k=None)
    return lambda t: pipe(t, truncation=True, max_length=max_length)


def speed(threads_list: list[int], n_sentences: int, rounds: int, ft_texts: int, acc_texts: int, streams: int = 2) -> None:
    import torch
    from safetensors.torch import load as load_st

    from collections import Counter

    import onnx

    from fulcrum.tasks.text._graph import session
    from fulcrum.tasks.text._variants import INT8_PARAMS, quantize_int8

    print(f"\n== speed: raw string -> label, batch 1 ({_load()})")
    df = _dataset("tweets", ft_texts)
    t0 = time.perf_counter()
    trained = TextTask().fit(df, {"target": "label", "model": "minilm", "fine_tune": True, "fine_tune_epochs": 1,
                                  "progress": False, "refit": False}, log=lambda m: None)
    print(f"fine-tuned MiniLM on {trained.manifest['data']['rows']['train']} tweets x 1 epoch in {time.perf_counter() - t0:.0f} s "
          f"(test accuracy {trained.manifest['metrics']['primary']['value']:.4f}); max_length {trained.manifest['model']['max_length']}")
    labels = [str(c) for c in trained.manifest["task"]["labels"]]
    fp32 = trained.files["model.onnx"]
    int8 = quantize_int8(fp32)
    for name, g in (("fp32", fp32), ("int8", int8)):
        ops = Counter(n.op_type for n in onnx.load_from_string(g).graph.node)
        print(f"  {name} graph: " + ", ".join(f"{op} x{ops[op]}" for op in (
            "EmbedLayerNormalization", "Attention", "QAttention", "BiasGelu", "LayerNormalization", "MatMul",
            "MatMulInteger") if ops[op]) + (f"; {INT8_PARAMS}" if name == "int8" else ""))
    weights = load_st(trained.files["weights.safetensors"])
    hf = _hf_pipeline(weights, labels, trained.manifest["model"]["max_length"])
    sents = trained.test_frame["text"].sample(min(n_sentences, len(trained.test_frame)), random_state=1).tolist()

    def hf_proba(t: str) -> np.ndarray:
        out = hf(t)
        out = out[0] if out and isinstance(out[0], list) else out
        d = {o["label"]: o["score"] for o in out}
        return np.array([d[c] for c in labels])

    for threads in threads_list:
        torch.set_num_threads(threads)
        s32, s8 = session(fp32, threads=threads), session(int8, threads=threads)

        def run(s: Any) -> Any:
            return lambda t: s.run(["label", "probabilities"], {"text": np.asarray([[t]], dtype=object)})[1][0]

        engines = {"hf_pipeline_eager": hf_proba, "onnx_fp32": run(s32), "onnx_int8": run(s8)}
        ref = np.stack([hf_proba(t) for t in sents[:30]])
        for k, f in engines.items():
            p = np.stack([f(t) for t in sents[:30]])
            print(f"  threads={threads} {k:18s} max|p - p_pipeline| {np.abs(p - ref).max():.1e}, label agreement "
                  f"{(p.argmax(1) == ref.argmax(1)).mean():.2f}")
        walls: dict[str, list[float]] = {k: [] for k in engines}
        cpus: dict[str, list[float]] = {k: [] for k in engines}
        for r in range(rounds):
            order = list(engines) if r % 2 == 0 else list(reversed(engines))
            for k in order:
                f = engines[k]
                for t in sents[:5]:
                    f(t)  # warm-up
                t0, c0 = time.perf_counter(), time.process_time()
                for t in sents:
                    f(t)
                walls[k].append(time.perf_counter() - t0)
                cpus[k].append(time.process_time() - c0)
        base = len(sents) / min(walls["hf_pipeline_eager"])
        cpu_base = min(cpus["hf_pipeline_eager"])
        print(f"  threads={threads}: {len(sents)} sentences x {rounds} interleaved rounds ({_load()})")
        for k, w in walls.items():
            best, med = len(sents) / min(w), len(sents) / float(np.median(w))
            cpu = min(cpus[k])
            print(f"    {k:18s} {best:7.1f} req/s best round, {med:7.1f} median  x{best / base:.2f} vs pipeline"
                  + (f", x{best / (len(sents) / min(walls['onnx_fp32'])):.2f} vs fp32" if k == "onnx_int8" else "")
                  + f"  | CPU {1000 * cpu / len(sents):5.2f} ms/req, x{cpu_base / cpu:.2f} vs pipeline"
                  + (f", x{min(cpus['onnx_fp32']) / cpu:.2f} vs fp32" if k == "onnx_int8" else ""))
    if streams:
        with tempfile.TemporaryDirectory(prefix="bench-text-streams-") as tmp:
            from safetensors.torch import save_file

            save_file(weights, os.path.join(tmp, "weights.safetensors"))
            for name, g in (("fp32", fp32), ("int8", int8)):
                with open(os.path.join(tmp, f"{name}.onnx"), "wb") as fh:
                    fh.write(g)
            _streams(streams, tmp, labels, trained.manifest["model"]["max_length"], sents, rounds)
    _int8_accuracy(acc_texts)


def _stream_worker(engine: str, tmp: str, labels: list[str], max_length: int, sents: list[str], rounds: int,
                   barrier: Any, out: Any) -> None:
    """One serving process: builds its engine with one thread, warms up, then answers every sentence once per
    round, each round started with the other workers by ``barrier``; puts its wall times on ``out``."""
    import torch

    torch.set_num_threads(1)
    if engine == "hf_pipeline_eager":
        from safetensors.torch import load_file

        hf = _hf_pipeline(load_file(os.path.join(tmp, "weights.safetensors")), labels, max_length)
        f = hf
    else:
        from fulcrum.tasks.text._graph import session

        s = session(os.path.join(tmp, f"{engine.split('_')[1]}.onnx"), threads=1)
        f = lambda t: s.run(["label"], {"text": np.asarray([[t]], dtype=object)})  # noqa: E731
    for t in sents[:5]:
        f(t)
    walls = []
    for _ in range(rounds):
        barrier.wait()
        t0 = time.perf_counter()
        for t in sents:
            f(t)
        walls.append(time.perf_counter() - t0)
    out.put(walls)


def _streams(n: int, tmp: str, labels: list[str], max_length: int, sents: list[str], rounds: int) -> None:
    """req/s of the whole machine at batch 1: ``n`` one-thread worker processes per engine (see the docstring)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    rates: dict[str, list[float]] = {}
    engines = ["hf_pipeline_eager", "onnx_fp32", "onnx_int8"]
    for engine in engines + engines[::-1]:  # two passes, the second in reverse order
        barrier, out = ctx.Barrier(n), ctx.Queue()
        procs = [ctx.Process(target=_stream_worker, args=(engine, tmp, labels, max_length, sents, rounds, barrier, out))
                 for _ in range(n)]
        for p in procs:
            p.start()
        walls = np.array([out.get() for _ in procs])  # workers x rounds
        for p in procs:
            p.join()
        rates.setdefault(engine, []).extend((n * len(sents) / walls.max(axis=0)).tolist())
    print(f"  {n} streams x 1 thread, batch 1: {len(sents)} sentences per worker x {rounds} rounds x 2 passes ({_load()})")
    base = max(rates["hf_pipeline_eager"])
    for k, r in rates.items():
        best = max(r)
        print(f"    {k:18s} {best:7.1f} req/s best round, {float(np.median(r)):7.1f} median  x{best / base:.2f} vs pipeline"
              + (f", x{best / max(rates['onnx_fp32']):.2f} vs fp32" if k == "onnx_int8" else ""))


def _int8_accuracy(n: int) -> None:
    from fulcrum.tasks.text._graph import run_graph, session
    from fulcrum.tasks.text._variants import quantize_int8

    df = _dataset("tweets", n)
    trained = TextTask().fit(df, {"target": "label", "model": "minilm", "progress": False}, log=lambda m: None)
    test = trained.test_frame
    y = test["label"].astype(str).to_numpy()
    acc = {}
    for name, model in (("fp32", trained.files["model.onnx"]), ("int8", quantize_int8(trained.files["model.onnx"]))):
        out = run_graph(session(model, threads=2), test["text"].tolist(), batch_size=64)
        acc[name] = (out["label"] == y).mean()
    print(f"  int8 accuracy on {len(test)} test tweets (frozen MiniLM + head): fp32 {acc['fp32']:.4f}, int8 {acc['int8']:.4f} "
          f"= {100 * acc['int8'] / acc['fp32']:.1f}% of fp32")


# ----------------------------------------------------------------------------- head on frozen embeddings


def head(n: int) -> None:
    from fulcrum.tasks.text._config import TextConfig
    from fulcrum.tasks.text._fit import MiniLMRun

    print(f"\n== head on frozen embeddings of {n} tweets ({_load()})")
    df = _dataset("tweets", n)
    tr, va, _ = train_val_test_split(df, "label", task="classification", val_size=0.2, test_size=0.01, seed=0)
    labels = sorted(df["label"].unique())
    y_tr = np.asarray([labels.index(v) for v in tr["label"]])
    y_va = np.asarray([labels.index(v) for v in va["label"]])
    with tempfile.TemporaryDirectory() as cache:
        os.environ["FULCRUM_CACHE_DIR"] = cache
        run = MiniLMRun(TextConfig(target="label"))
        texts = tr["text"].tolist() + va["text"].tolist()
        t0 = time.perf_counter()
        run.embeddings(texts)
        first = time.perf_counter() - t0
        run2 = MiniLMRun(TextConfig(target="label"))  # a new run: the cache is on disk
        t0 = time.perf_counter()
        E_tr, E_va = run2.embeddings(tr["text"].tolist()), run2.embeddings(va["text"].tolist())
        cached = time.perf_counter() - t0
        t0 = time.perf_counter()
        _, _, p, info = run2.fit_head(E_tr, y_tr, E_va, y_va, len(labels))
        fit = time.perf_counter() - t0
    print(f"  first embedding pass of {len(texts)} texts: {first:.0f} s ({len(texts) / first:.0f} texts/s, cached by content hash)")
    print(f"  next run: {cached:.1f} s to read them from the cache; logistic head (4 values of C on validation): "
          f"{fit:.1f} s -> head training {cached + fit:.1f} s in all (target < 60 s); validation accuracy "
          f"{(p.argmax(1) == y_va).mean():.4f} (C={info['C']:g})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", default="quality,speed,head")
    ap.add_argument("--datasets", default="bbc_news,tweets")
    ap.add_argument("--cv", type=int, default=0, metavar="K",
                    help="quality by K-fold cross-validation over all rows (paired, same folds) instead of one split")
    ap.add_argument("--repeats", type=int, default=1, help="--cv repeats, each with other folds")
    ap.add_argument("--baseline-only", action="store_true",
                    help="with --cv: only compute (and cache) the baseline's fold predictions, last fold first")
    ap.add_argument("--jobs", type=int, default=1, help="processes for the baseline's grid search")
    ap.add_argument("--cap", type=int, default=10_000, help="rows per dataset at most (tweets has 37k)")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--streams", type=int, default=2, help="one-thread worker processes for the throughput measure (0: skip)")
    ap.add_argument("--sentences", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--head-texts", type=int, default=10_000)
    ap.add_argument("--finetune-texts", type=int, default=800, help="tweets for the speed section's fine-tuned model (its speed does not depend on it)")
    ap.add_argument("--int8-texts", type=int, default=10_000, help="tweets for the int8-vs-fp32 accuracy check")
    args = ap.parse_args()
    sections = args.sections.split(",")
    print(f"bench_text: {_load()}; python {sys.version.split()[0]}")
    if "quality" in sections and args.cv:
        quality_cv(args.datasets.split(","), args.cap, args.cv, args.repeats, args.jobs, args.baseline_only)
    elif "quality" in sections:
        quality(args.datasets.split(","), args.cap)
    if "speed" in sections:
        speed([int(t) for t in args.threads.split(",")], args.sentences, args.rounds, args.finetune_texts, args.int8_texts,
              args.streams)
    if "head" in sections:
        head(args.head_texts)


if __name__ == "__main__":
    main()
