"""Interaction tables: which columns are the user, the item, the rating and the time; cleaning; the split;
and the built-in generator.

Split: per user with at least 3 interactions, the last one (by timestamp when the table has one, else one
drawn with the seed) is the test row and the one before it the validation row; the rest train. Users with fewer
stay in training only. Items are the catalogue of the training rows; a held-out item outside it counts as a miss.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

from ...errors import DataError

__all__ = ["Columns", "find_columns", "clean", "split", "make_interactions", "make_item_features", "true_affinity",
           "read_item_features", "Interactions"]

_USER = ("user", "userid", "user_id", "users", "customer", "customerid", "customer_id", "client", "clientid",
         "visitor", "visitorid", "member", "memberid", "uid", "reader", "listener", "viewer", "buyer")
_ITEM = ("item", "itemid", "item_id", "items", "movie", "movieid", "movie_id", "product", "productid",
         "product_id", "sku", "song", "track", "trackid", "book", "bookid", "isbn", "article", "articleid",
         "artist", "game", "recipe", "iid", "asin", "video", "post", "course", "restaurant", "business")
_RATING = ("rating", "ratings", "score", "stars", "rate", "preference", "plays", "playcount", "count",
           "clicks", "weight", "value")
_TIME = ("timestamp", "time", "ts", "date", "datetime", "created", "created_at", "event_time", "when")

MIN_HELD_OUT = 3  # interactions a user needs to have one test and one validation row held out


def _norm(name: Any) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def _match(columns: list[Any], names: tuple[str, ...]) -> Any:
    want = {_norm(n) for n in names}
    for c in columns:
        if _norm(c) in want:
            return c
    return None


@dataclass(frozen=True)
class Columns:
    user: str
    item: str
    rating: str | None
    timestamp: str | None


def find_columns(frame: pd.DataFrame, target: str | None = None, *, user: str | None = None,
                 item: str | None = None, rating: str | None = None, timestamp: str | None = None,
                 strict: bool = True) -> Columns | None:
    """The interaction columns: given ones checked, the others found by name (``target`` is the item column, or
    the rating column when it is numeric and another column looks like items). ``strict``: raise a DataError
    naming what is missing; else None."""
    cols = list(frame.columns)
    for key, val in (("user", user), ("item", item), ("rating", rating), ("timestamp", timestamp)):
        if val is not None and val not in cols:
            raise DataError(f"{key}={val!r} is not a column of the table; its columns are {', '.join(map(str, cols[:20]))}.")
    if target is not None and target in cols and item is None:
        if _match([target], _RATING) is not None or (pd.api.types.is_numeric_dtype(frame[target]) and _match(cols, _ITEM)):
            rating = rating or target
        else:
            item = target
    u = user or _match([c for c in cols if c not in (item, rating)], _USER)
    i = item or _match([c for c in cols if c not in (u, rating)], _ITEM)
    if u is None or i is None or u == i:
        if not strict:
            return None
        missing = " and ".join(x for x, v in (("a user column", u), ("an item column", i)) if v is None) or "two columns"
        raise DataError(
            f"This table has no {missing} for recommendations (columns: {', '.join(map(str, cols[:20]))}); a "
            "recommender learns from interactions: one row per (user, item), e.g. columns 'user' and 'item' (also "
            "user_id, customer, item_id, movie, product, ...). Name them with --set user=COLUMN --set item=COLUMN.")
    r = rating if rating is not None else _match([c for c in cols if c not in (u, i)], _RATING)
    if r is not None and not pd.api.types.is_numeric_dtype(frame[r]):
        if rating is not None or strict:
            raise DataError(_not_numeric(frame[r], r))
        r = None
    t = timestamp if timestamp is not None else _match([c for c in cols if c not in (u, i, r)], _TIME)
    return Columns(str(u), str(i), None if r is None else str(r), None if t is None else str(t))


def _not_numeric(values: pd.Series, col: str) -> str:
    """The message for a ratings column with values that are not numbers: how many, which, and the fix."""
    num = pd.to_numeric(values, errors="coerce")
    bad = values[num.isna()]
    shown = ", ".join(f"row {int(k) + 1}: {v!r}" for k, v in list(bad.items())[:3])
    return (f"The ratings column {col!r} has {len(bad)} value(s) that are not numbers ({shown}); a rating is a number "
            "(e.g. 1-5 stars or a play count). Fix or drop those rows, drop the column for implicit feedback, or name "
            "another column with --set rating=COLUMN.")


@dataclass
class Interactions:
    """The cleaned interactions with integer codes."""

    users: np.ndarray  # (U,) user ids (str)
    items: np.ndarray  # (I,) item ids (str) of the training catalogue
    frame: pd.DataFrame  # user, item (str), rating (float or NaN), t (sortable), split ("train"|"val"|"test")


def _ids(s: pd.Series, what: str, col: str) -> pd.Series:
    if s.isna().any():
        raise DataError(f"{s.isna().sum()} row(s) have no {what} in column {col!r}; drop them or fill them in.")
    if pd.api.types.is_float_dtype(s) and (s == s.round()).all():
        s = s.astype("int64")
    out = s.astype(str).str.strip()
    if (out == "").any():
        raise DataError(f"{int((out == '').sum())} row(s) have an empty {what} id in column {col!r}.")
    return out


def clean(frame: pd.DataFrame, cols: Columns, say: Callable[[str], None]) -> pd.DataFrame:
    """(user, item, rating, t) with ids as strings, one row per (user, item): the last one."""
    if len(frame) == 0:
        raise DataError("The interaction table is empty.")
    df = pd.DataFrame({"user": _ids(frame[cols.user], "user", cols.user),
                       "item": _ids(frame[cols.item], "item", cols.item)})
    df["rating"] = pd.to_numeric(frame[cols.rating], errors="coerce").to_numpy(float) if cols.rating else np.nan
    if cols.rating and df["rating"].isna().any():
        raise DataError(_not_numeric(frame[cols.rating].reset_index(drop=True), cols.rating))
    if cols.rating and not np.isfinite(df["rating"].to_numpy()).all():
        raise DataError(f"The ratings column {cols.rating!r} holds infinite values; ratings must be finite numbers.")
    if cols.timestamp:
        t = frame[cols.timestamp]
        if not pd.api.types.is_numeric_dtype(t):
            t = pd.to_datetime(t, errors="coerce", utc=True)
            if t.isna().any():
                raise DataError(f"{int(t.isna().sum())} row(s) have a time in {cols.timestamp!r} that is not a date.")
            t = t.astype("int64")
        df["t"] = np.asarray(t, dtype=np.float64)
    else:
        df["t"] = np.arange(len(df), dtype=np.float64)  # file order; the split draws the held-out rows at random
    n = len(df)
    when = ["user", "item"] + (["t"] if cols.timestamp else [])  # without times, file order is no order
    df = df.drop_duplicates(when + ["rating"])
    if len(df) < n:
        say(f"note: dropped {n - len(df)} duplicate interaction row(s) (same user, item"
            f"{', time' if cols.timestamp else ''}{' and rating' if cols.rating else ''})")
    if cols.rating:
        clash = df[df.duplicated(when, keep=False)]
        if len(clash):
            first = clash.iloc[0]
            same = clash[(clash["user"] == first["user"]) & (clash["item"] == first["item"])]
            at = " at the same time" if cols.timestamp else ""
            why = "" if cols.timestamp else " (the table has no timestamp column to tell which is the latest)"
            raise DataError(
                f"{len(clash)} rows give the same (user, item) different ratings{at}, e.g. user {first['user']!r} and "
                f"item {first['item']!r}: {sorted(same['rating'].tolist())}{why}; keep one rating per (user, item)"
                f"{' and time' if cols.timestamp else ''}.")
    m = len(df)
    df = df.sort_values(["t"], kind="stable").drop_duplicates(["user", "item"], keep="last")
    if len(df) < m:
        say(f"note: {m - len(df)} repeated (user, item) interaction(s) at different times: kept the last of each")
    if df["user"].nunique() < 2:
        raise DataError(f"The table has {df['user'].nunique()} user(s); a recommender needs interactions of many users "
                        "(at least 2, and some with 3 or more interactions to hold out and measure).")
    if df["item"].nunique() < 2:
        raise DataError("The table has a single item; there is nothing to recommend.")
    return df.reset_index(drop=True)


def split(df: pd.DataFrame, timed: bool, seed: int) -> pd.DataFrame:
    """Adds ``split``: per user with >= 3 interactions, the last (timed) or a seeded random one is ``test`` and the
    one before it ``val``; everything else ``train``."""
    rng = np.random.default_rng(seed)
    order = df["t"].to_numpy() if timed else rng.random(len(df))
    df = df.assign(_o=order).sort_values(["user", "_o"], kind="stable")
    pos_from_end = df.groupby("user").cumcount(ascending=False).to_numpy()
    size = df.groupby("user")["item"].transform("size").to_numpy()
    lab = np.where((size >= MIN_HELD_OUT) & (pos_from_end == 0), "test",
                   np.where((size >= MIN_HELD_OUT) & (pos_from_end == 1), "val", "train"))
    out = df.drop(columns="_o").assign(split=lab)
    if not (lab == "test").any():
        raise DataError(f"No user has {MIN_HELD_OUT} or more interactions, so none can be held out to measure the "
                        "recommendations; pass more interactions per user.")
    return out.sort_index()


def prepare(frame: pd.DataFrame, cols: Columns, seed: int, say: Callable[[str], None]) -> Interactions:
    df = split(clean(frame, cols, say), cols.timestamp is not None, seed)
    train = df[df["split"] == "train"]
    users = np.asarray(sorted(df["user"].unique()), dtype=object)
    items = np.asarray(sorted(train["item"].unique()), dtype=object)
    return Interactions(users, items, df.reset_index(drop=True))


def _latent(n_users: int, n_items: int, factors: int, seed: int) -> tuple[np.random.Generator, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    U = rng.normal(size=(n_users, factors))
    V = rng.normal(size=(n_items, factors))
    log_pop = -0.8 * np.log1p(rng.permutation(n_items))
    return rng, U, V, log_pop


def true_affinity(n_users: int = 600, n_items: int = 400, factors: int = 4, seed: int = 0) -> np.ndarray:
    """(n_users, n_items) the generator's u.v / sqrt(factors) for make_interactions with the same arguments (row
    ``u{u:04d}``, column ``i{i:04d}``): the known structure a model should recover."""
    _, U, V, _ = _latent(n_users, n_items, factors, seed)
    return U @ V.T / np.sqrt(factors)


def make_item_features(n_users: int = 600, n_items: int = 400, factors: int = 4, seed: int = 0,
                       noise: float = 0.5) -> pd.DataFrame:
    """Item features for make_interactions with the same arguments: ``item``, ``f0``..``f{factors-1}`` (the item's
    taste vector + normal noise of scale ``noise``) and ``genre`` (``g<j>``: the dimension with the largest
    value), so the features tell a model where a never-seen item sits in the latent space."""
    _, _, V, _ = _latent(n_users, n_items, factors, seed)
    noisy = V + np.random.default_rng(seed + 1).normal(scale=noise, size=V.shape)
    frame = pd.DataFrame(noisy, columns=[f"f{j}" for j in range(factors)])
    frame.insert(0, "item", [f"i{i:04d}" for i in range(n_items)])
    frame["genre"] = [f"g{j}" for j in np.argmax(V, axis=1)]
    return frame


def make_interactions(n_users: int = 600, n_items: int = 400, factors: int = 4, per_user: tuple[int, int] = (8, 40),
                      seed: int = 0) -> pd.DataFrame:
    """A seeded interaction table with known latent structure (the built-in ``interactions``).

    Each user and item has a ``factors``-dimensional taste vector (standard normal); item popularity follows a
    Zipf-like law (log weight -0.8 log rank). A user picks between ``per_user`` distinct items without replacement
    with probability proportional to exp(2 u.v / sqrt(factors)) x popularity, in that order (timestamps one day
    apart from a random start); the rating is 3 + 1.2 x the standardized affinity + noise, rounded to 1..5.
    So taste explains who picks what beyond popularity: a factorization model can find it, popularity cannot.
    """
    rng, U, V, log_pop = _latent(n_users, n_items, factors, seed)
    aff = U @ V.T / np.sqrt(factors)
    logits = 2.0 * aff + log_pop[None, :]
    rows = []
    t0 = pd.Timestamp("2024-01-01")
    for u in range(n_users):
        m = int(rng.integers(per_user[0], per_user[1] + 1))
        p = np.exp(logits[u] - logits[u].max())
        p /= p.sum()
        picked = rng.choice(n_items, size=m, replace=False, p=p)
        start = int(rng.integers(0, 200))
        for j, i in enumerate(picked):
            r = float(np.clip(np.round(3 + 1.2 * aff[u, i] + rng.normal(scale=0.5)), 1, 5))
            rows.append((f"u{u:04d}", f"i{i:04d}", r, (t0 + pd.Timedelta(days=start + j)).isoformat()))
    return pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])


MAX_CATEGORIES = 50  # one-hot columns per categorical item feature (the most frequent; the rest share "other")


def read_item_features(source: Any, item_col: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """An item-features table -> (item ids (str), (n, p) float64 standardized features, feature names).

    The table needs the interactions' item column (or ``item``) and at least one other column; numeric columns are
    standardized (missing -> 0, the mean), others one-hot (the 50 most frequent values). One row per item."""
    from ...data import read_table

    try:
        table = read_table(source)
    except DataError as exc:
        raise DataError(f"item_features={source!r}: {exc}") from None
    col = item_col if item_col in table.columns else _match(list(table.columns), _ITEM)
    if col is None:
        raise DataError(f"The item features table {source!r} has no item column {item_col!r} (columns: "
                        f"{', '.join(map(str, list(table.columns)[:20]))}); it needs one row per item with its id in "
                        f"{item_col!r} and the features in other columns.")
    ids = _ids(table[col], "item", col)
    dup = ids[ids.duplicated()]
    if len(dup):
        raise DataError(f"The item features table {source!r} lists {dup.nunique()} item(s) more than once, e.g. "
                        f"{dup.iloc[0]!r}; keep one row per item.")
    parts: list[np.ndarray] = []
    names: list[str] = []
    for c in table.columns:
        if c == col:
            continue
        v = table[c]
        if pd.api.types.is_bool_dtype(v) or pd.api.types.is_numeric_dtype(v):
            x = v.to_numpy(np.float64)
            ok = np.isfinite(x)
            mean = float(x[ok].mean()) if ok.any() else 0.0
            std = float(x[ok].std()) if ok.sum() > 1 else 0.0
            parts.append(np.where(ok, (x - mean) / (std if std > 0 else 1.0), 0.0)[:, None])
            names.append(str(c))
        else:
            text = v.astype(str).where(v.notna(), "")
            top = [t for t in text.value_counts().index[:MAX_CATEGORIES] if t != ""]
            for t in top:
                parts.append((text == t).to_numpy(np.float64)[:, None])
                names.append(f"{c}={t}")
    if not parts:
        raise DataError(f"The item features table {source!r} has no feature columns besides {col!r}.")
    return ids.to_numpy(dtype=object), np.concatenate(parts, axis=1), names
