"""The recommender's one ONNX graph: user id strings and k -> the top-k unseen item ids and their scores.

::

    user (N,) string --LabelEncoder--> idx (N,) int64 (unknown -> the extra last row: popularity)
    Gather(A, idx) (N, D) --MatMul B^T (D, I)--> scores (N, I)
    Gather(seen, idx) (N, S) --ScatterElements(-1e30)--> seen items (and the user's padding column I) masked
    TopK(max k) --> (N, K); positions >= the row's k, or masked, -> item "" and score 0
    idx == unknown --> basis (N,) "personalized" | "popularity" (which way the row was answered)

Seen items are stored padded: ``seen`` (n_users + 1, S) int32, S = the most items any one user has seen, padding
with I (an extra score column that is sliced off). Size: 4 x (n_users + 1) x S bytes.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["build_graph", "padded_seen", "MASKED", "BASIS"]

MASKED = -1.0e30
BASIS = ("personalized", "popularity")  # the ``basis`` output: a known user's own factors, or the cold-start fallback
OPSET = 17


def padded_seen(seen: Sequence[np.ndarray], n_items: int) -> np.ndarray:
    """(len(seen) + 1, S) int32 item codes per user, padded with ``n_items``; the last row (unknown users) all padding."""
    width = max([len(s) for s in seen] + [1])
    out = np.full((len(seen) + 1, width), n_items, dtype=np.int32)
    for r, s in enumerate(seen):
        out[r, :len(s)] = np.sort(np.asarray(s, dtype=np.int32))
    return out


def build_graph(users: Sequence[str], items: Sequence[str], A: np.ndarray, B: np.ndarray, seen: np.ndarray) -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n_users, n_items = len(users), len(items)
    assert A.shape == (n_users + 1, B.shape[1]) and B.shape[0] == n_items and seen.shape[0] == n_users + 1
    init = [
        numpy_helper.from_array(A.astype(np.float32), "user_factors"),
        numpy_helper.from_array(np.ascontiguousarray(B.T.astype(np.float32)), "item_factors_t"),
        numpy_helper.from_array(seen.astype(np.int64), "seen"),
        numpy_helper.from_array(np.array([MASKED], np.float32), "masked"),
        numpy_helper.from_array(np.array([0.0], np.float32), "zero_f"),
        numpy_helper.from_array(np.array([MASKED / 10], np.float32), "masked_half"),
        numpy_helper.from_array(np.array([0, 0, 0, 1], np.int64), "pad_one"),
        numpy_helper.from_array(np.array([0], np.int64), "zero_1"),
        numpy_helper.from_array(np.array([n_items], np.int64), "n_items_1"),
        numpy_helper.from_array(np.array([1], np.int64), "one_1"),
        numpy_helper.from_array(np.array(0, np.int64), "zero_s"),
        numpy_helper.from_array(np.array(1, np.int64), "one_s"),
        numpy_helper.from_array(np.array([1, -1], np.int64), "row_shape"),
        numpy_helper.from_array(np.array([-1, 1], np.int64), "col_shape"),
        numpy_helper.from_array(np.array(n_items, np.int64), "n_items_s"),
    ]
    item_ids = helper.make_tensor("item_ids", TensorProto.STRING, [n_items + 1],
                                  [str(i).encode() for i in items] + [b""])
    init.append(item_ids)
    init.append(helper.make_tensor("basis_names", TensorProto.STRING, [2], [b.encode() for b in BASIS]))
    init.append(numpy_helper.from_array(np.array(n_users, np.int64), "n_users_s"))
    nodes = [
        helper.make_node("LabelEncoder", ["user"], ["idx"], domain="ai.onnx.ml",
                         keys_strings=[str(u) for u in users], values_int64s=list(range(n_users)), default_int64=n_users),
        helper.make_node("Gather", ["user_factors", "idx"], ["uvec"], axis=0),           # (N, D)
        helper.make_node("MatMul", ["uvec", "item_factors_t"], ["raw"]),                  # (N, I)
        helper.make_node("Pad", ["raw", "pad_one", "zero_f"], ["padded"]),                # (N, I + 1)
        helper.make_node("Gather", ["seen", "idx"], ["seen_rows"], axis=0),               # (N, S)
        helper.make_node("Shape", ["seen_rows"], ["seen_shape"]),
        helper.make_node("Expand", ["masked", "seen_shape"], ["masks"]),
        helper.make_node("ScatterElements", ["padded", "seen_rows", "masks"], ["hidden"], axis=1),
        helper.make_node("Slice", ["hidden", "zero_1", "n_items_1", "one_1"], ["scored"]),  # (N, I)
        helper.make_node("ReduceMax", ["k"], ["k_max"], keepdims=1),                       # (1,)
        helper.make_node("TopK", ["scored", "k_max"], ["top_scores", "top_idx"], axis=1, largest=1, sorted=1),
        helper.make_node("Squeeze", ["k_max", "zero_1"], ["k_s"]),
        helper.make_node("Range", ["zero_s", "k_s", "one_s"], ["positions"]),             # (K,)
        helper.make_node("Reshape", ["positions", "row_shape"], ["pos_row"]),             # (1, K)
        helper.make_node("Reshape", ["k", "col_shape"], ["k_col"]),                       # (N, 1)
        helper.make_node("GreaterOrEqual", ["pos_row", "k_col"], ["beyond"]),             # (N, K)
        helper.make_node("Less", ["top_scores", "masked_half"], ["was_seen"]),
        helper.make_node("Or", ["beyond", "was_seen"], ["blank"]),
        helper.make_node("Where", ["blank", "n_items_s", "top_idx"], ["pick"]),
        helper.make_node("Gather", ["item_ids", "pick"], ["items"], axis=0),              # (N, K) strings
        helper.make_node("Where", ["blank", "zero_f", "top_scores"], ["scores"]),         # (N, K)
        helper.make_node("Equal", ["idx", "n_users_s"], ["is_new"]),
        helper.make_node("Cast", ["is_new"], ["is_new_i"], to=TensorProto.INT64),
        helper.make_node("Gather", ["basis_names", "is_new_i"], ["basis"], axis=0),       # (N,) strings
    ]
    graph = helper.make_graph(
        nodes, "fulcrum_recommend",
        [helper.make_tensor_value_info("user", TensorProto.STRING, ["N"]),
         helper.make_tensor_value_info("k", TensorProto.INT64, ["N"])],
        [helper.make_tensor_value_info("items", TensorProto.STRING, ["N", "K"]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", "K"]),
         helper.make_tensor_value_info("basis", TensorProto.STRING, ["N"])],
        init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", 2)],
                              producer_name="fulcrum")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()
