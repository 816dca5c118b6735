"""Transcription pieces: the character vocabulary, word/character error rates, the CTC acoustic model, greedy
decoding (numpy, for training-time checks) and the in-graph decoder (ONNX ops, for the package graph).

Transcripts are normalized before training and scoring (:func:`normalize`): lower case, anything but letters,
digits, apostrophes and spaces dropped, runs of spaces collapsed. The vocabulary is index 0 = the CTC blank, then
the characters of the normalized training transcripts in sorted order (the space among them).

WER / CER are the Levenshtein distance (``rapidfuzz.distance.Levenshtein`` on word lists / character strings)
summed over the clips, over the number of reference words / characters (the usual corpus-level definition).

Greedy decoding of CTC: per frame the argmax id; a frame equal to the frame before it or the blank is dropped;
spaces are collapsed and leading/trailing spaces removed. The package graph does the same in ONNX ops (see
:func:`decoder_nodes`): the collapse is an ``Equal`` on the argmax shifted by one frame, the characters a
``Gather`` from a string constant, and the join a ``Loop`` over frames of opset-20 ``StringConcat``, so the graph
outputs the text itself and the runtime needs no vocabulary.

Out of scope: 1 - the clip's CTC confidence (:func:`confidence_ood`, in the graph :func:`ood_nodes`), raised to 1
for silence or steady noise by the same log-mel level gates as keyword spotting (``_graph.level_gate``).
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np

__all__ = ["normalize", "build_vocab", "encode_targets", "greedy_decode", "wer", "cer", "error_rates",
           "CtcNet", "decoder_nodes", "confidence_ood", "ood_nodes", "BLANK"]

BLANK = ""  # the blank's entry in the vocabulary (decodes to nothing)
_DROP = re.compile(r"[^a-z0-9' ]+")


def normalize(text: Any) -> str:
    """A transcript as the model spells it: lower case, [a-z0-9' ] only, single spaces, stripped."""
    s = _DROP.sub(" ", str(text).lower())
    return " ".join(s.split())


def build_vocab(texts: Sequence[str]) -> list[str]:
    """["" (blank), then every character of the (normalized) ``texts``, sorted]."""
    chars = sorted({c for t in texts for c in t})
    return [BLANK] + chars


def encode_targets(texts: Sequence[str], vocab: Sequence[str]) -> np.ndarray:
    """(N, L) int64 ids, 0-padded (0 is the blank, never a target); characters not in ``vocab`` dropped."""
    index = {c: i for i, c in enumerate(vocab) if i}
    ids = [[index[c] for c in t if c in index] for t in texts]
    out = np.zeros((len(ids), max([len(i) for i in ids] + [1])), np.int64)
    for r, row in enumerate(ids):
        out[r, :len(row)] = row
    return out


def greedy_decode(ids: np.ndarray, vocab: Sequence[str]) -> list[str]:
    """(N, T) per-frame argmax ids -> texts: repeats and blanks dropped, spaces collapsed, stripped."""
    out = []
    for row in np.asarray(ids):
        keep = np.ones(len(row), bool)
        keep[1:] = row[1:] != row[:-1]
        keep &= row != 0
        out.append(" ".join("".join(vocab[i] for i in row[keep]).split()))
    return out


def error_rates(refs: Sequence[str], hyps: Sequence[str]) -> dict[str, Any]:
    """Corpus WER and CER (Levenshtein edits / reference words or characters), exact-match share, counts."""
    from rapidfuzz.distance import Levenshtein

    refs = [normalize(r) for r in refs]
    hyps = [normalize(h) for h in hyps]
    w_err = sum(Levenshtein.distance(r.split(), h.split()) for r, h in zip(refs, hyps))
    w_n = sum(len(r.split()) for r in refs)
    c_err = sum(Levenshtein.distance(r, h) for r, h in zip(refs, hyps))
    c_n = sum(len(r) for r in refs)
    return {"n": len(refs), "wer": float(w_err / w_n) if w_n else None, "cer": float(c_err / c_n) if c_n else None,
            "exact_match": float(np.mean([r == h for r, h in zip(refs, hyps)])) if refs else None,
            "reference_words": int(w_n)}


def wer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    return error_rates(refs, hyps)["wer"]


def cer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    return error_rates(refs, hyps)["cer"]


def _ctc_net() -> Any:
    import torch
    from torch import nn

    class _CtcNet(nn.Module):
        """log-mel (N, 1, T, M) -> 2 conv blocks (time / ``time_stride``, mel bands / 4) -> Linear -> bidirectional
        GRU -> per-frame logits (N, T', V) over the vocabulary (index 0 = blank)."""

        def __init__(self, n_mels: int, vocab_size: int, width: int = 16, hidden: int = 64, layers: int = 2,
                     dropout: float = 0.1, time_stride: int = 2, utterance_norm: bool = False,
                     recurrent: bool = True) -> None:
            super().__init__()
            self.utterance_norm = bool(utterance_norm)
            self.recurrent = bool(recurrent)
            second = 2 if time_stride == 4 else 1
            self.conv = nn.Sequential(
                nn.Conv2d(1, width, 3, stride=(2, 2), padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                nn.Conv2d(width, width, 3, stride=(second, 2), padding=1), nn.BatchNorm2d(width), nn.ReLU())
            bands = ((n_mels + 1) // 2 + 1) // 2
            self.proj = nn.Linear(width * bands, hidden)
            if self.recurrent:
                self.gru = nn.GRU(hidden, hidden, num_layers=layers, batch_first=True, bidirectional=True,
                                  dropout=dropout if layers > 1 else 0.0)
            else:  # conv-only: 2 x layers dilated 1-D convolutions over time (context doubling per layer)
                blocks: list[nn.Module] = []
                for i in range(2 * layers):
                    d = 2 ** i
                    blocks += [nn.Conv1d(hidden if i == 0 else 2 * hidden, 2 * hidden, 5, padding=2 * d, dilation=d),
                               nn.BatchNorm1d(2 * hidden), nn.ReLU()]
                self.tconv = nn.Sequential(*blocks)
            self.drop = nn.Dropout(dropout)
            self.out = nn.Linear(2 * hidden, vocab_size)
            self.spec_ = {"width": width, "hidden": hidden, "layers": layers, "bands": bands, "n_mels": n_mels,
                          "vocab": vocab_size, "dropout": dropout, "time_stride": 2 * second,
                          "utterance_norm": self.utterance_norm,
                          "sequence": "bidirectional GRU" if self.recurrent else "dilated 1-D convolutions"}

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.utterance_norm:  # each band minus its mean over the clip's frames (cepstral mean normalization)
                x = x - x.mean(dim=2, keepdim=True)
            z = self.conv(x)                                   # (N, C, T', B)
            z = z.permute(0, 2, 1, 3).flatten(2)               # (N, T', C x B)
            z = torch.relu(self.proj(z))
            if self.recurrent:
                z, _ = self.gru(z)                             # (N, T', 2H)
            else:
                z = self.tconv(z.transpose(1, 2)).transpose(1, 2)  # (N, T', 2H)
            return self.out(self.drop(z))                      # (N, T', V)

        def spec(self) -> dict[str, Any]:
            return dict(self.spec_)

        def flops(self, frames: int) -> int:
            s = self.spec_
            t1, m1 = (frames + 1) // 2, (s["n_mels"] + 1) // 2
            conv = 2 * 9 * s["width"] * t1 * m1
            t1 = (t1 + 1) // 2 if s["time_stride"] == 4 else t1
            conv += 2 * 9 * s["width"] ** 2 * t1 * s["bands"]
            h = s["hidden"]
            if self.recurrent:
                gru = sum(2 * 2 * 3 * ((h if i == 0 else 2 * h) + h) * h * t1 for i in range(s["layers"]))
            else:
                gru = sum(2 * 5 * (h if i == 0 else 2 * h) * 2 * h * t1 for i in range(2 * s["layers"]))
            return int(conv + 2 * s["width"] * s["bands"] * h * t1 + gru + 2 * 2 * h * s["vocab"] * t1)

    return _CtcNet


def CtcNet(n_mels: int, vocab_size: int, width: int = 16, hidden: int = 64, layers: int = 2,  # noqa: N802
           dropout: float = 0.1, time_stride: int = 2, utterance_norm: bool = False, recurrent: bool = True) -> Any:
    return _ctc_net()(n_mels, vocab_size, width, hidden, layers, dropout, time_stride, utterance_norm, recurrent)


def decoder_nodes(vocab: Sequence[str], ids: str = "ids", out: str = "text") -> tuple[list[Any], list[Any]]:
    """(nodes, initializers): ``ids`` int64 (N, T) per-frame argmax -> ``out`` string (N,), greedy CTC decoding.

    A frame is kept when it differs from the frame before it and is not the blank (``Equal`` with the ids
    shifted right by one, ``Where`` to the blank); kept ids become characters (``Gather`` from the vocabulary,
    the blank is ""); a ``Loop`` over frames appends them with ``StringConcat`` (opset 20), writing a space only
    between two words (a pending space is flushed before the next letter: no leading, trailing or double
    spaces)."""
    from onnx import TensorProto as TP
    from onnx import helper as h
    from onnx import numpy_helper as nh

    N = h.make_node
    body = h.make_graph(
        [N("Gather", ["dec_chars", "dec_i"], ["dec_c"], axis=1),
         N("Equal", ["dec_c", "dec_sp"], ["dec_is_sp"]),
         N("Equal", ["dec_c", "dec_empty"], ["dec_is_empty"]),
         N("Equal", ["dec_acc_in", "dec_empty"], ["dec_acc_empty"]),
         N("Not", ["dec_acc_empty"], ["dec_acc_has"]),
         N("Or", ["dec_is_sp", "dec_is_empty"], ["dec_skip"]),
         N("Not", ["dec_skip"], ["dec_is_char"]),
         N("And", ["dec_pend_in", "dec_is_char"], ["dec_need_sp"]),
         N("Where", ["dec_need_sp", "dec_sp", "dec_empty"], ["dec_pre"]),
         N("StringConcat", ["dec_pre", "dec_c"], ["dec_pc"]),
         N("Where", ["dec_is_char", "dec_pc", "dec_empty"], ["dec_add"]),
         N("StringConcat", ["dec_acc_in", "dec_add"], ["dec_acc_out"]),
         N("And", ["dec_is_sp", "dec_acc_has"], ["dec_sp_now"]),
         N("Not", ["dec_is_char"], ["dec_no_char"]),
         N("And", ["dec_pend_in", "dec_no_char"], ["dec_pend_keep"]),
         N("Or", ["dec_sp_now", "dec_pend_keep"], ["dec_pend_out"]),
         N("Identity", ["dec_cond_in"], ["dec_cond_out"])],
        "ctc_join",
        [h.make_tensor_value_info("dec_i", TP.INT64, []), h.make_tensor_value_info("dec_cond_in", TP.BOOL, []),
         h.make_tensor_value_info("dec_acc_in", TP.STRING, ["N"]),
         h.make_tensor_value_info("dec_pend_in", TP.BOOL, ["N"])],
        [h.make_tensor_value_info("dec_cond_out", TP.BOOL, []), h.make_tensor_value_info("dec_acc_out", TP.STRING, ["N"]),
         h.make_tensor_value_info("dec_pend_out", TP.BOOL, ["N"])],
        initializer=[h.make_tensor("dec_sp", TP.STRING, [], [b" "]), h.make_tensor("dec_empty", TP.STRING, [], [b""])])
    nodes = [
        N("Shape", [ids], ["dec_shape"]),
        N("Gather", ["dec_shape", "dec_zero"], ["dec_n"], axis=0),
        N("Gather", ["dec_shape", "dec_one"], ["dec_t"], axis=0),
        N("Unsqueeze", ["dec_n", "dec_zero1"], ["dec_n1"]),
        N("Concat", ["dec_n1", "dec_one1"], ["dec_n_1"], axis=0),
        N("Slice", [ids, "dec_zero1", "dec_minus1", "dec_one1"], ["dec_head"]),
        N("Expand", ["dec_blank2", "dec_n_1"], ["dec_blank_col"]),
        N("Concat", ["dec_blank_col", "dec_head"], ["dec_prev"], axis=1),
        N("Equal", [ids, "dec_prev"], ["dec_repeat"]),
        N("Where", ["dec_repeat", "dec_blank0", ids], ["dec_kept"]),
        N("Gather", ["dec_vocab", "dec_kept"], ["dec_chars"], axis=0),
        N("Expand", ["dec_empty1", "dec_n1"], ["dec_acc0"]),
        N("Expand", ["dec_false1", "dec_n1"], ["dec_pend0"]),
        N("Loop", ["dec_t", "", "dec_acc0", "dec_pend0"], [out, "dec_pend_last"], body=body, name="dec_loop"),
    ]
    inits = [nh.from_array(np.array(0, np.int64), "dec_zero"), nh.from_array(np.array(1, np.int64), "dec_one"),
             nh.from_array(np.array([0], np.int64), "dec_zero1"), nh.from_array(np.array([1], np.int64), "dec_one1"),
             nh.from_array(np.array([-1], np.int64), "dec_minus1"),
             nh.from_array(np.array([[0]], np.int64), "dec_blank2"), nh.from_array(np.array(0, np.int64), "dec_blank0"),
             h.make_tensor("dec_vocab", TP.STRING, [len(vocab)], [str(v).encode() for v in vocab]),
             h.make_tensor("dec_empty1", TP.STRING, [1], [b""]), h.make_tensor("dec_false1", TP.BOOL, [1], [False])]
    return nodes, inits


def confidence_ood(logits: np.ndarray) -> np.ndarray:
    """(N, T', V) per-frame logits -> (N,) 1 - the clip's CTC confidence: the mean, over the frames whose most
    likely symbol is a character (not the blank), of that symbol's posterior; over all frames when every frame is
    blank. A clip the model hears as its training speech scores near 0; one whose characters it is unsure of,
    higher. The graph computes the same (:func:`ood_nodes`)."""
    z = np.asarray(logits, np.float64)
    z = np.exp(z - z.max(axis=2, keepdims=True))
    best = (z / z.sum(axis=2, keepdims=True)).max(axis=2)  # (N, T')
    emits = (np.asarray(logits).argmax(axis=2) != 0).astype(np.float64)
    n = emits.sum(axis=1)
    conf = np.where(n > 0, (best * emits).sum(axis=1) / np.maximum(n, 1), best.mean(axis=1))
    return (1.0 - conf).astype(np.float32)


def ood_nodes(logits: str = "logits", ids: str = "ids", out: str = "ctc_ood") -> tuple[list[Any], list[Any]]:
    """(nodes, initializers): ``logits`` (N, T', V) and their per-frame ArgMax ``ids`` (N, T') -> ``out`` (N,),
    :func:`confidence_ood` in ONNX ops (Softmax, ReduceMax, a mask of the non-blank frames, Where)."""
    from onnx import TensorProto as TP
    from onnx import helper as h

    from .._graph import masked_mean

    N = h.make_node
    emitted, conf_on, n_on = masked_mean("ctc_best", "ctc_emits_b", "ctc_axis1", "ctc_one", "ctc_emitted_")
    nodes = [N("Softmax", [logits], ["ctc_post"], axis=2),
             N("ReduceMax", ["ctc_post", "ctc_axis2"], ["ctc_best"], keepdims=0),  # (N, T')
             N("Equal", [ids, "ctc_blank"], ["ctc_is_blank"]),
             N("Not", ["ctc_is_blank"], ["ctc_emits_b"]),
             *emitted,  # the mean best posterior over the frames that write a character
             N("ReduceMean", ["ctc_best", "ctc_axis1"], ["ctc_conf_all"], keepdims=0),
             N("Greater", [n_on, "ctc_zero"], ["ctc_any"]),
             N("Where", ["ctc_any", conf_on, "ctc_conf_all"], ["ctc_conf"]),
             N("Sub", ["ctc_one", "ctc_conf"], [out])]
    inits = [h.make_tensor("ctc_axis1", TP.INT64, [1], [1]), h.make_tensor("ctc_axis2", TP.INT64, [1], [2]),
             h.make_tensor("ctc_blank", TP.INT64, [], [0]), h.make_tensor("ctc_one", TP.FLOAT, [], [1.0]),
             h.make_tensor("ctc_zero", TP.FLOAT, [], [0.0])]
    return nodes, inits
