"""RecommendTask: top-k recommendations from interactions behind the task contract (tasks/_base.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np
import pandas as pd

from .._base import InputCodec, InputField, ReadJson, Task, TaskExample, Trained, VariantKind
from ._config import RecommendConfig

__all__ = ["RecommendTask"]


class RecommendTask(Task):
    """Recommendations: a table of (user, item[, rating][, timestamp]) interactions -> the top-k unseen items of a
    user. Models: ``popularity`` (the baseline), ``mf`` (matrix factorization: BPR on implicit feedback, squared
    error on ratings) and ``als`` (implicit-feedback ALS from the ``implicit`` library). ``model.onnx`` takes user
    ids (strings) and k (optional: the package's default); unknown users get the popularity top k, and the
    ``basis`` output says so per row. With ``item_features``, items without interactions are scored from them."""

    name: ClassVar[str] = "recommend"
    summary: ClassVar[str] = ("recommendations from (user, item) interactions: popularity baseline, matrix "
                              "factorization (BPR / ratings) and ALS (implicit), top-k unseen items in one graph, "
                              "popularity for new users, item features for new items")
    kinds: ClassVar[tuple[str, ...]] = ("ranking",)
    config_class: ClassVar[type | None] = RecommendConfig

    def example(self) -> TaskExample:
        """The seeded generator (make_interactions) at 250 users x 150 items, MF with 8 factors; ``requests``: known
        users with k, and an unknown one (popularity)."""
        from ._data import make_interactions

        frame = make_interactions(n_users=250, n_items=150, per_user=(6, 20), seed=0)
        users = sorted(frame["user"].unique())[:11] + ["new-user"]
        requests = pd.DataFrame({"user": users, "k": [10] * len(users)})  # the default k: the shorthand sends none
        return TaskExample(frame, "item", {"model": "mf", "factors": 8, "epochs": 15},
                           "make_interactions(250 users, 150 items), matrix factorization", requests=requests)

    def detect(self, frame: pd.DataFrame, target: str | None) -> str | None:
        from ._data import find_columns

        if target is not None and target not in frame.columns:
            return None
        cols = find_columns(frame, target, strict=False)
        if cols is None:
            return None
        if target is not None and target not in (cols.item, cols.rating):
            return None
        known = {cols.user, cols.item, cols.rating, cols.timestamp} - {None}
        if len(set(frame.columns) - known) > 1:
            return None  # a table with many other columns is a prediction problem, not interactions
        if frame[cols.user].nunique() < 2 or frame[cols.user].nunique() > 0.9 * len(frame):
            return None  # one row per user is not a history of interactions
        extra = f", ratings in {cols.rating!r}" if cols.rating else ""
        return f"columns {cols.user!r} and {cols.item!r} are users and items{extra}: interactions"

    def fit(self, frame: pd.DataFrame, config: Any, *, source: str = "dataframe", callbacks: Sequence[Any] = (),
            checkpoint_dir: str | Path | None = None, log: Callable[[str], None] | None = None) -> Trained:
        from ._fit import fit_recommend

        return fit_recommend(frame, config, source=source, callbacks=callbacks, checkpoint_dir=checkpoint_dir, log=log)

    def splits(self, package: Any, data: Any = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """The run's (train, validation, test) interactions (user and item columns), re-created from the source."""
        from .._base import read_source
        from ._data import Columns, prepare

        m = package.manifest
        frame, _ = read_source(m, data)
        c = m["data"]["columns"]
        cols = Columns(c["user"], c["item"], c.get("rating"), c.get("timestamp"))
        df = prepare(frame, cols, int(m["config"].get("seed", 0)), lambda s: None).frame
        parts = tuple(pd.DataFrame({cols.user: p["user"].to_numpy(), cols.item: p["item"].to_numpy()})
                      for p in (df[df["split"] == s] for s in ("train", "val", "test")))
        return parts  # type: ignore[return-value]

    def evaluate(self, manifest: Mapping[str, Any], truth: Sequence[Any], outputs: Mapping[str, Any]) -> dict[str, Any]:
        """recall@10, NDCG@10, MAP@10 and coverage of the ``items`` output against one held-out item per row (an
        item outside the catalogue is a miss; ``cold_start_rows``: rows of users the model has not seen)."""
        from ._models import ranking_metrics

        items = np.asarray(outputs["items"], dtype=object)
        items = np.vectorize(lambda x: x.decode() if isinstance(x, bytes) else str(x), otypes=[object])(items) if items.size else items
        truth_s = np.asarray([str(t) for t in truth], dtype=object)
        top = (items[:, :10] == truth_s[:, None]) if len(truth_s) else np.zeros((0, 1), bool)
        # codes: the column of the hit, else -1; ranking_metrics compares codes
        codes = np.where(top, np.arange(top.shape[1])[None, :], -2)
        out = ranking_metrics(codes, np.where(top.any(1), top.argmax(1), -1), int(manifest["task"]["n_items"]), 10)
        out["coverage@10"] = float(len({x for x in items[:, :10].ravel().tolist() if x}) / max(int(manifest["task"]["n_items"]), 1))
        out["n"] = int(len(truth_s))
        if "basis" in outputs:  # rows of users the model has not seen, answered by the popularity fallback
            basis = [b.decode() if isinstance(b, bytes) else str(b) for b in np.asarray(outputs["basis"]).reshape(-1)]
            out["cold_start_rows"] = int(sum(b == "popularity" for b in basis))
        return out

    def table_metrics(self, predictor: Any, frame: pd.DataFrame) -> dict[str, Any]:
        """On explicit ratings: ``rmse`` of the model's predicted ratings against the table's rating column, beside
        ``rmse_global_mean`` (the training ratings' mean on the same rows). The predicted rating of (user, item) is
        the graph's score of that item for that user (matrix factorization scores are mu + b_u + b_i + p_u . q_i),
        read from the graph asked for every item (k = catalogue size); ``rated_rows``: rows of a known user and a
        catalogue item the user had not already rated in training; ``unrated_rows``: the others (a new user gets
        popularity, not ratings; an unknown or already-seen item has no score). A popularity model predicts no
        ratings: its RMSE is the training mean's, on every row with a rating."""
        m = predictor.manifest
        t = m["task"]
        rating_col, user_col, item_col = t.get("rating"), t["user"], t["item"]
        if t.get("feedback") != "explicit" or not rating_col or rating_col not in frame.columns:
            return {}
        r = pd.to_numeric(frame[rating_col], errors="coerce").to_numpy(np.float64)
        has = np.isfinite(r)
        mean = m["model"].get("rating_mean")
        out: dict[str, Any] = {}
        if m["model"]["family"] == "popularity":
            if mean is None or not has.any():
                return {}
            e = r[has] - mean
            rmse = float(np.sqrt(np.mean(e ** 2)))
            return {"rmse": rmse, "rmse_global_mean": rmse, "rated_rows": int(has.sum()), "unrated_rows": int((~has).sum()),
                    "rating_model": "training mean (the popularity model ranks by counts; it predicts no ratings)"}
        users = frame[user_col].astype(str).to_numpy(object)
        items = frame[item_col].astype(str).to_numpy(object)
        n_items = int(t["n_items"])
        pred = np.full(len(frame), np.nan)
        uniq, inv = np.unique(users[has], return_inverse=True)
        rows = np.flatnonzero(has)
        chunk = max(1, 2_000_000 // max(n_items, 1))
        for start in range(0, len(uniq), chunk):
            part = uniq[start:start + chunk]
            o = predictor.predict_outputs(pd.DataFrame({user_col: part, "k": np.full(len(part), n_items, np.int64)}))
            top = np.vectorize(lambda x: x.decode() if isinstance(x, bytes) else str(x), otypes=[object])(o["items"])
            basis = [b.decode() if isinstance(b, bytes) else str(b) for b in np.asarray(o["basis"]).reshape(-1)]
            scores = np.asarray(o["scores"], np.float64)
            sel = (inv >= start) & (inv < start + len(part))
            for row, j in zip(rows[sel], inv[sel] - start):
                if basis[j] != "personalized":
                    continue
                hit = np.flatnonzero(top[j] == items[row])
                if len(hit):
                    pred[row] = scores[j, hit[0]]
        rated = np.isfinite(pred)
        out["rated_rows"] = int(rated.sum())
        out["unrated_rows"] = int(len(frame) - rated.sum())
        if rated.any():
            out["rmse"] = float(np.sqrt(np.mean((pred[rated] - r[rated]) ** 2)))
            if mean is not None:
                out["rmse_global_mean"] = float(np.sqrt(np.mean((mean - r[rated]) ** 2)))
        return out

    # ------------------------------------------------------------------ inference side

    def input_codec(self, manifest: Mapping[str, Any], read_json: ReadJson) -> InputCodec:
        from ._codec import RecommendCodec

        return RecommendCodec(manifest)

    def request_schema(self, manifest: Mapping[str, Any]) -> list[InputField]:
        t = manifest["task"]
        return [InputField(t["user"], "id", ("BYTES",), description=(
                    "the user id (a string); a user the model has not seen gets the popularity top k (the "
                    "response's basis says 'popularity' for that row)"),
                    example=t.get("example_user")),
                InputField("k", "numeric", ("INT64", "INT32", "FP64", "FP32"), required=False,
                           description=f"how many items (1 to {t['n_items']}; optional: default {t['k']})",
                           limits={"min": 1, "max": int(t["n_items"])}, example=int(t["k"]))]

    def shorthand(self, manifest: Mapping[str, Any]) -> tuple[str, str] | None:
        return ("users", manifest["task"]["user"])

    def variant_kinds(self, manifest: Mapping[str, Any]) -> tuple[list[VariantKind], dict[str, str]]:
        why = {"int8-dynamic": "measured: the graph is one small MatMul (D x items) beside a TopK; int8 would quantize "
                               "the item matrix, but ONNX Runtime's dynamic quantizer does not take this graph's "
                               "string and int64 ops apart from the MatMul, and at batch 1 the time is the TopK and "
                               "the call; not offered",
               "int8-static": "as int8-dynamic", "pruned": "no network to prune (two factor matrices)",
               "distilled": "the model is already two matrices", "trees": "for the tabular task",
               "shallow": "for the tabular task"}
        return [VariantKind("onnx-fp32")], why

    def flops_per_prediction(self, manifest: Mapping[str, Any]) -> tuple[int, str]:
        t, m = manifest["task"], manifest["model"]
        n, d = int(t["n_items"]), int(m["dim"])
        return int(2 * d * n + 2 * n + n * max(1, int(np.log2(max(int(t["k"]), 2))))), \
            "2 x D x items (MatMul) + mask + items x log2 k (TopK)"
