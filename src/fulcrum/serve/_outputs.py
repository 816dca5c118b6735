"""Model outputs as response bodies: the friendly JSON shape and KServe v2 output tensors,
with the optional hardening against model extraction (top-k labels, rounded probabilities)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["friendly_body", "v2_outputs"]


def _finite_list(a: np.ndarray) -> list[Any]:
    """``a.tolist()`` with NaN/inf as None (JSON has neither)."""
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        return [None if not np.isfinite(x) else float(x) for x in a.ravel()]
    return a.ravel().tolist()


def _best(probs: np.ndarray) -> list[int]:
    """argmax per row; -1 for a row whose probabilities are not all finite (no prediction)."""
    best = probs.argmax(axis=1)
    bad = ~np.all(np.isfinite(probs), axis=1)
    if bad.any():
        best = np.where(bad, -1, best)
    return best.tolist()


def _harden(probs: np.ndarray, top_k: int | None, decimals: int | None) -> tuple[np.ndarray, np.ndarray | None]:
    """(probabilities, label indices) — all labels in order, or the top k in descending order."""
    p = np.asarray(probs, dtype=np.float64)
    idx = None
    if top_k is not None and top_k < p.shape[1]:
        idx = np.argsort(-p, axis=1, kind="stable")[:, :top_k]
        p = np.take_along_axis(p, idx, axis=1)
    if decimals is not None:
        p = np.round(p, decimals)
    return p, idx


def _friendly_small(rows: list[list[float]], labels: list[Any]) -> dict[str, Any]:
    """friendly_body of a few classifier rows without top-k or rounding (the same answer, no numpy)."""
    preds: list[Any] = []
    probs: list[dict[Any, Any]] = []
    isfinite = math.isfinite
    for r in rows:
        if all(isfinite(v) for v in r):
            preds.append(labels[max(range(len(r)), key=r.__getitem__)])  # first maximum, as argmax
            probs.append(dict(zip(labels, r)))
        else:
            preds.append(None)
            probs.append(dict(zip(labels, [v if isfinite(v) else None for v in r])))
    return {"predictions": preds, "probabilities": probs}


def _ood(model: Any, result: dict[str, np.ndarray]) -> dict[str, Any]:
    """Per-row out-of-distribution score (the graph's own, or the monitor's against the training profile)
    and the verdict at the model's threshold."""
    scores = result.get("ood")
    if scores is None:  # monitoring off (--no-monitor)
        return {}
    threshold = getattr(model, "ood_threshold", None)
    if threshold is None:
        monitor = getattr(model, "monitor", None)
        threshold = monitor.ood_threshold if monitor is not None else 0.5
    values = scores.tolist() if isinstance(scores, np.ndarray) else list(scores)  # plain floats: cheap per request
    return {"ood_scores": [round(v, 4) for v in values], "ood": [v >= threshold for v in values]}


def _text(v: Any) -> str:
    return v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v)


def friendly_body(model: Any, result: dict[str, np.ndarray], top_k: int | None, decimals: int | None) -> dict[str, Any]:
    """``{"predictions": [...], "probabilities": [{label: p}, ...], "ood_scores": [...], "ood": [...]}``
    (probabilities for classifiers; OOD fields when monitoring is on)."""
    return {**_friendly(model, result, top_k, decimals), **_ood(model, result), **_notes(model, result),
            **_intervals(model, result, decimals)}


def _intervals(model: Any, result: dict[str, np.ndarray], decimals: int | None) -> dict[str, list[Any]]:
    """Per-row prediction interval ends (output kinds interval_lower / interval_upper) under their names."""
    out = {}
    for name in getattr(model, "intervals", ()):
        if name in result:
            v = np.asarray(result[name], dtype=np.float64).reshape(-1)
            out[name] = _finite_list(np.round(v, decimals) if decimals is not None else v)
    return out


def _notes(model: Any, result: dict[str, np.ndarray]) -> dict[str, list[str]]:
    """Per-row notes of the graph (output kind "note"), as lists of strings under their names."""
    return {name: [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(result[name]).reshape(-1).tolist()]
            for name in getattr(model, "notes", ()) if name in result}


def _friendly(model: Any, result: dict[str, np.ndarray], top_k: int | None, decimals: int | None) -> dict[str, Any]:
    if "probabilities" in result:
        probs = np.asarray(result["probabilities"])
        labels = model.labels
        if top_k is None and decimals is None and probs.shape[0] <= 8:  # a few rows: plain Python beats numpy calls
            return _friendly_small(probs.tolist(), labels)
        best = _best(probs)
        p, idx = _harden(probs, top_k, decimals)
        out: dict[str, Any] = {"predictions": [None if i < 0 else labels[i] for i in best]}
        rows = p.tolist() if np.all(np.isfinite(p)) else [[v if np.isfinite(v) else None for v in r] for r in p.tolist()]
        if idx is None:
            out["probabilities"] = [dict(zip(labels, r)) for r in rows]
        else:
            out["probabilities"] = [{labels[j]: v for j, v in zip(ix, r)} for ix, r in zip(idx.tolist(), rows)]
        return out
    if "items" in result:  # a recommender: per row the top-k ids (best first) and their scores
        from ..runtime._predictor import top_lists

        ids, scores = top_lists(result["items"], result["scores"])
        if decimals is not None:
            scores = [[round(v, decimals) for v in r] for r in scores]
        return {"predictions": ids, "scores": scores}
    if "text" in result:  # a transcriber: one string per row
        return {"predictions": [_text(t) for t in np.asarray(result["text"], dtype=object).reshape(-1).tolist()]}
    value = np.asarray(result["value"], dtype=np.float64)
    if decimals is not None:
        value = np.round(value, decimals)
    return {"predictions": _finite_list(value)}


def v2_outputs(
    model: Any, result: dict[str, np.ndarray], requested: list[str] | None, top_k: int | None, decimals: int | None
) -> list[dict[str, Any]]:
    outs = _v2_model_outputs(model, result, requested, top_k, decimals)
    ood = _ood(model, result)
    if ood and (requested is None or "ood_score" in requested):
        outs.append({"name": "ood_score", "datatype": "FP32", "shape": [len(ood["ood_scores"])],
                     "data": ood["ood_scores"]})
    for name, values in _notes(model, result).items():
        if requested is None or name in requested:
            outs.append({"name": name, "datatype": "BYTES", "shape": [len(values)], "data": values})
    return outs


def _v2_model_outputs(
    model: Any, result: dict[str, np.ndarray], requested: list[str] | None, top_k: int | None, decimals: int | None
) -> list[dict[str, Any]]:
    outs: list[dict[str, Any]] = []
    want = set(requested) if requested else None
    if "probabilities" in result:
        probs = np.asarray(result["probabilities"])
        n = probs.shape[0]
        labels = model.labels
        if want is None or model.label_output in want:
            outs.append({"name": model.label_output, "datatype": "BYTES", "shape": [n],
                         "data": [None if i < 0 else str(labels[i]) for i in _best(probs)]})
        if want is None or "probabilities" in want:
            p, idx = _harden(probs, top_k, decimals)
            outs.append({"name": "probabilities", "datatype": "FP32" if decimals is None else "FP64",
                         "shape": list(p.shape), "data": _finite_list(p),
                         "parameters": {"labels": [str(x) for x in labels]} if idx is None else {}})
            if idx is not None:
                outs.append({"name": "top_labels", "datatype": "BYTES", "shape": list(idx.shape),
                             "data": [str(labels[j]) for j in idx.ravel().tolist()]})
        return outs
    if "items" in result:  # (N, k) ids ("" pads a row with fewer than k) and scores; columns all padding dropped
        items = np.asarray(result["items"], dtype=object)
        scores = np.asarray(result["scores"], dtype=np.float64)
        used = ~np.all((items == "") | (items == b""), axis=0)
        items, scores = items[:, used], scores[:, used]
        if decimals is not None:
            scores = np.round(scores, decimals)
        names = model.output_names
        if want is None or names[0] in want:
            outs.append({"name": names[0], "datatype": "BYTES", "shape": list(items.shape),
                         "data": [i.decode() if isinstance(i, bytes) else str(i) for i in items.ravel().tolist()]})
        if want is None or "scores" in want:
            outs.append({"name": "scores", "datatype": "FP32" if decimals is None else "FP64",
                         "shape": list(scores.shape), "data": _finite_list(scores)})
        return outs
    if "text" in result:  # (N,) strings
        texts = [_text(t) for t in np.asarray(result["text"], dtype=object).reshape(-1).tolist()]
        if want is None or model.output_names[0] in want:
            outs.append({"name": model.output_names[0], "datatype": "BYTES", "shape": [len(texts)], "data": texts})
        return outs
    value = np.asarray(result["value"], dtype=np.float64)
    if decimals is not None:
        value = np.round(value, decimals)
    name = model.output_names[0]
    if want is None or name in want:
        outs.append({"name": name, "datatype": "FP64", "shape": [int(value.shape[0])], "data": _finite_list(value)})
    return outs
