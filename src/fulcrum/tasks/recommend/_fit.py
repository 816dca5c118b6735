"""A recommendation run, top to bottom.

1. find the user / item / rating / time columns, clean (one row per (user, item)), split per user (leave-last-out
   when there are timestamps, else a seeded held-out row per user);
2. the popularity baseline, matrix factorization (BPR on implicit feedback, squared error on ratings) through
   the shared Trainer, early-stopped on the validation rows, and on implicit feedback ALS from the ``implicit``
   library (confidence and regularization picked on validation NDCG@10);
3. with an item features table, items without interactions join the catalogue: a ridge map from features to the
   trained items' factors scores them;
4. each scored on the test rows with the items each user saw in training and validation excluded: recall@10,
   NDCG@10 (primary), MAP@10, catalogue coverage; on ratings RMSE beside the global mean and the bias baseline
   mu + b_u + b_i; ``auto`` keeps the candidate with the highest validation NDCG@10;
5. one graph (user, k -> items, scores, basis), checked against numpy on every test user.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from ...errors import ConfigError, DataError
from .._base import Trained
from ._config import RecommendConfig
from ._data import find_columns, prepare, read_item_features
from ._graph import BASIS, build_graph, padded_seen
from ._models import bias_baseline, factor_matrices, fit_als, fit_mf, popularity, ranking_metrics, scores_of, top_k

__all__ = ["fit_recommend", "columns_of"]

K_METRIC = 10
COLD_USERS = "popularity top-k (training interaction counts)"


def columns_of(frame: pd.DataFrame, cfg: RecommendConfig) -> Any:
    return find_columns(frame, cfg.target, user=cfg.user, item=cfg.item, rating=cfg.rating, timestamp=cfg.timestamp)


def _evaluate(A: np.ndarray, B: np.ndarray, u: np.ndarray, truth: np.ndarray, seen: list[np.ndarray], n_items: int) -> dict[str, float]:
    top = top_k(scores_of(A, B, u), [seen[x] for x in u], K_METRIC)
    return ranking_metrics(top, truth, n_items, K_METRIC)


def _feature_map(F: np.ndarray, n_train: int, B: np.ndarray, ridge: float) -> tuple[np.ndarray, float]:
    """B extended to every row of F: the trained items keep their rows; the others get [F W, 0 (no popularity), 1],
    W the ridge map from features (+ intercept) to the trained items' factor and bias columns. Returns (B, R^2 of the
    map on the trained items)."""
    X = np.concatenate([F, np.ones((len(F), 1))], axis=1)
    T = B[:, :-2].astype(np.float64)
    Xt = X[:n_train]
    reg = ridge * np.eye(X.shape[1])
    reg[-1, -1] = 0.0  # the intercept is not shrunk
    W = np.linalg.solve(Xt.T @ Xt + reg, Xt.T @ T)
    fit = Xt @ W
    ss = float(((T - T.mean(0)) ** 2).sum())
    r2 = 1.0 - float(((T - fit) ** 2).sum()) / ss if ss > 0 else 0.0
    new = X[n_train:] @ W
    tail = np.concatenate([new, np.zeros((len(new), 1)), np.ones((len(new), 1))], axis=1)
    return np.concatenate([B, tail.astype(np.float32)]).astype(np.float32), r2


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
    if cfg.model == "als" and explicit:
        raise ConfigError("model='als' is implicit-feedback ALS; the target is the rating column (explicit ratings): "
                          "use model='mf', or make the item column the target.")
    feats = read_item_features(cfg.item_features, cols.item) if cfg.item_features else None
    inter = prepare(frame, cols, cfg.seed, say)
    df, users, items = inter.frame, inter.users, inter.items
    n_train_items = len(items)
    F = None
    if feats is not None:
        f_ids, f_x, f_names = feats
        known = set(items.tolist())
        new_items = np.asarray(sorted(set(f_ids.tolist()) - known), dtype=object)
        items = np.concatenate([items, new_items]).astype(object)
        row = {it: r for r, it in enumerate(f_ids.tolist())}
        F = np.zeros((len(items), f_x.shape[1]))
        have = np.asarray([it in row for it in items.tolist()])
        F[have] = f_x[[row[it] for it in items[have].tolist()]]
        say(f"item features: {f_x.shape[1]} feature column(s) for {int(have[:n_train_items].sum())} of "
            f"{n_train_items} trained items; {len(new_items)} item(s) without interactions join the catalogue, "
            "scored from their features")
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
    pop_tr = popularity(tr["i"].to_numpy(), n_train_items)
    pop = popularity(tr["i"].to_numpy(), n_items)
    ridge: dict[str, float] = {}

    def full(fam: str, A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(A, B) over the whole catalogue: rows for items known only from their features mapped from them."""
        if F is None or n_items == n_train_items:
            return A, B
        B, ridge[fam] = _feature_map(F, n_train_items, B, cfg.feature_ridge)
        return A, B

    candidates: dict[str, Any] = {}
    vu, vt = va["u"].to_numpy(), va["i"].to_numpy()
    tu, tt = te["u"].to_numpy(), te["i"].to_numpy()

    def score(fam: str, A: np.ndarray, B: np.ndarray) -> None:
        candidates[fam] = {"validation": _evaluate(A, B, vu, vt, seen_tr, n_items),
                           "test": _evaluate(A, B, tu, tt, seen_trva, n_items)}

    A_pop = np.zeros((n_users + 1, cfg.factors + 3), np.float32)
    A_pop[:, -2] = 1.0
    B_pop = np.zeros((n_items, cfg.factors + 3), np.float32)
    B_pop[:, -2] = pop
    mats = {"popularity": (A_pop, B_pop)}
    score("popularity", A_pop, B_pop)
    fam_list = ["popularity"]
    info: dict[str, Any] = {}
    flops = 0
    if cfg.model in ("auto", "mf"):
        fam_list.append("mf")
        X_tr = tr[["u", "i"]].to_numpy(np.int64)
        y_tr = tr["rating"].to_numpy(np.float32) if explicit else np.zeros(len(tr), np.float32)
        vk = va[(va["i"] >= 0) & (va["i"] < n_train_items)]
        X_va = vk[["u", "i"]].to_numpy(np.int64)
        y_va = vk["rating"].to_numpy(np.float32) if explicit else vk["i"].to_numpy(np.float32)
        seen_va = [seen_tr[u] for u in X_va[:, 0]]
        ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
        model, info["mf"] = fit_mf(X_tr, y_tr, X_va, y_va, n_users, n_train_items, explicit, cfg, seen_va, callbacks,
                                   ckpt, say)
        flops += info["mf"].pop("flops")
        mats["mf"] = full("mf", *model.matrices(pop_tr))
        score("mf", *mats["mf"])
        if explicit:
            _rmse(model, tr, va, te, n_users, n_train_items, candidates)
    if cfg.model in ("auto", "als") and not explicit:
        fam_list.append("als")

        def val_ndcg(U: np.ndarray, V: np.ndarray) -> float:
            A, B = full("als", *factor_matrices(U, V, pop_tr))
            return _evaluate(A, B, vu, vt, seen_tr, n_items)[f"ndcg@{K_METRIC}"]

        U, V, info["als"] = fit_als(tr["u"].to_numpy(), tr["i"].to_numpy(), n_users, n_train_items, cfg, val_ndcg, say)
        flops += info["als"].pop("flops")
        mats["als"] = full("als", *factor_matrices(U, V, pop_tr))
        score("als", *mats["als"])
    for fam in fam_list:
        c = candidates[fam]
        rm = f"; RMSE test {c['test']['rmse']:.4f}" if "rmse" in c["test"] else ""
        say(f"  {fam:>10}: NDCG@10 validation {c['validation']['ndcg@10']:.4f}, test {c['test']['ndcg@10']:.4f}; "
            f"recall@10 test {c['test']['recall@10']:.4f}{rm}")
    key = f"ndcg@{K_METRIC}"
    if cfg.model == "auto":
        family = max(fam_list, key=lambda f: (candidates[f]["validation"][key], -fam_list.index(f)))
        why = f"highest validation NDCG@10 ({candidates[family]['validation'][key]:.4f}) of {', '.join(fam_list)}"
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
    cold_items = (f"items in the item features table without interactions ({n_items - n_train_items}) are scored "
                  "from their features (ridge map features -> item factors fitted on the trained items); they have "
                  "no popularity, so new users are not shown them" if F is not None else
                  "none: an item without training interactions is not in the catalogue (pass item_features to add "
                  "items from their features)")
    model_info: dict[str, Any] = {"family": family, "selection": why, "factors": 0 if family == "popularity" else cfg.factors,
                                  "dim": int(A.shape[1]), "training": info.get(family, {}),
                                  "seen_mask": {"storage": "padded item codes per user (int64)", "shape": list(seen_mat.shape),
                                                "bytes": int(seen_mat.size * 8),
                                                "masked": "train + validation interactions (the test rows are held out)"}}
    if explicit:  # what a model without ratings (popularity) predicts, and the baseline beside evaluate's RMSE
        model_info["rating_mean"] = float(tr["rating"].mean())
    if family == "als":
        model_info["library"] = f"implicit {_version('implicit')} (AlternatingLeastSquares, CPU)"
    if F is not None:
        model_info["item_features"] = {"source": str(cfg.item_features), "features": int(F.shape[1]),
                                       "trained_items": n_train_items, "feature_only_items": n_items - n_train_items,
                                       "map": f"ridge (lambda {cfg.feature_ridge:g}) features -> factors and bias",
                                       "map_r2_on_trained_items": ridge.get(family)}
    metrics: dict[str, Any] = {"primary": primary, "validation": candidates[family]["validation"], "test": c_test,
                               "candidates": candidates, "baseline": {"name": "popularity", **candidates["popularity"]["test"]}}
    if explicit and "rmse" in candidates.get("mf", {}).get("test", {}):
        metrics["rating"] = {"metric": "rmse", "split": "test", "mf": candidates["mf"]["test"]["rmse"],
                             "bias_baseline": candidates["mf"]["test"]["rmse_bias_baseline"],
                             "global_mean": candidates["mf"]["test"]["rmse_global_mean"]}
    manifest: dict[str, Any] = {
        "libraries": {**library_versions(), **({"implicit": _version("implicit")} if "als" in fam_list else {})},
        "task": {"workload": "recommend", "kind": "ranking", "target": item_col, "labels": None, "user": user_col,
                 "item": item_col, "rating": cols.rating, "timestamp": cols.timestamp, "k": k, "n_items": n_items,
                 "n_users": n_users, "feedback": "explicit" if explicit else "implicit",
                 "example_user": str(users[0]), "cold_start": COLD_USERS, "cold_start_items": cold_items},
        "inputs": [{"name": user_col, "kind": "id", "dtype": "string", "description": "the user to recommend to"},
                   {"name": "k", "kind": "numeric", "dtype": "int64", "description": f"items wanted (default {k})"}],
        "outputs": [{"name": "items", "kind": "items", "description": "the top-k unseen item ids, best first"},
                    {"name": "scores", "kind": "scores", "description": "their scores"},
                    {"name": "basis", "kind": "note", "description": f"per row: {BASIS[0]!r} (the user's own "
                     f"factors) or {BASIS[1]!r} (a user the model has not seen: {COLD_USERS})"}],
        "model": model_info,
        "onnx": {"opset": 17, "inputs": "user string (N,), k int64 (N,)",
                 "outputs": "items string (N, K), scores float32 (N, K); K = max k; '' pads; basis string (N,)", **parity},
        "config": cfg.to_dict(),
        "data": {"source": source, "fingerprint": D.fingerprint(frame.reset_index(drop=True)),
                 "rows": {"train": int(len(tr)), "validation": int(len(va)), "test": int(len(te))},
                 "columns": {"user": user_col, "item": item_col, "rating": cols.rating, "timestamp": cols.timestamp}},
        "metrics": metrics,
        "lineage": {"parent": None, "data_source": source},
    }
    files = {"model.onnx": model_bytes, "profile.json": json.dumps(profile, sort_keys=True).encode()}
    return Trained(manifest, files, test_frame=test_frame, training_flops=int(flops),
                   flops_methods={"recommend": "MF: 6 (d + 1) per (user, item) pair per epoch (x2 with the negative), "
                                               "+ 2 d x items per validation row per epoch; ALS: per iteration and grid "
                                               "point 4 d^2 per interaction + (d^3 + 2 d^2) per user and item"},
                   extra={"A": A, "B": B, "seen": seen_trva, "users": users, "items": items, "frame": df,
                          "candidates": candidates, "mats": mats})


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def _rmse(model: Any, tr: pd.DataFrame, va: pd.DataFrame, te: pd.DataFrame, n_users: int, n_items: int,
          candidates: dict[str, Any]) -> None:
    """RMSE of MF's predicted ratings on the held-out rows of known items, beside the global mean and the
    regularized bias baseline mu + b_u + b_i fitted on the training rows."""
    import torch

    mu, bu, bi = bias_baseline(tr["u"].to_numpy(), tr["i"].to_numpy(), tr["rating"].to_numpy(np.float64), n_users, n_items)
    with torch.inference_mode():
        for part, name in ((va, "validation"), (te, "test")):
            known = part[(part["i"] >= 0) & (part["i"] < n_items)]
            r = known["rating"].to_numpy(np.float64)
            u, i = known["u"].to_numpy(), known["i"].to_numpy()
            pred = model(torch.as_tensor(known[["u", "i"]].to_numpy(np.int64))).numpy().astype(np.float64)
            c = candidates["mf"][name]
            c["rmse"] = float(np.sqrt(np.mean((pred - r) ** 2)))
            c["rmse_bias_baseline"] = float(np.sqrt(np.mean((mu + bu[u] + bi[i] - r) ** 2)))
            c["rmse_global_mean"] = float(np.sqrt(np.mean((mu - r) ** 2)))
            candidates["popularity"][name]["rmse"] = c["rmse_global_mean"]
            c["rated_rows"] = int(len(known))


def _parity(model_bytes: bytes, users: np.ndarray, items: np.ndarray, A: np.ndarray, B: np.ndarray,
            seen: list[np.ndarray], test_users: np.ndarray) -> dict[str, Any]:
    import onnxruntime as ort

    u = np.unique(test_users)[:500]
    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    k = min(K_METRIC, len(items))
    got_items, got_scores = sess.run(["items", "scores"], {"user": users[u].astype(object), "k": np.full(len(u), k, np.int64)})
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
