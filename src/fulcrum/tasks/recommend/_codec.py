"""Rows asking for recommendations -> the graph's feeds (user, k).

A row names a user (the training user column, or ``user``) and optionally ``k`` (default: the package's k). A user
id is a string (numbers from a CSV file are read as their text); an unknown user gets the popularity top k.
k must be a whole number from 1 to the catalogue size. Anything else is a SchemaError (422 on the server).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ...errors import SchemaError

__all__ = ["RecommendCodec"]


class RecommendCodec:
    def __init__(self, manifest: Mapping[str, Any]) -> None:
        t = manifest["task"]
        self.user_col = str(t["user"])
        self.k_default = int(t["k"])
        self.n_items = int(t["n_items"])
        self.known_user = str(t.get("example_user") or "")
        self.input_names = ["user", "k"]
        self.last_extra_: list[str] | None = None
        self.last_unknown_: dict[str, list[str]] | None = None

    def _names(self) -> list[str]:
        return [self.user_col] + (["user"] if self.user_col != "user" else [])

    def _pick(self, keys: Sequence[Any]) -> str:
        for name in self._names():
            if name in keys:
                return name
        raise SchemaError(f"No user column: each row needs {self.user_col!r}, the user to recommend items to; got "
                          f"{sorted(map(str, keys))[:10]}.")

    def _user(self, v: Any, where: str) -> str:
        if isinstance(v, (bool, np.bool_)) or v is None or (isinstance(v, float) and v != v):
            raise SchemaError(f"{self.user_col!r}{where} must be a user id (a string); got {v!r}.")
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            v = int(v)
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        s = str(v).strip()
        if not s:
            raise SchemaError(f"{self.user_col!r}{where} is empty; send a user id.")
        return s

    def _k(self, v: Any, where: str) -> int:
        if v is None or (isinstance(v, (float, np.floating)) and v != v):
            return self.k_default
        try:
            x = float(v)
        except (TypeError, ValueError):
            raise SchemaError(f"'k'{where} must be a whole number of items, got {v!r}.") from None
        if isinstance(v, (bool, np.bool_)) or not x.is_integer() or not 1 <= x <= self.n_items:
            raise SchemaError(f"'k'{where} is {v!r}; it must be a whole number from 1 to {self.n_items} (the catalogue "
                              "of items this model recommends from).")
        return int(x)

    def _encode(self, users: Sequence[Any], ks: Sequence[Any] | None, rows: bool = True) -> dict[str, np.ndarray]:
        n = len(users)
        if n == 0:
            raise SchemaError("No rows to recommend for; send at least one user.")
        u = np.empty(n, dtype=object)
        k = np.empty(n, dtype=np.int64)
        for i in range(n):
            where = f" at row {i} (0-based)" if rows else ""
            u[i] = self._user(users[i], where)
            k[i] = self._k(None if ks is None else ks[i], where)
        return {"user": u, "k": k}

    def _extra(self, keys: Sequence[Any]) -> list[str]:
        return [str(c) for c in keys if c not in self._names() and c != "k"]

    def encode_frame(self, df: pd.DataFrame, on_unknown: str = "ignore") -> dict[str, np.ndarray]:
        name = self._pick(list(df.columns))
        self.last_extra_, self.last_unknown_ = self._extra(list(df.columns)), {}
        ks = df["k"].tolist() if "k" in df.columns else None
        return self._encode(df[name].tolist(), ks)

    def encode_columns(self, cols: Mapping[str, Any], on_unknown: str = "ignore") -> dict[str, np.ndarray]:
        name = self._pick(list(cols))
        values = cols[name]
        if isinstance(values, (str, bytes)):
            raise SchemaError(f"{name!r} must be a list of user ids (one per row), got a single string; wrap it in a list.")
        users = np.asarray(values, dtype=object).reshape(-1).tolist()
        ks = np.asarray(cols["k"], dtype=object).reshape(-1).tolist() if "k" in cols else None
        self.last_extra_, self.last_unknown_ = self._extra(list(cols)), {}
        return self._encode(users, ks)

    def encode_row(self, row: Mapping[str, Any], on_unknown: str = "ignore") -> dict[str, np.ndarray]:
        name = self._pick(list(row))
        self.last_extra_, self.last_unknown_ = self._extra(list(row)), {}
        return self._encode([row[name]], [row.get("k")], rows=False)

    def dummy(self) -> dict[str, np.ndarray]:
        return self._encode([self.known_user or "?"], None)
