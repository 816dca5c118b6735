"""A recommendation run, top to bottom.

1. find the user / item / rating / time columns, clean (one row per (user, item)), split per user (leave-last-out
   when there are timestamps, else a seeded held-out row per user);
2. the popularity baseline and matrix factorization (BPR on implicit feedback, squared error on ratings) through
   the shared Trainer, early-stopped on the validation rows;
3. both scored on the test rows with the items each user saw in training and validation excluded: recall@10,
   NDCG@10 (primary), MAP@10, catalogue coverage, and RMSE for ratings; ``auto`` keeps MF when it beats
   popularity on validation NDCG@10, else popularity;
4. one graph (user, k -> items, scores), checked against numpy on every test user.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from ...errors import DataError
from .._base import Trained
from ._config import RecommendConfig
from ._data import find_columns, prepare
from ._graph import build_graph, padded_seen
from ._models import fit_mf, popularity, ranking_metrics, scores_of, top_k

__all__ = ["fit_recommend", "columns_of"]

K_METRIC = 10


def columns_of(frame: pd.DataFrame, cfg: RecommendConfig) -> Any:
    return find_columns(frame, cfg.target, user=cfg.user, item=cfg.item, rating=cfg.rating, timestamp=cfg.timestamp)


def _evaluate(A: np.ndarray, B: np.ndarray, u: np.ndarray, truth: np.ndarray, seen: list[np.ndarray], n_items: int) -> dict[str, float]:
    top = top_k(scores_of(A, B, u), [seen[x] for x in u], K_METRIC)
    return ranking_metrics(top, truth, n_items, K_METRIC)


def fit_recommend(frame: pd.DataFrame, config: Any, *, source: str = "dataframe", callbacks: Sequence[Any] = (),
                  checkpoint_dir: str | Path | None = None, log: Callable[[str], None] | None = None) -> Trained:
    from ... import data as D
    from ..tabular import library_versions

    say = log or (lambda msg: None)
    cfg = RecommendConfig.coerce(config)
    cols = columns_of(frame, cfg)
    explicit = cfg.feedback == "explicit" or (cfg.feedback == "auto" and cfg.target is not None and cfg.target == cols.rating)
    if explicit and cols.rating is None:
        raise DataError("feedback='explicit' needs a numeric rating column; name it with --set rating=COLUMN.")
    inter = prepare(frame, cols, cfg.seed, say)
    df, users, items = inter.frame, inter.users, inter.items
    uidx = {u: i for i, u in enumerate(users)}
    iidx = {it: i for i, it in enumerate(items)}
    df = df.assign(u=df["user"].map(uidx).astype(np.int64), i=df["item"].map(iidx).fillna(-1).astype(np.int64))
    tr, va, te = (df[df["split"] == s] for s in ("train", "val", "test"))
    n_users, n_items = len(users), len(items)
    how = "the last interaction per user (timestamps)" if cols.timestamp else "one random interaction per user (seed)"
    say(f"recommend: {n_users} users, {n_items} items, {len(df)} interactions ({len(tr)} train, {len(va)} validation, "
        f"{len(te)} test: {how}); feedback {'explicit (ratings)' if explicit else 'implicit'}")

    def seen_by(parts: list[pd.DataFrame]) -> list[np.ndarray]:
        both = pd.concat(parts)
        both = both[both["i"] >= 0]
        grouped = both.groupby("u")["i"].apply(lambda s: np.unique(s.to_numpy()))
        return [grouped.get(u, np.zeros(0, np.int64)) for u in range(n_users)]

    seen_tr, seen_trva = seen_by([tr]), seen_by([tr, va])
    pop = popularity(tr["i"].to_numpy(), n_items)
    A_pop = np.zeros((n_users + 1, cfg.factors + 3), np.float32)
    A_pop[:, -2] = 1.0
    B_pop = np.zeros((n_items, cfg.factors + 3), np.float32)
    B_pop[:, -2] = pop

    candidates: dict[str, Any] = {}
    vu, vt = va["u"].to_numpy(), va["i"].to_numpy()
    tu, tt = te["u"].to_numpy(), te["i"].to_numpy()
    candidates["popularity"] = {"validation": _evaluate(A_pop, B_pop, vu, vt, seen_tr, n_items),
                                "test": _evaluate(A_pop, B_pop, tu, tt, seen_trva, n_items)}
    fam_list = ["popularity"] + ([] if cfg.model == "popularity" else ["mf"])
    mf_info: dict[str, Any] = {}
    flops = 0
    mats = {"popularity": (A_pop, B_pop)}
    if "mf" in fam_list:
        X_tr = tr[["u", "i"]].to_numpy(np.int64)
        y_tr = tr["rating"].to_numpy(np.float32) if explicit else np.zeros(len(tr), np.float32)
        vk = va[va["i"] >= 0]
        X_va = vk[["u", "i"]].to_numpy(np.int64)
        y_va = vk["rating"].to_numpy(np.float32) if explicit else vk["i"].to_numpy(np.float32)
        seen_va = [seen_tr[u] for u in X_va[:, 0]]
        ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
        model, mf_info = fit_mf(X_tr, y_tr, X_va, y_va, n_users, n_items, explicit, cfg, seen_va, callbacks, ckpt, say)
        flops += mf_info.pop("flops")
        A_mf, B_mf = model.matrices(pop)
        mats["mf"] = (A_mf, B_mf)
        candidates["mf"] = {"validation": _evaluate(A_mf, B_mf, vu, vt, seen_tr, n_items),
                            "test": _evaluate(A_mf, B_mf, tu, tt, seen_trva, n_items)}
        if explicit:
            import torch

            with torch.inference_mode():
                for part, name in ((va, "validation"), (te, "test")):
                    known = part[part["i"] >= 0]
                    pred = model(torch.as_tensor(known[["u", "i"]].to_numpy(np.int64))).numpy()
                    candidates["mf"][name]["rmse"] = float(np.sqrt(np.mean((pred - known["rating"].to_numpy()) ** 2)))
                    base = float(tr["rating"].mean())
                    candidates["popularity"][name]["rmse"] = float(np.sqrt(np.mean((base - known["rating"].to_numpy()) ** 2)))
    for fam in fam_list:
        c = candidates[fam]
        say(f"  {fam:>10}: NDCG@10 validation {c['validation']['ndcg@10']:.4f}, test {c['test']['ndcg@10']:.4f}; "
            f"recall@10 test {c['test']['recall@10']:.4f}")
    key = f"ndcg@{K_METRIC}"
    if cfg.model == "auto":
        family = "mf" if candidates["mf"]["validation"][key] > candidates["popularity"]["validation"][key] else "popularity"
        why = f"higher validation NDCG@10 ({candidates[family]['validation'][key]:.4f})"
    else:
        family, why = cfg.model, "asked for"
    say(f"selected: {family} ({why})")
    A, B = mats[family]

    # ---- the graph: the seen items of train + validation are masked (the test rows stay held out)
    seen_mat = padded_seen(seen_trva, n_items)
    model_bytes = build_graph(list(users), list(items), A, B, seen_mat)
    parity = _parity(model_bytes, users, items, A, B, seen_trva, tu)
    if parity["rows_off"]:
        raise DataError(f"The exported recommendation graph disagrees with the model on {parity['rows_off']} user(s); "
                        "this is a bug, please report it.")
    say(f"graph parity: top-{K_METRIC} identical for {parity['parity_users']} users, max score difference "
        f"{parity['max_abs_diff']:.1e}")

    user_col, item_col = cols.user, cols.item
    k = min(cfg.k, n_items)
    test_frame = pd.DataFrame({user_col: te["user"].to_numpy(), item_col: te["item"].to_numpy()})
    counts = tr.groupby("user").size()
    profile = {"n_rows": int(len(df)), "columns": {"k": {"kind": "numeric", "mean": float(k), "std": 0.0,
                                                         "quantiles": {"p50": float(k)}}},
               "interactions_per_user": {"mean": float(counts.mean()), "max": int(counts.max())}}
    c_test = candidates[family]["test"]
    primary = {"name": key, "value": c_test[key], "split": f"test ({how})"}
    manifest: dict[str, Any] = {
        "libraries": library_versions(),
        "task": {"workload": "recommend", "kind": "ranking", "target": item_col, "labels": None, "user": user_col,
                 "item": item_col, "rating": cols.rating, "timestamp": cols.timestamp, "k": k, "n_items": n_items,
                 "n_users": n_users, "feedback": "explicit" if explicit else "implicit",
                 "example_user": str(users[0]), "cold_start": "popularity top-k (training interaction counts)"},
        "inputs": [{"name": user_col, "kind": "id", "dtype": "string", "description": "the user to recommend to"},
                   {"name": "k", "kind": "numeric", "dtype": "int64", "description": f"items wanted (default {k})"}],
        "outputs": [{"name": "items", "kind": "items", "description": "the top-k unseen item ids, best first"},
                    {"name": "scores", "kind": "scores", "description": "their scores"}],
        "model": {"family": family, "selection": why, "factors": cfg.factors if family == "mf" else 0,
                  "dim": int(A.shape[1]), "training": mf_info,
                  "seen_mask": {"storage": "padded item codes per user (int64)", "shape": list(seen_mat.shape),
                                "bytes": int(seen_mat.size * 8),
                                "masked": "train + validation interactions (the test rows are held out)"}},
        "onnx": {"opset": 17, "inputs": "user string (N,), k int64 (N,)",
                 "outputs": "items string (N, K), scores float32 (N, K); K = max k; '' pads", **parity},
        "config": cfg.to_dict(),
        "data": {"source": source, "fingerprint": D.fingerprint(frame.reset_index(drop=True)),
                 "rows": {"train": int(len(tr)), "validation": int(len(va)), "test": int(len(te))},
                 "columns": {"user": user_col, "item": item_col, "rating": cols.rating, "timestamp": cols.timestamp}},
        "metrics": {"primary": primary, "validation": candidates[family]["validation"], "test": c_test,
                    "candidates": candidates, "baseline": {"name": "popularity", **candidates["popularity"]["test"]}},
        "lineage": {"parent": None, "data_source": source},
    }
    files = {"model.onnx": model_bytes, "profile.json": json.dumps(profile, sort_keys=True).encode()}
    return Trained(manifest, files, test_frame=test_frame, training_flops=int(flops),
                   flops_methods={"recommend": "MF: 6 (d + 1) per (user, item) pair per epoch (x2 with the negative), "
                                               "+ 2 d x items per validation row per epoch"},
                   extra={"A": A, "B": B, "seen": seen_trva, "users": users, "items": items, "frame": df,
                          "candidates": candidates})


def _parity(model_bytes: bytes, users: np.ndarray, items: np.ndarray, A: np.ndarray, B: np.ndarray,
            seen: list[np.ndarray], test_users: np.ndarray) -> dict[str, Any]:
    import onnxruntime as ort

    u = np.unique(test_users)[:500]
    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    k = min(K_METRIC, len(items))
    got_items, got_scores = sess.run(None, {"user": users[u].astype(object), "k": np.full(len(u), k, np.int64)})
    s = scores_of(A, B, u)
    ref = top_k(s, [seen[x] for x in u], k)
    ref_scores = np.take_along_axis(s, ref, 1)
    ref_ids = items[ref]
    unseen = np.asarray([len(items) - len(seen[x]) for x in u])
    off = 0
    for r in range(len(u)):
        n = min(k, unseen[r])
        a, b = list(got_items[r][:n]), list(ref_ids[r][:n])
        if a != b and not np.allclose(np.sort(got_scores[r][:n]), np.sort(ref_scores[r][:n]), atol=1e-4):
            off += 1  # ties may order differently; the same scores are the same answer
    diff = float(np.max(np.abs(np.sort(got_scores, 1) - np.sort(np.where(np.arange(k)[None, :] < unseen[:, None], ref_scores, 0), 1)))) if len(u) else 0.0
    return {"parity_users": int(len(u)), "rows_off": int(off), "max_abs_diff": diff}
