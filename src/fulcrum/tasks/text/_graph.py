"""One ONNX graph from raw strings for the MiniLM model, and the ensemble of both models in one graph.

MiniLM graph::

    text (N, 1) string -> Reshape (N,) -> ortx StringRegexReplace (drop control/format chars and U+FFFD,
      as the Hugging Face BERT normalizer's clean_text does; ortx would map them to [UNK])
      -> Loop over rows { Gather row -> ortx BertTokenizer(vocab, lower, strip accents, max_length)
                          -> Pad to max_length }             (the op takes one string per call)
      -> trim to the longest row (ReduceMax + Slice); attention_mask = Range(T) < length
      -> MiniLM encoder + masked mean pooling + Linear + Softmax          (torch.onnx.export)
         fused by ONNX Runtime's transformer optimizer (:func:`fuse_encoder`): EmbedLayerNormalization,
         one Attention per block, SkipLayerNormalization, BiasGelu (com.microsoft, built into onnxruntime)
      -> probabilities (N, K); ArgMax -> Gather(class names) -> label (N,)
      -> ood_score (N,) = 1 - max cosine(embedding, class centroid of normalised training embeddings)

Known differences from the Hugging Face tokenizer: ortx does not NFD-decompose, so accents outside
Latin-1 (Japanese dakuten, Cyrillic й, Greek tonos, Hangul syllables) are not stripped the same way;
on 57,220 real English texts (four datasets) the ids were identical.

The fused operators are what makes the int8 variant fast: dynamic quantization turns each Attention
into QAttention and each remaining MatMul into DynamicQuantizeMatMul (see ``_variants.INT8_PARAMS``).
The sequence axis stays dynamic: a batch is cut to its longest row, so one text is never padded.

It runs with plain ``onnxruntime`` after ``SessionOptions.register_custom_ops_library(
onnxruntime_extensions.get_library_path())`` (see :func:`session`). Pitfalls avoided: ortx stops
reading a string at NUL (the input codec refuses NUL); ``gen_processing_models`` sets
``strip_accents=0`` for this tokenizer and no max_length, so the node is written here.

The ensemble graph holds both branches, fed by the same ``text``: probabilities = w * MiniLM + (1 - w) * n-gram,
label from their argmax, ood_score from the MiniLM branch.
"""

from __future__ import annotations

import io
import warnings
from typing import Any, Sequence

import numpy as np
import onnx
import torch
from onnx import ModelProto, TensorProto, helper, numpy_helper

__all__ = ["session", "tokenizer_nodes", "export_encoder_head", "fuse_encoder", "FUSED_OPS", "MS_DOMAIN", "minilm_graph", "ensemble_graph", "run_graph",
           "EncoderHead", "CLEAN_PATTERN", "CONTRIB", "OPSET"]

CONTRIB = "ai.onnx.contrib"
MS_DOMAIN = "com.microsoft"
# what fuse_encoder leaves in an n-layer encoder: op type -> count per layer (None: exactly one in all)
FUSED_OPS: dict[str, int | None] = {"EmbedLayerNormalization": None, "Attention": 1, "BiasGelu": 1,
                                     "LayerNormalization": 2, "Sum": 2}
OPSET = 17
# Hugging Face BertNormalizer.clean_text drops NUL, U+FFFD and control/format characters (tab, LF, CR stay
# as whitespace); RE2 syntax for ortx StringRegexReplace.
CLEAN_PATTERN = r"[\x{0}-\x{8}\x{B}\x{C}\x{E}-\x{1F}\x{7F}-\x{9F}\p{Cf}\x{FFFD}]"


def session(model: ModelProto | bytes | str, threads: int = 1, optimize: bool = True) -> Any:
    """An onnxruntime session with the onnxruntime-extensions operators registered."""
    import onnxruntime as ort
    from onnxruntime_extensions import get_library_path

    so = ort.SessionOptions()
    so.register_custom_ops_library(get_library_path())
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    src = model.SerializeToString() if isinstance(model, ModelProto) else model
    return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


def run_graph(sess: Any, texts: Sequence[str], batch_size: int = 64) -> dict[str, np.ndarray]:
    """Every output of ``sess`` for ``texts``, run in batches of similar length (less padding)."""
    names = [o.name for o in sess.get_outputs()]
    texts = list(texts)
    order = np.argsort([len(t) for t in texts], kind="stable")
    parts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {n: [] for n in names}
    for start in range(0, len(texts), batch_size):
        idx = order[start:start + batch_size]
        feed = {"text": np.asarray([texts[i] for i in idx], dtype=object).reshape(-1, 1)}
        for n, v in zip(names, sess.run(names, feed)):
            parts[n].append((idx, v))
    out: dict[str, np.ndarray] = {}
    for n, chunks in parts.items():
        if not chunks:
            continue
        first = chunks[0][1]
        full = np.empty((len(texts),) + first.shape[1:], dtype=first.dtype)
        for idx, v in chunks:
            full[idx] = v
        out[n] = full
    return out


def tokenizer_nodes(vocab_text: str, max_len: int, prefix: str = "tk/") -> tuple[list[Any], list[TensorProto]]:
    """Nodes + initializers turning ``text`` (N, 1) into ``input_ids`` / ``attention_mask`` (N, T),
    T = the longest row (at most ``max_len``)."""
    P = prefix

    def C(name: str, arr: Any) -> TensorProto:
        return numpy_helper.from_array(np.asarray(arr), P + name)

    inits = [C("minus1", np.array([-1], np.int64)), C("maxlen", np.array([max_len], np.int64)),
             C("zero1", np.array([0], np.int64)), C("zero", np.array(0, np.int64)), C("one", np.array(1, np.int64)),
             C("one1", np.array([1], np.int64)), C("axis0", np.array([0], np.int64)),
             helper.make_tensor(P + "pat", TensorProto.STRING, [1], [CLEAN_PATTERN.encode()]),
             helper.make_tensor(P + "rep", TensorProto.STRING, [1], [b""]),
             helper.make_tensor(P + "dotted_i", TensorProto.STRING, [1], ["\u0130".encode()]),
             helper.make_tensor(P + "cap_i", TensorProto.STRING, [1], [b"I"])]
    body = helper.make_graph(
        [helper.make_node("Gather", [P + "flat", P + "i"], [P + "s"], axis=0),
         helper.make_node("Unsqueeze", [P + "s", P + "axis0"], [P + "s1"]),
         helper.make_node("BertTokenizer", [P + "s1"], [P + "ids", P + "tt", P + "am"], domain=CONTRIB,
                          vocab_file=vocab_text, do_lower_case=1, strip_accents=1, max_length=max_len),
         helper.make_node("Shape", [P + "ids"], [P + "L"]),
         helper.make_node("Sub", [P + "maxlen", P + "L"], [P + "padn"]),
         helper.make_node("Concat", [P + "zero1", P + "padn"], [P + "pads"], axis=0),
         helper.make_node("Pad", [P + "ids", P + "pads"], [P + "ids_row"], mode="constant"),
         helper.make_node("Identity", [P + "cond"], [P + "cond_out"]),
         helper.make_node("Identity", [P + "L"], [P + "len_row"])],
        "tokenize_row",
        [helper.make_tensor_value_info(P + "i", TensorProto.INT64, []),
         helper.make_tensor_value_info(P + "cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info(P + "cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info(P + "ids_row", TensorProto.INT64, [max_len]),
         helper.make_tensor_value_info(P + "len_row", TensorProto.INT64, [1])])
    nodes = [
        helper.make_node("Reshape", ["text", P + "minus1"], [P + "raw"]),
        helper.make_node("StringRegexReplace", [P + "raw", P + "pat", P + "rep"], [P + "clean"], domain=CONTRIB,
                         global_replace=1),
        # "İ" lowers to "i" + combining dot in Python/HF (then accent-stripped to "i"); ortx would give [UNK]
        helper.make_node("StringRegexReplace", [P + "clean", P + "dotted_i", P + "cap_i"], [P + "flat"], domain=CONTRIB,
                         global_replace=1),
        helper.make_node("Shape", [P + "flat"], [P + "n1"]),
        helper.make_node("Squeeze", [P + "n1", P + "axis0"], [P + "n"]),
        helper.make_node("Loop", [P + "n", ""], [P + "ids_all", P + "lens2"], body=body),
        helper.make_node("Reshape", [P + "lens2", P + "minus1"], [P + "lens"]),
        # an empty batch has no longest row: max over [lens, 1] keeps T >= 1 and the graph valid
        helper.make_node("Concat", [P + "lens", P + "one1"], [P + "lens_1"], axis=0),
        helper.make_node("ReduceMax", [P + "lens_1"], [P + "T"], keepdims=0),
        helper.make_node("Unsqueeze", [P + "T", P + "axis0"], [P + "T1"]),
        helper.make_node("Slice", [P + "ids_all", P + "zero1", P + "T1", P + "one1"], ["input_ids"]),
        helper.make_node("Range", [P + "zero", P + "T", P + "one"], [P + "pos"]),
        helper.make_node("Unsqueeze", [P + "pos", P + "axis0"], [P + "pos2"]),
        helper.make_node("Unsqueeze", [P + "lens", P + "one1"], [P + "lens_col"]),
        helper.make_node("Less", [P + "pos2", P + "lens_col"], [P + "mask_b"]),
        helper.make_node("Cast", [P + "mask_b"], ["attention_mask"], to=TensorProto.INT64),
    ]
    return nodes, inits


class EncoderHead(torch.nn.Module):
    """ids, mask -> (probabilities (B, K), ood_score (B,)): encoder, linear head, centroid distance."""

    def __init__(self, encoder: torch.nn.Module, weight: np.ndarray, bias: np.ndarray, centroids: np.ndarray) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = torch.nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.head.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
            self.head.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
        self.register_buffer("centroids_t", torch.as_tensor(np.asarray(centroids, np.float32).T.copy()))  # (H, K)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e = self.encoder(input_ids, attention_mask)  # (B, H)
        probs = torch.softmax(self.head(e), dim=-1)  # (B, K)
        cos = torch.nn.functional.normalize(e, dim=-1) @ self.centroids_t  # (B, K) cosine to each centroid
        return probs, 1.0 - cos.max(dim=-1).values


def export_encoder_head(module: EncoderHead, fuse: bool = True) -> ModelProto:
    """input_ids, attention_mask -> probabilities, ood_score (legacy TorchScript exporter, opset 17:
    3-15 s here against ~30 s for dynamo, and the same parity), fused by :func:`fuse_encoder` unless
    ``fuse=False``."""
    ids = torch.tensor([[101, 7592, 2088, 102], [101, 2460, 102, 0]])
    mask = (ids > 0).long()
    buf = io.BytesIO()
    module = module.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (ids, mask), buf, dynamo=False, opset_version=OPSET,
                          input_names=["input_ids", "attention_mask"], output_names=["probabilities", "ood_score"],
                          dynamic_axes={"input_ids": {0: "N", 1: "T"}, "attention_mask": {0: "N", 1: "T"},
                                        "probabilities": {0: "N"}, "ood_score": {0: "N"}})
    model = onnx.load_from_string(buf.getvalue())
    if not fuse:
        return model
    cfg = module.encoder.config
    return fuse_encoder(model, int(cfg["num_attention_heads"]), int(cfg["hidden_size"]), int(cfg["num_hidden_layers"]))


def fuse_encoder(model: ModelProto, num_heads: int, hidden_size: int, n_layers: int) -> ModelProto:
    """The exported encoder + head with ONNX Runtime's BERT fusions (Python pass only, ``opt_level=0``, so
    the result is still a portable graph for any CPU): one EmbedLayerNormalization, and per block one
    Attention (QAttention once quantized), a BiasGelu and two residual ``Sum -> LayerNormalization``.

    The residuals are first fused into SkipLayerNormalization and then written back as Sum(x, skip, bias)
    + LayerNormalization: at batch 1 (about 30 tokens) onnxruntime 1.32's CPU SkipLayerNormalization kernel
    took ~70 us a call against ~13 + 13 us for Sum + LayerNormalization, 15% of the int8 graph's time.
    ``Sum`` rather than ``Add`` because onnxruntime re-fuses Add + LayerNormalization when a session loads.

    Each fusion keeps the graph's results; if some do not match (an encoder or onnxruntime change), the
    graph is still right but slower, and a warning says so."""
    import logging

    from onnxruntime.transformers.optimizer import optimize_model

    src = onnx.ModelProto()
    src.CopyFrom(model)
    quiet = logging.getLogger("onnxruntime.transformers")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # per-fusion info lines
    try:
        fused = optimize_model(src, model_type="bert", num_heads=num_heads, hidden_size=hidden_size, opt_level=0,
                               use_gpu=False).model
    finally:
        quiet.setLevel(level)
    _unfuse_skip_layer_norm(fused)
    counts: dict[str, int] = {}
    for node in fused.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    want = {op: n_layers * per if per else 1 for op, per in FUSED_OPS.items()}
    if any(counts.get(op, 0) != n for op, n in want.items()):
        warnings.warn(f"ONNX Runtime's transformer optimizer did not fuse the MiniLM encoder fully (wanted {want}, "
                      f"got { {op: counts.get(op, 0) for op in want} }): the graph is right but slower.", stacklevel=2)
    if not any(o.domain == MS_DOMAIN for o in fused.opset_import):
        fused.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    return fused


def _unfuse_skip_layer_norm(model: ModelProto) -> None:
    """SkipLayerNormalization(x, skip, gamma, beta[, bias]) -> Sum(x, skip[, bias]) -> LayerNormalization, in place."""
    nodes = []
    for n in model.graph.node:
        if n.op_type != "SkipLayerNormalization" or any(o for o in n.output[1:]):
            nodes.append(n)
            continue
        eps = next((a.f for a in n.attribute if a.name == "epsilon"), 1e-12)
        terms = [n.input[0], n.input[1]] + [b for b in n.input[4:5] if b]
        nodes += [helper.make_node("Sum", terms, [n.output[0] + "/sum"], name=n.name + "/sum"),
                  helper.make_node("LayerNormalization", [n.output[0] + "/sum", n.input[2], n.input[3]], [n.output[0]],
                                   name=n.name + "/ln", axis=-1, epsilon=eps)]
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def _rename_outputs(model: ModelProto, mapping: dict[str, str]) -> None:
    for node in model.graph.node:
        node.output[:] = [mapping.get(o, o) for o in node.output]
        node.input[:] = [mapping.get(i, i) for i in node.input]
    for out in model.graph.output:
        out.name = mapping.get(out.name, out.name)


def _label_nodes(probs: str, labels: Sequence[str], prefix: str) -> tuple[list[Any], list[TensorProto]]:
    names = helper.make_tensor(prefix + "class_names", TensorProto.STRING, [len(labels)], [str(c).encode() for c in labels])
    return [helper.make_node("ArgMax", [probs], [prefix + "label_idx"], axis=1, keepdims=0),
            helper.make_node("Gather", [prefix + "class_names", prefix + "label_idx"], ["label"], axis=0)], [names]


def _outputs(k: int) -> list[Any]:
    return [helper.make_tensor_value_info("label", TensorProto.STRING, ["N"]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", k]),
            helper.make_tensor_value_info("ood_score", TensorProto.FLOAT, ["N"])]


def _opsets(*models: ModelProto) -> list[Any]:
    ops: dict[str, int] = {"": OPSET, CONTRIB: 1}
    for m in models:
        for o in m.opset_import:
            ops[o.domain] = max(ops.get(o.domain, 0), o.version)
    return [helper.make_opsetid(d, v) for d, v in sorted(ops.items())]


def _minilm_parts(encoder_head: ModelProto, vocab_text: str, max_len: int, out_prefix: str) -> tuple[list[Any], list[TensorProto], list[Any]]:
    enc = onnx.ModelProto()
    enc.CopyFrom(encoder_head)
    _rename_outputs(enc, {"probabilities": out_prefix + "probabilities", "ood_score": out_prefix + "ood_score"})
    tnodes, tinits = tokenizer_nodes(vocab_text, max_len)
    return tnodes + list(enc.graph.node), tinits + list(enc.graph.initializer), list(enc.graph.value_info)


def minilm_graph(encoder_head: ModelProto, vocab_text: str, labels: Sequence[str], max_len: int) -> ModelProto:
    """text (N, 1) -> label, probabilities, ood_score: the tokenizer loop before ``encoder_head``."""
    nodes, inits, vinfo = _minilm_parts(encoder_head, vocab_text, max_len, "mi/")
    lnodes, linits = _label_nodes("mi/probabilities", labels, "out/")
    nodes += [helper.make_node("Identity", ["mi/probabilities"], ["probabilities"]),
              helper.make_node("Identity", ["mi/ood_score"], ["ood_score"])] + lnodes
    graph = helper.make_graph(nodes, "minilm_text_classifier",
                              [helper.make_tensor_value_info("text", TensorProto.STRING, ["N", 1])], _outputs(len(labels)),
                              initializer=inits + linits, value_info=vinfo)
    model = helper.make_model(graph, opset_imports=_opsets(encoder_head), ir_version=encoder_head.ir_version)
    model.functions.extend(encoder_head.functions)
    return model


def ensemble_graph(encoder_head: ModelProto, ngram: ModelProto, vocab_text: str, labels: Sequence[str], max_len: int,
                   weight: float) -> ModelProto:
    """Both branches from the same ``text``: probabilities = weight * MiniLM + (1 - weight) * n-gram.
    ``ngram`` must be built with ``prefix="ng/"``."""
    nodes, inits, vinfo = _minilm_parts(encoder_head, vocab_text, max_len, "mi/")
    nodes += list(ngram.graph.node)
    inits += list(ngram.graph.initializer)
    inits += [numpy_helper.from_array(np.array(weight, np.float32), "ens/w"),
              numpy_helper.from_array(np.array(1.0 - weight, np.float32), "ens/w_ng")]
    nodes += [helper.make_node("Mul", ["mi/probabilities", "ens/w"], ["ens/p_mi"]),
              helper.make_node("Mul", ["ng/probabilities", "ens/w_ng"], ["ens/p_ng"]),
              helper.make_node("Add", ["ens/p_mi", "ens/p_ng"], ["probabilities"]),
              helper.make_node("Identity", ["mi/ood_score"], ["ood_score"])]
    lnodes, linits = _label_nodes("probabilities", labels, "out/")
    graph = helper.make_graph(nodes + lnodes, "ensemble_text_classifier",
                              [helper.make_tensor_value_info("text", TensorProto.STRING, ["N", 1])], _outputs(len(labels)),
                              initializer=inits + linits, value_info=vinfo)
    model = helper.make_model(graph, opset_imports=_opsets(encoder_head, ngram), ir_version=encoder_head.ir_version)
    model.functions.extend(encoder_head.functions)
    return model
