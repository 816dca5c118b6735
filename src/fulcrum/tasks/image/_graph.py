"""The image graph: raw decoded pixels of any size in, class probabilities and label out.

::

    image       uint8 (N, H, W, C)   the batch's images, each at the top left of an H x W canvas (H, W: the
                                     batch's largest); C is the model's channel count (1 grey, 3 RGB)
    image_size  int64 (N, 2)         each image's own height and width (the rest of its canvas is ignored)
      -> Loop over the batch: Slice the image's own pixels -> Cast float -> (1, C, h, w)
           -> Resize to the training size (linear, antialiased, half-pixel: opset 18) -> / 255
      -> pixels float (N, C, S, S) in [0, 1]
      -> (pixels - mean) / std  (the training set's per-channel statistics, stored in the manifest too)
      -> the CNN (torch.onnx.export) -> logits -> Softmax -> probabilities (N, K); ArgMax -> Gather -> label (N,)
      -> ood_score (N,): 1 - max cosine(penultimate features, class centroid)
      -> image_brightness, image_height, image_width (N,) float: what the input monitor watches for drift
         (manifest outputs of kind "monitored"; the mean of the resized pixels in [0, 1], each image's own size)

One image of any size: ``image=img[None]``, ``image_size=[[h, w]]``. Images of one size: stack them and give
each its size. The pre-processing part also makes the training tensors, so training and serving resize alike.
"""

from __future__ import annotations

import io
import warnings
from typing import Any, Sequence

import numpy as np

from .._graph import class_head_initializers, cpu_session, finish_model

__all__ = ["OPSET", "MONITORED", "monitored_values", "preprocess_graph", "full_graph", "session", "run_graph", "batch_feeds", "preprocess"]

OPSET = 18
PIXELS = "pixels"
#: per-image quantities the graph reports for the input monitor (drift of each, as for a numeric column)
MONITORED = {
    "image_brightness": "mean pixel value of the resized image in [0, 1], over all channels",
    "image_height": "the image's height in pixels, before resizing",
    "image_width": "the image's width in pixels, before resizing",
}


def monitored_values(pixels: np.ndarray, sizes: np.ndarray) -> dict[str, np.ndarray]:
    """What the graph's monitored outputs hold, from pre-processed pixels (N, C, S, S) and sizes (N, 2)."""
    sizes = np.asarray(sizes, dtype=np.float64).reshape(-1, 2)
    return {"image_brightness": pixels.reshape(len(pixels), -1).mean(axis=1).astype(np.float64),
            "image_height": sizes[:, 0], "image_width": sizes[:, 1]}


def preprocess_graph(size: int, channels: int) -> Any:
    """(image, image_size) -> pixels float (N, C, size, size) in [0, 1]."""
    import onnx
    from onnx import TensorProto, helper

    N = helper.make_node
    body = helper.make_graph(
        [N("Gather", ["image", "i"], ["img_i"], axis=0),
         N("Gather", ["image_size", "i"], ["hw_i"], axis=0),
         N("Slice", ["img_i", "zeros2", "hw_i", "axes01"], ["crop"]),
         N("Cast", ["crop"], ["cropf"], to=TensorProto.FLOAT),
         N("Transpose", ["cropf"], ["chw"], perm=[2, 0, 1]),
         N("Unsqueeze", ["chw", "axis0"], ["nchw"]),
         N("Resize", ["nchw", "", "", "target"], ["resized"], mode="linear", antialias=1,
           coordinate_transformation_mode="half_pixel"),
         N("Squeeze", ["resized", "axis0"], ["one"]),
         N("Identity", ["cond_in"], ["cond_out"])],
        "per_image",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("one", TensorProto.FLOAT, [channels, size, size])],
        initializer=[helper.make_tensor("zeros2", TensorProto.INT64, [2], [0, 0]),
                     helper.make_tensor("axes01", TensorProto.INT64, [2], [0, 1]),
                     helper.make_tensor("axis0", TensorProto.INT64, [1], [0]),
                     helper.make_tensor("target", TensorProto.INT64, [4], [1, channels, size, size])])
    nodes = [N("Shape", ["image"], ["shape"], start=0, end=1),
             N("Squeeze", ["shape"], ["n"]),
             N("Loop", ["n", ""], ["stacked"], body=body),
             N("Mul", ["stacked", "inv255"], [PIXELS])]
    graph = helper.make_graph(
        nodes, "fulcrum_image_preprocess",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", "H", "W", channels]),
         helper.make_tensor_value_info("image_size", TensorProto.INT64, ["N", 2])],
        [helper.make_tensor_value_info(PIXELS, TensorProto.FLOAT, ["N", channels, size, size])],
        initializer=[helper.make_tensor("inv255", TensorProto.FLOAT, [], [1.0 / 255.0])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def export_cnn(module: Any, size: int, channels: int) -> Any:
    """pixels (N, C, S, S) -> logits (N, K), features (N, F): the torch module through the TorchScript exporter."""
    import onnx
    import torch

    module = module.eval()
    x = torch.rand(2, channels, size, size)
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), buf, dynamo=False, opset_version=OPSET, input_names=[PIXELS],
                          output_names=["logits", "features"],
                          dynamic_axes={PIXELS: {0: "N"}, "logits": {0: "N"}, "features": {0: "N"}})
    return onnx.load_from_string(buf.getvalue())


def full_graph(cnn: Any, size: int, channels: int, labels: Sequence[str], centroids: np.ndarray) -> Any:
    """The pre-processing graph, the exported CNN, softmax, label and the OOD score, as one model."""
    from onnx import TensorProto, helper

    pre = preprocess_graph(size, channels)
    k = len(labels)
    N = helper.make_node
    cnn_nodes = list(cnn.graph.node)
    tail = [N("Softmax", ["logits"], ["probabilities"], axis=1),
            N("ArgMax", ["probabilities"], ["label_idx"], axis=1, keepdims=0),
            N("Gather", ["class_names", "label_idx"], ["label"], axis=0),
            N("ReduceL2", ["features", "axis1"], ["fnorm"], keepdims=1),
            N("Max", ["fnorm", "eps"], ["fnorm_safe"]),
            N("Div", ["features", "fnorm_safe"], ["funit"]),
            N("MatMul", ["funit", "centroids_t"], ["cosines"]),
            N("ReduceMax", ["cosines", "axis1"], ["best_cos"], keepdims=0),
            N("Sub", ["one_f", "best_cos"], ["ood_score"]),
            N("ReduceMean", [PIXELS, "axes123"], ["image_brightness"], keepdims=0),
            N("Cast", ["image_size"], ["size_f"], to=TensorProto.FLOAT),
            N("Gather", ["size_f", "idx0"], ["image_height"], axis=1),
            N("Gather", ["size_f", "idx1"], ["image_width"], axis=1)]
    inits = list(pre.graph.initializer) + list(cnn.graph.initializer) + class_head_initializers(labels, centroids) + [
        helper.make_tensor("axes123", TensorProto.INT64, [3], [1, 2, 3]),
        helper.make_tensor("idx0", TensorProto.INT64, [], [0]),
        helper.make_tensor("idx1", TensorProto.INT64, [], [1])]
    graph = helper.make_graph(
        list(pre.graph.node) + cnn_nodes + tail, "fulcrum_image", list(pre.graph.input),
        [helper.make_tensor_value_info("label", TensorProto.STRING, ["N"]),
         helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", k]),
         helper.make_tensor_value_info("ood_score", TensorProto.FLOAT, ["N"])]
        + [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N"]) for name in MONITORED],
        initializer=inits)
    return finish_model(graph, {"": OPSET})


def session(model: Any, threads: int = 0) -> Any:
    return cpu_session(model, threads)


def batch_feeds(images: Sequence[np.ndarray], channels: int) -> dict[str, np.ndarray]:
    """Decoded images (H, W, C) uint8 -> the graph's feeds: one canvas of the largest height and width,
    each image at its top left, and each image's own size."""
    n = len(images)
    if n == 0:
        return {"image": np.zeros((0, 1, 1, channels), np.uint8), "image_size": np.zeros((0, 2), np.int64)}
    H = max(int(a.shape[0]) for a in images)
    W = max(int(a.shape[1]) for a in images)
    if all(a.shape[0] == H and a.shape[1] == W for a in images):
        canvas = np.stack(images)
    else:
        canvas = np.zeros((n, H, W, channels), np.uint8)
        for i, a in enumerate(images):
            canvas[i, : a.shape[0], : a.shape[1]] = a
    sizes = np.asarray([[a.shape[0], a.shape[1]] for a in images], dtype=np.int64)
    return {"image": np.ascontiguousarray(canvas), "image_size": sizes}


def run_graph(sess: Any, images: Sequence[np.ndarray], channels: int, batch: int = 256) -> dict[str, np.ndarray]:
    outs: dict[str, list[np.ndarray]] = {}
    names = [o.name for o in sess.get_outputs()]
    for s in range(0, len(images), batch):
        got = sess.run(names, batch_feeds(images[s: s + batch], channels))
        for n, v in zip(names, got):
            outs.setdefault(n, []).append(v)
    return {n: np.concatenate(v) for n, v in outs.items()}


def preprocess(images: Sequence[np.ndarray], size: int, channels: int, batch: int = 256) -> np.ndarray:
    """Decoded images -> pixels (N, C, S, S) float32 in [0, 1], through the graph's own pre-processing."""
    if not len(images):
        return np.zeros((0, channels, size, size), np.float32)
    sess = session(preprocess_graph(size, channels))
    return run_graph(sess, images, channels, batch)[PIXELS].astype(np.float32)
