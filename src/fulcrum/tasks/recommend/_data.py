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

__all__ = ["Columns", "find_columns", "clean", "split", "make_interactions", "Interactions"]

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
        if rating is not None:
            raise DataError(f"The rating column {r!r} is not numeric; pass numbers (e.g. 1-5 stars or play counts).")
        r = None
    t = timestamp if timestamp is not None else _match([c for c in cols if c not in (u, i, r)], _TIME)
    return Columns(str(u), str(i), None if r is None else str(r), None if t is None else str(t))


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
        raise DataError(f"{int(df['rating'].isna().sum())} row(s) have no numeric rating in {cols.rating!r}.")
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
    df = df.sort_values(["t"], kind="stable").drop_duplicates(["user", "item"], keep="last")
    if len(df) < n:
        say(f"note: {n - len(df)} repeated (user, item) row(s): kept the last of each")
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


def make_interactions(n_users: int = 600, n_items: int = 400, factors: int = 4, per_user: tuple[int, int] = (8, 40),
                      seed: int = 0) -> pd.DataFrame:
    """A seeded interaction table with known latent structure (the built-in ``interactions``).

    Each user and item has a ``factors``-dimensional taste vector (standard normal); item popularity follows a
    Zipf-like law (log weight -0.8 log rank). A user picks between ``per_user`` distinct items without replacement
    with probability proportional to exp(2 u.v / sqrt(factors)) x popularity, in that order (timestamps one day
    apart from a random start); the rating is 3 + 1.2 x the standardized affinity + noise, rounded to 1..5.
    So taste explains who picks what beyond popularity: a factorization model can find it, popularity cannot.
    """
    rng = np.random.default_rng(seed)
    U = rng.normal(size=(n_users, factors))
    V = rng.normal(size=(n_items, factors))
    log_pop = -0.8 * np.log1p(rng.permutation(n_items))
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
