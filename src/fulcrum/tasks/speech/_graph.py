"""The speech graph: float PCM in, class probabilities and label out.

::

    audio  float32 (N, S)   mono PCM at 16 kHz in [-1, 1], S = seconds x 16000 (the codec decodes, resamples
                            and cuts/pads; see _data.py)
      -> log-mel front end (_features.frontend_nodes: Gather frames, DFT MatMuls, power, mel MatMul, Log,
         per-band (x - mean) / std of the training split)
      -> logmel (N, 1, T, n_mels)    the edge static int8 starts from (the front end stays float)
      -> the CNN (torch.onnx.export, BatchNorm folded; (x - mean) / std inside) -> logits, features
      -> Softmax -> probabilities (N, K); ArgMax -> Gather -> label (N,)
      -> ood_score (N,): 1 - max cosine(features, class centroid), or 1 for
         silence: the clip's loudest log-mel value (normalization undone, read from the ``logmel`` edge) under
             ``silence_level`` (set at training: 30 dB under the quietest training clip's), or
         steady sound (hiss, hum, a tone): its loudest frame's log energy less the mean of its sounding frames'
             (those over ``silence_level``) under ``steady_level`` (half the training clips' 1st percentile);
         words rise and fall, steady noise does not (see _fit.clip_levels, the same figures in numpy)
"""

from __future__ import annotations

import io
import warnings
from typing import Any, Sequence

import numpy as np

from .._graph import class_head_initializers, cpu_session, finish_model, masked_mean

from ._features import FeatureParams, frontend_nodes

__all__ = ["OPSET", "EDGE", "export_cnn", "full_graph", "level_gate", "session", "run_graph"]

OPSET = 18
EDGE = "logmel"


def export_cnn(module: Any, p: FeatureParams) -> Any:
    import onnx
    import torch

    module = module.eval()
    x = torch.randn(2, 1, p.frames, p.n_mels)
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), buf, dynamo=False, opset_version=OPSET, input_names=[EDGE],
                          output_names=["logits", "features"],
                          dynamic_axes={EDGE: {0: "N"}, "logits": {0: "N"}, "features": {0: "N"}})
    return _constants_to_initializers(onnx.load_from_string(buf.getvalue()))


def _constants_to_initializers(model: Any) -> Any:
    """Constant nodes (e.g. ReduceMean's axes over time) become initializers, so the graph splits cleanly at the
    ``logmel`` edge for static int8 (a node-made constant reads as a tensor from before the edge)."""
    from onnx import helper

    keep = []
    for node in model.graph.node:
        attr = {a.name: a for a in node.attribute}
        if node.op_type == "Constant" and "value" in attr:
            t = helper.get_attribute_value(attr["value"])
            t.name = node.output[0]
            model.graph.initializer.append(t)
        else:
            keep.append(node)
    del model.graph.node[:]
    model.graph.node.extend(keep)
    return model


def full_graph(cnn: Any, p: FeatureParams, labels: Sequence[str], centroids: np.ndarray, band_mean: Any = None,
               band_std: Any = None, silence_level: float | None = None, steady_level: float | None = None) -> Any:
    from onnx import TensorProto, helper

    k = len(labels)
    N = helper.make_node
    fe_nodes, fe_inits = frontend_nodes(p, "audio", EDGE, band_mean, band_std)
    tail = [N("Softmax", ["logits"], ["probabilities"], axis=1),
            N("ArgMax", ["probabilities"], ["label_idx"], axis=1, keepdims=0),
            N("Gather", ["class_names", "label_idx"], ["label"], axis=0),
            N("ReduceL2", ["features", "axis1"], ["fnorm"], keepdims=1),
            N("Max", ["fnorm", "eps"], ["fnorm_safe"]),
            N("Div", ["features", "fnorm_safe"], ["funit"]),
            N("MatMul", ["funit", "centroids_t"], ["cosines"]),
            N("ReduceMax", ["cosines", "axis1"], ["best_cos"], keepdims=0),
            N("Sub", ["one_f", "best_cos"], ["ood_score" if silence_level is None else "embedding_ood"])]
    gate: list[Any] = []
    if silence_level is not None:  # silence and steady noise are out of scope whatever the CNN makes of them: 1
        gate_nodes, gate = level_gate(p, EDGE, band_mean, band_std, silence_level, steady_level, "embedding_ood")
        tail += gate_nodes
    inits = fe_inits + list(cnn.graph.initializer) + gate + class_head_initializers(labels, centroids)
    graph = helper.make_graph(
        fe_nodes + list(cnn.graph.node) + tail, "fulcrum_speech",
        [helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["N", p.samples])],
        [helper.make_tensor_value_info("label", TensorProto.STRING, ["N"]),
         helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", k]),
         helper.make_tensor_value_info("ood_score", TensorProto.FLOAT, ["N"])],
        initializer=inits)
    return finish_model(graph, {"": OPSET})


def level_gate(p: FeatureParams, edge: str, band_mean: Any, band_std: Any, silence_level: float,
               steady_level: float | None, score: str, out: str = "ood_score") -> tuple[list[Any], list[Any]]:
    """(nodes, initializers): ``out`` (N,) = max(``score``, 1 if the clip is silent, 1 if it is steady sound), from
    the normalized log-mel ``edge`` (N, 1, T, n_mels) with its normalization (``band_mean``, ``band_std``) undone.

    Silent: the clip's loudest log-mel value under ``silence_level``; steady: its loudest frame's log energy
    (log-sum-exp over the bands) less the mean of its sounding frames' (those over ``silence_level``) under
    ``steady_level``. The same figures in numpy: _fit.clip_levels; the levels from training clips: _fit.ood_levels.
    Every name it adds starts with ``ood_`` (used by keyword spotting and transcription alike)."""
    from onnx import TensorProto, helper, numpy_helper

    N = helper.make_node
    M = p.n_mels
    sounding, e_mean, _ = masked_mean("ood_frame_e", "ood_sounding_b", "ood_axes12", "ood_one", "ood_sounding_")
    nodes = [N("Mul", [edge, "ood_band_std"], ["ood_scaled"]), N("Add", ["ood_scaled", "ood_band_mean"], ["ood_raw"]),
             N("ReduceMax", ["ood_raw", "ood_axes123"], ["ood_peak"], keepdims=0),
             N("Less", ["ood_peak", "ood_silence_level"], ["ood_is_silent"]),
             N("Cast", ["ood_is_silent"], ["ood_silent_f"], to=TensorProto.FLOAT),
             N("ReduceLogSumExp", ["ood_raw", "ood_axes3"], ["ood_frame_e"], keepdims=0),  # (N, 1, T) log energy
             N("Greater", ["ood_frame_e", "ood_silence_level"], ["ood_sounding_b"]),
             *sounding,  # the mean log energy of the sounding frames
             N("ReduceMax", ["ood_frame_e", "ood_axes12"], ["ood_e_max"], keepdims=0),
             N("Sub", ["ood_e_max", e_mean], ["ood_e_range"]),
             N("Less", ["ood_e_range", "ood_steady_level"], ["ood_is_steady"]),
             N("Cast", ["ood_is_steady"], ["ood_steady_f"], to=TensorProto.FLOAT),
             N("Max", [score, "ood_silent_f", "ood_steady_f"], [out])]
    inits = [numpy_helper.from_array(np.ones(M, np.float32) if band_std is None
                                     else np.asarray(band_std, np.float32), "ood_band_std"),
             numpy_helper.from_array(np.zeros(M, np.float32) if band_mean is None
                                     else np.asarray(band_mean, np.float32), "ood_band_mean"),
             helper.make_tensor("ood_axes123", TensorProto.INT64, [3], [1, 2, 3]),
             helper.make_tensor("ood_axes12", TensorProto.INT64, [2], [1, 2]),
             helper.make_tensor("ood_axes3", TensorProto.INT64, [1], [3]),
             helper.make_tensor("ood_one", TensorProto.FLOAT, [], [1.0]),
             helper.make_tensor("ood_silence_level", TensorProto.FLOAT, [], [float(silence_level)]),
             helper.make_tensor("ood_steady_level", TensorProto.FLOAT, [], [float(steady_level or 0.0)])]
    return nodes, inits


def session(model: Any, threads: int = 0) -> Any:
    return cpu_session(model, threads)


def run_graph(sess: Any, audio: np.ndarray, batch: int = 256) -> dict[str, np.ndarray]:
    names = [o.name for o in sess.get_outputs()]
    outs: dict[str, list[np.ndarray]] = {}
    for s in range(0, len(audio), batch):
        for n, v in zip(names, sess.run(names, {"audio": np.ascontiguousarray(audio[s: s + batch], np.float32)})):
            outs.setdefault(n, []).append(v)
    return {n: np.concatenate(v) for n, v in outs.items()}
