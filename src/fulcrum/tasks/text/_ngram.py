"""The fast text model, trained from scratch: n-gram TF-IDF + logistic regression, one ONNX graph.

Features: word 1-2-grams (``[\\p{L}\\p{N}]+`` tokens) and character 2-5-grams within words (padded
with one space each side, like scikit-learn's ``char_wb``), each block sublinear TF-IDF ((1 + log count) x
idf; ``sublinear=False``: binary, presence x idf), L2-normalised per block; a multinomial logistic
regression on both blocks. Sublinear counts are what the usual tuned TF-IDF baseline uses: on validation
they gained +1.1 points over binary on bbc_news (0.9685 -> 0.9798).

The graph (standard ONNX ops + ONNX Runtime / onnxruntime-extensions string ops)::

    text (N, 1) string -> ortx StringLower -> ortx StringRegexReplace (whitespace runs -> " ")
      word block: com.microsoft Tokenizer([\\p{L}\\p{N}]+) -> TfIdfVectorizer(1..2, TF) = counts (N, Vw)
        -> x = log(max(c, 1)) + min(c, 1)  (1 + log c where c > 0, else 0: sublinear tf)
      char block: " " + t.replace(" ", "  ") + " " -> Tokenizer(.) -> TfIdfVectorizer(2..5) -> x_c (N, Vc) alike
        (an n-gram that crosses a word boundary holds two spaces and is never in the pool)
      per block logits z = x @ (idf*W) (V, K) and squared norm n2 = (x*x) @ idf^2 (V, 1); logits_b = z / sqrt(n2)
        (binary model: TfIdfVectorizer IDF mode with unit weights gives x in {0, 1} = x*x, so one MatMul with
        [idf*W | idf^2] (V, K+1) gives both, no element-wise op over the V features)
      Add blocks + bias -> Softmax -> probabilities (N, K); ArgMax -> Gather(class names) -> label (N,)
      ood_score (N,): share of word tokens never seen in training (1.0 for a text with no word token)

The Python analyzers below are written to match the graph exactly (``str.lower`` and ortx
``StringLower`` differ only on rare letters such as the Turkish dotted I).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import numpy as np
from onnx import ModelProto, TensorProto, helper, numpy_helper

__all__ = ["NgramModel", "word_ngrams", "char_ngrams", "words", "C_GRID"]

WORD_RE = r"[\p{L}\p{N}]+"
WS_RE = r"[ \t\n\r\f\v]+"
C_GRID = (0.5, 2.0, 8.0, 32.0)
CONTRIB, MS = "ai.onnx.contrib", "com.microsoft"
PAD_TOKEN = "\u2400"
MAX_OOV_VOCAB = 100_000


def _re() -> tuple[Any, Any]:
    import regex

    return regex.compile(WORD_RE), regex.compile(WS_RE)


_WORD, _WS = _re()


def _normalise(t: str) -> str:
    # "İ" first becomes "I": Python lowers it to "i" + combining dot, ortx StringLower does not
    return _WS.sub(" ", t.replace("\u0130", "I").lower())


def words(t: str) -> list[str]:
    return _WORD.findall(_normalise(t))


def word_ngrams(t: str, lo: int = 1, hi: int = 2) -> list[str]:
    toks = words(t)
    return [" ".join(toks[i:i + n]) for n in range(lo, hi + 1) for i in range(len(toks) - n + 1)]


def char_ngrams(t: str, lo: int = 2, hi: int = 5) -> list[str]:
    out: list[str] = []
    for w in _normalise(t).split(" "):
        if w:
            w = f" {w} "
            out += [w[i:i + n] for n in range(lo, hi + 1) for i in range(len(w) - n + 1)]
    return out


class NgramModel:
    """Word + char n-gram TF-IDF (sublinear or binary tf) and logistic regression (scikit-learn), exportable to ONNX.

    ``fit(texts, y, n_classes)`` with integer labels 0..K-1; ``predict_proba(texts)`` (N, K);
    ``to_onnx(class_names)`` the whole graph from raw strings. Learned state ends in ``_``.
    """

    def __init__(self, C: float = 8.0, *, max_word: int = 50_000, max_char: int = 100_000, min_df: int = 2,
                 sublinear: bool = True, seed: int = 0) -> None:
        self.C, self.max_word, self.max_char, self.min_df, self.seed = C, max_word, max_char, min_df, seed
        self.sublinear = sublinear

    # ------------------------------------------------------------------ training

    def _vectorizers(self, n_docs: int) -> tuple[Any, Any]:
        from sklearn.feature_extraction.text import TfidfVectorizer

        tf = dict(sublinear_tf=True) if self.sublinear else dict(binary=True)
        kw = dict(**tf, min_df=min(self.min_df, max(1, n_docs // 2)), lowercase=False, dtype=np.float32)
        return (TfidfVectorizer(analyzer=word_ngrams, max_features=self.max_word, **kw),
                TfidfVectorizer(analyzer=char_ngrams, max_features=self.max_char, **kw))

    def fit_features(self, texts: Sequence[str]) -> Any:
        """Fit the two vectorizers on ``texts``; their (N, Vw + Vc) sparse features."""
        import scipy.sparse as sp

        self.vecs_ = self._vectorizers(len(texts))
        X = sp.hstack([v.fit_transform(texts) for v in self.vecs_]).tocsr()
        counts = Counter(w for t in texts for w in set(words(t)))
        self.oov_vocab_ = [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_OOV_VOCAB]]
        return X

    def features(self, texts: Sequence[str]) -> Any:
        import scipy.sparse as sp

        return sp.hstack([v.transform(texts) for v in self.vecs_]).tocsr()

    def fit_classifier(self, X: Any, y: np.ndarray, n_classes: int) -> "NgramModel":
        from sklearn.linear_model import LogisticRegression

        clf = LogisticRegression(C=self.C, max_iter=2000, random_state=self.seed).fit(X, y)
        coef, b = clf.coef_.astype(np.float64), clf.intercept_.astype(np.float64)
        if coef.shape[0] == 1:  # binary: softmax logits [-z/2, z/2] give the same probabilities
            coef, b = np.vstack([-coef / 2, coef / 2]), np.array([-b[0] / 2, b[0] / 2])
        W = np.zeros((n_classes, coef.shape[1]))
        bias = np.full(n_classes, -1e3)  # a class absent from the training rows is never predicted
        W[clf.classes_.astype(int)] = coef
        bias[clf.classes_.astype(int)] = b
        self.W_, self.b_, self.n_classes_ = W, bias, n_classes
        return self

    def fit(self, texts: Sequence[str], y: np.ndarray, n_classes: int) -> "NgramModel":
        return self.fit_classifier(self.fit_features(texts), y, n_classes)

    def proba_from_features(self, X: Any) -> np.ndarray:
        z = np.asarray(X @ self.W_.T) + self.b_
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return self.proba_from_features(self.features(texts))

    def oov_share(self, texts: Sequence[str]) -> np.ndarray:
        vocab = set(self.oov_vocab_)
        out = []
        for t in texts:
            toks = words(t)
            out.append(sum(w not in vocab for w in toks) / len(toks) if toks else 1.0)
        return np.asarray(out, dtype=np.float32)

    @property
    def n_features_(self) -> int:
        return sum(len(v.vocabulary_) for v in self.vecs_)

    def describe(self) -> dict[str, Any]:
        return {"C": self.C, "tf": "sublinear" if self.sublinear else "binary", "word_features": len(self.vecs_[0].vocabulary_),
                "char_features": len(self.vecs_[1].vocabulary_), "oov_vocabulary": len(self.oov_vocab_)}

    # ------------------------------------------------------------------ ONNX

    def to_onnx(self, class_names: Sequence[str], *, prefix: str = "") -> ModelProto:
        """text (N, 1) -> label (N,), probabilities (N, K), ood_score (N,). Every name but the input
        ``text`` starts with ``prefix`` (outputs too: ``ng/probabilities`` inside an ensemble)."""
        P = prefix
        inits: list[TensorProto] = []
        nodes: list[Any] = []

        def S(name: str, vals: Sequence[str]) -> None:
            inits.append(helper.make_tensor(P + name, TensorProto.STRING, [len(vals)], [v.encode() for v in vals]))

        def A(name: str, arr: Any) -> None:
            inits.append(numpy_helper.from_array(np.asarray(arr), P + name))

        def N(op: str, ins: Sequence[str], outs: Sequence[str], **kw: Any) -> None:
            nodes.append(helper.make_node(op, [i if i == "text" else P + i for i in ins], [P + o for o in outs],
                                          name=f"{P}ngram/{outs[0]}", **kw))

        A("minus1", np.array([-1], np.int64))
        A("tiny", np.array(1e-24, np.float32))
        A("one", np.array(1.0, np.float32))
        S("ws", [WS_RE])
        S("sp", [" "])
        S("sp2", ["  "])
        S("all", ["^(.*)$"])
        S("wrap", [" \\1 "])
        S("dummy", ["a"])
        S("dotted_i", ["\u0130"])
        S("cap_i", ["I"])
        A("zero1", np.array([0], np.int64))
        # one dummy row ("a") after the N real ones keeps every shape defined (N = 0, rows without a word);
        # the outputs are sliced back to the first N rows
        N("Reshape", ["text", "minus1"], ["flat0"])
        N("Shape", ["flat0"], ["n_rows"])
        N("Concat", ["flat0", "dummy"], ["flat1"], axis=0)
        N("StringRegexReplace", ["flat1", "dotted_i", "cap_i"], ["flat"], domain=CONTRIB, global_replace=1)
        N("StringLower", ["flat"], ["low"], domain=CONTRIB)
        N("StringRegexReplace", ["low", "ws", "sp"], ["norm"], domain=CONTRIB, global_replace=1)
        N("StringRegexReplace", ["norm", "sp", "sp2"], ["c1"], domain=CONTRIB, global_replace=1)
        N("StringRegexReplace", ["c1", "all", "wrap"], ["c3"], domain=CONTRIB, global_replace=0)
        N("Tokenizer", ["norm"], ["w_tok"], domain=MS, mark=0, mincharnum=1, pad_value=PAD_TOKEN, tokenexp=WORD_RE)
        N("Tokenizer", ["c3"], ["c_tok"], domain=MS, mark=0, mincharnum=1, pad_value=PAD_TOKEN, tokenexp=".")
        blocks = []
        offset = 0
        for name, vec, (lo, hi), sep in (("w", self.vecs_[0], (1, 2), " "), ("c", self.vecs_[1], (2, 5), None)):
            pool, counts, indexes = _pool(vec.vocabulary_, hi, sep)
            V = len(vec.vocabulary_)
            Wb = self.W_[:, offset:offset + V].T * vec.idf_[:, None]  # (V, K): idf * W
            offset += V
            if self.sublinear:
                N("TfIdfVectorizer", [f"{name}_tok"], [f"{name}_c"], mode="TF", min_gram_length=lo,
                  max_gram_length=hi, max_skip_count=0, ngram_counts=counts, ngram_indexes=indexes,
                  pool_strings=pool)
                N("Max", [f"{name}_c", "one"], [f"{name}_c1"])
                N("Log", [f"{name}_c1"], [f"{name}_lc"])
                N("Min", [f"{name}_c", "one"], [f"{name}_nz"])
                N("Add", [f"{name}_lc", f"{name}_nz"], [f"{name}_x"])  # 1 + log(c) where c >= 1, else 0
                N("Mul", [f"{name}_x", f"{name}_x"], [f"{name}_x2"])
                A(f"{name}_W", Wb.astype(np.float32))  # (V, K)
                A(f"{name}_idf2", (vec.idf_ ** 2)[:, None].astype(np.float32))  # (V, 1)
                N("MatMul", [f"{name}_x", f"{name}_W"], [f"{name}_z"])
                N("MatMul", [f"{name}_x2", f"{name}_idf2"], [f"{name}_n2"])
            else:
                N("TfIdfVectorizer", [f"{name}_tok"], [f"{name}_x"], mode="IDF", weights=[1.0] * len(indexes),
                  min_gram_length=lo, max_gram_length=hi, max_skip_count=0, ngram_counts=counts,
                  ngram_indexes=indexes, pool_strings=pool)
                A(f"{name}_Wn", np.hstack([Wb, (vec.idf_ ** 2)[:, None]]).astype(np.float32))  # (V, K + 1)
                A(f"{name}_split", np.array([Wb.shape[1], 1], np.int64))
                N("MatMul", [f"{name}_x", f"{name}_Wn"], [f"{name}_zn"])
                N("Split", [f"{name}_zn", f"{name}_split"], [f"{name}_z", f"{name}_n2"], axis=1)
            N("Max", [f"{name}_n2", "tiny"], [f"{name}_n2c"])
            N("Sqrt", [f"{name}_n2c"], [f"{name}_n"])
            N("Div", [f"{name}_z", f"{name}_n"], [f"{name}_v"])
            blocks.append(f"{name}_v")
        A("b", self.b_.astype(np.float32))
        N("Add", blocks, ["z"])
        N("Add", ["z", "b"], ["logits"])
        N("Softmax", ["logits"], ["proba_all"], axis=1)
        N("Slice", ["proba_all", "zero1", "n_rows", "zero1"], ["probabilities"])
        S("classes", [str(c) for c in class_names])
        N("ArgMax", ["probabilities"], ["idx"], axis=1, keepdims=0)
        N("Gather", ["classes", "idx"], ["label"], axis=0)
        # ood_score: share of word tokens not in the training vocabulary. One TF vectorizer over the
        # vocabulary plus the Tokenizer's pad token counts known words and padding per row; the row's
        # token count is the padded width minus its pads (Equal on strings needs opset 19).
        vocab = list(self.oov_vocab_) + [PAD_TOKEN]
        N("TfIdfVectorizer", ["w_tok"], ["oov_tf"], mode="TF", min_gram_length=1, max_gram_length=1,
          max_skip_count=0, ngram_counts=[0], ngram_indexes=list(range(len(vocab))), pool_strings=vocab)
        A("oov_split", np.array([len(vocab) - 1, 1], np.int64))
        A("axis1", np.array([1], np.int64))
        A("one_i", np.array([1], np.int64))
        N("Split", ["oov_tf", "oov_split"], ["oov_known", "oov_pads"], axis=1)
        N("ReduceSum", ["oov_known", "axis1"], ["known"], keepdims=0)
        N("Squeeze", ["oov_pads", "axis1"], ["pads"])
        N("Shape", ["w_tok"], ["tok_shape"])
        N("Gather", ["tok_shape", "one_i"], ["width_i"], axis=0)
        N("Cast", ["width_i"], ["width"], to=TensorProto.FLOAT)
        N("Sub", ["width", "pads"], ["total"])
        N("Sub", ["total", "known"], ["unknown"])
        N("Max", ["total", "one"], ["total1"])
        N("Div", ["unknown", "total1"], ["share"])
        N("Less", ["total", "one"], ["no_words"])
        N("Where", ["no_words", "one", "share"], ["ood_all"])
        N("Slice", ["ood_all", "zero1", "n_rows", "zero1"], ["ood_score"])
        K = len(class_names)
        outputs = [helper.make_tensor_value_info(P + "label", TensorProto.STRING, ["N"]),
                   helper.make_tensor_value_info(P + "probabilities", TensorProto.FLOAT, ["N", K]),
                   helper.make_tensor_value_info(P + "ood_score", TensorProto.FLOAT, ["N"])]
        graph = helper.make_graph(nodes, "ngram_text_classifier",
                                  [helper.make_tensor_value_info("text", TensorProto.STRING, ["N", 1])], outputs,
                                  initializer=inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(CONTRIB, 1),
                                                       helper.make_opsetid(MS, 1)])


def _pool(vocabulary: dict[str, int], hi: int, sep: str | None) -> tuple[list[str], list[int], list[int]]:
    """TfIdfVectorizer's pool: n-grams grouped by n (1-grams first, even when absent), their items
    flattened; ``ngram_counts`` are start indexes into the pool items."""
    by_n: dict[int, list[tuple[str, int]]] = {n: [] for n in range(1, hi + 1)}
    for gram, idx in vocabulary.items():
        by_n[len(gram.split(" ")) if sep else len(gram)].append((gram, int(idx)))
    pool: list[str] = []
    counts: list[int] = []
    indexes: list[int] = []
    for n in range(1, hi + 1):
        counts.append(len(pool))
        for gram, idx in sorted(by_n[n]):
            pool += gram.split(" ") if sep else list(gram)
            indexes.append(idx)
    return pool, counts, indexes
