"""Rows asking for forecasts -> the forecasting graph's feeds (window, start, step).

A row names a time (the package's time column, or ``timestamp``) and, for a package of many series, the series
(the training id column). The window is the stored history of that series (``history.json``: its last L values
and the time of the last one); the time must be one of the H steps after it. Anything else is one
:class:`~fulcrum.errors.DataError` naming the row, the value and the valid range.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ...errors import DataError, SchemaError
from ._data import ONE_SERIES, epoch_seconds

__all__ = ["ForecastCodec", "expand_history", "HISTORY_COLUMNS"]

#: the extra columns a history request (``{"history": [...]}``) adds for the codec: the values and their end time
HISTORY_COLUMNS = ("history", "history_end")
HISTORY_KEYS = ("history", "horizon", "end", "times")


def _time(v: Any, what: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(v) if isinstance(v, str) and v.strip() else None
    except (ValueError, TypeError):
        ts = None
    if ts is None or ts is pd.NaT:
        raise DataError(f"{what} must be a date or time string such as '2020-01-31'; got {v!r}.")
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


def expand_history(manifest: Mapping[str, Any], body: Mapping[str, Any]) -> tuple[dict[str, list[Any]], int]:
    """``{"history": [v, ...], "horizon": h, "end": time | "times": [time, ...]}`` -> the rows (one per step
    1..h after the history's end) with the history as extra columns; every problem one DataError/SchemaError.

    ``history``: the series' latest values, oldest first, at least ``lags`` of them; ``horizon``: 1..H (default H);
    ``end``: the time of the last value, or ``times``: one time per value (then checked: no duplicates, in
    order, regular steps); neither: the end of the history stored in the package (one-series models only)."""
    t = manifest["task"]
    L, H, freq, ts_col, sid_col = int(t["lags"]), int(t["horizon"]), str(t["freq"]), t["timestamp"], t.get("series_column")
    covs = list(t.get("covariates") or [])
    unknown = [str(k) for k in body if k not in HISTORY_KEYS and k not in covs]
    if unknown:
        raise SchemaError(f"Unknown key(s) {unknown} in a history request; it takes {', '.join(HISTORY_KEYS + tuple(covs))} "
                          "(or send {\"records\": [...]} instead).")
    hist = body["history"]
    if not isinstance(hist, list) or not hist:
        raise SchemaError("'history' must be a non-empty list of numbers: the series' latest values, oldest first.")
    for i, v in enumerate(hist):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
            raise SchemaError(f"'history' must hold numbers (the series' latest values, oldest first); item {i} is {v!r}.")
    if len(hist) < L:
        raise DataError(f"'history' has {len(hist)} value(s); this model reads a window of the last {L} (lags): send at "
                        f"least {L} values.")
    h = body.get("horizon", H)
    if isinstance(h, bool) or not isinstance(h, int) or not 1 <= h <= H:
        raise DataError(f"'horizon' must be a whole number from 1 to {H} (the most steps this model was trained to "
                        f"forecast); got {h!r}.")
    times = body.get("times")
    if times is not None:
        if not isinstance(times, list) or len(times) != len(hist):
            raise SchemaError(f"'times' must be a list of {len(hist)} times, one per 'history' value.")
        tt = pd.DatetimeIndex([_time(v, f"'times' item {i}") for i, v in enumerate(times)])
        dup = tt[tt.duplicated()]
        if len(dup):
            raise DataError(f"'times' has duplicate timestamps: {dup[0].isoformat()} appears more than once; a series has "
                            "one value per time.")
        if not tt.is_monotonic_increasing:
            i = int(np.flatnonzero(np.diff(tt.asi8) < 0)[0])
            raise DataError(f"'times' are not in time order: {tt[i + 1].isoformat()} comes after {tt[i].isoformat()}; "
                            "send the history oldest first.")
        grid = pd.date_range(tt[0], periods=len(tt), freq=freq)
        if not (grid == tt).all():
            i = int(np.flatnonzero(grid != tt)[0])
            raise DataError(f"'times' are not consecutive {freq!r} steps: item {i} is {tt[i].isoformat()}, expected "
                            f"{grid[i].isoformat()}; fill missing steps first (this model forecasts from a regular series).")
        end = tt[-1]
        if body.get("end") is not None and _time(body["end"], "'end'") != end:
            raise DataError("'end' and the last of 'times' differ; send one of them.")
    elif body.get("end") is not None:
        end = _time(body["end"], "'end'")
        if not len(pd.date_range(end, periods=1, freq=freq).intersection([end])):
            raise DataError(f"'end' {end.isoformat()} is not on this model's {freq!r} grid (e.g. {t.get('next')!r}).")
    else:
        if sid_col:
            raise SchemaError("This model forecasts many series: say when the history ends with 'end' (or 'times').")
        end = pd.date_range(end=pd.Timestamp(t["next"]), periods=2, freq=freq)[0]
    nxt = pd.date_range(end, periods=h + 1, freq=freq)[1:]
    cols: dict[str, list[Any]] = {ts_col: [x.isoformat() for x in nxt], "history": [list(map(float, hist))] * h,
                                  "history_end": [end.isoformat()] * h}
    if sid_col:
        cols[sid_col] = [None] * h
    for c in covs:
        v = body.get(c)
        if not isinstance(v, list) or len(v) != h:
            raise DataError(f"{c!r} is a known-future covariate of this model: send its {h} value(s) for the forecast "
                            f"steps as a list, e.g. \"{c}\": [{', '.join(['0'] * min(h, 3))}{', ...' if h > 3 else ''}].")
        cols[c] = list(v)
    return cols, h


class ForecastCodec:
    def __init__(self, manifest: Mapping[str, Any], history: Mapping[str, Any]) -> None:
        task = manifest["task"]
        self.ts_col = task["timestamp"]
        self.sid_col = task.get("series_column")
        self.freq = history["freq"]
        self.H = int(history["horizon"])
        self.L = int(history["lags"])
        self.covs: list[str] = list(history.get("covariates") or [])
        self.input_names = ["window", "start", "step"] + (["future"] if self.covs else [])
        self.last_extra_: list[str] | None = None
        self.last_unknown_: dict[str, list[str]] | None = None
        self.series: dict[str, tuple[np.ndarray, pd.DatetimeIndex, dict[pd.Timestamp, int], dict[pd.Timestamp, int]]] = {}
        self.times: dict[str, pd.DatetimeIndex] = {}
        for sid, h in history["series"].items():
            values = np.asarray(h["values"], np.float32)
            end = pd.Timestamp(h["end"])
            times = pd.date_range(end=end, periods=len(values), freq=self.freq)
            nxt = pd.date_range(end, periods=self.H + 1, freq=self.freq)[1:]
            past = {t: i for i, t in enumerate(times) if i >= self.L}
            self.series[str(sid)] = (values, nxt, {t: i + 1 for i, t in enumerate(nxt)}, past)
            self.times[str(sid)] = times

    def _names(self) -> list[str]:
        return [self.ts_col] + (["timestamp"] if self.ts_col != "timestamp" else [])

    def _cov_values(self, get: Any, n: int, rows: bool = True) -> np.ndarray | None:
        """(n, C) the rows' known-future covariates (``get(name)`` -> the column's values or None)."""
        if not self.covs:
            return None
        missing = [c for c in self.covs if get(c) is None]
        if missing:
            raise SchemaError(f"Missing known-future covariate(s) {missing}: this model needs each one's value at the time "
                              "it forecasts (e.g. the holiday flag of that day); add them to every row.")
        out = np.empty((n, len(self.covs)), np.float32)
        for j, c in enumerate(self.covs):
            vals = list(get(c))
            for i, v in enumerate(vals):
                try:
                    x = float(v)
                except (TypeError, ValueError):
                    x = None
                if x is None or not np.isfinite(x):
                    where = f"row {i} (0-based)" if rows else "the row"
                    raise DataError(f"Known-future covariate {c!r} at {where} is {v!r}; this model needs a number there "
                                    "(its value at the time to forecast).")
                out[i, j] = x
        return out

    def _encode(self, times: Sequence[Any], ids: Sequence[Any] | None, rows: bool = True,
                histories: Sequence[Any] | None = None, ends: Sequence[Any] | None = None,
                covs: np.ndarray | None = None) -> dict[str, np.ndarray]:
        n = len(times)
        window = np.empty((n, self.L), np.float32)
        start = np.empty((n, 1), np.int64)
        step = np.empty((n, 1), np.int64)
        feeds_future = {} if covs is None else {"future": np.repeat(covs[:, None, :], self.H, axis=1)}
        for i, t in enumerate(times):
            where = f" at row {i} (0-based)" if rows else ""
            if histories is not None and histories[i] is not None:  # the request's own history (expand_request)
                values = np.asarray(histories[i], np.float32)
                end = pd.Timestamp(ends[i])  # type: ignore[index]
                nxt = pd.date_range(end, periods=self.H + 1, freq=self.freq)[1:]
                ts = pd.Timestamp(t)
                if len(values) < self.L or ts not in nxt:
                    raise DataError(f"Row {i}: a history of {len(values)} values ending {end.isoformat()} cannot forecast "
                                    f"{ts.isoformat()}; it needs >= {self.L} values and a time among the {self.H} after it.")
                window[i] = values[-self.L:]
                start[i, 0] = epoch_seconds(nxt[:1])[0]
                step[i, 0] = int(nxt.get_loc(ts)) + 1
                continue
            if ids is None:
                sid = next(iter(self.series)) if len(self.series) == 1 else None
                if sid is None:
                    raise SchemaError(f"This model forecasts {len(self.series)} series; name one in column "
                                      f"{self.sid_col!r}{where}.")
            else:
                sid = "" if ids[i] is None else str(ids[i])
                if sid not in self.series:
                    known = ", ".join(list(self.series)[:10])
                    raise DataError(f"Unknown series {ids[i]!r} in {self.sid_col!r}{where}; this model knows {known}.")
            values, nxt, pos, past = self.series[sid]
            try:
                ts = pd.Timestamp(t) if t is not None and t == t and str(t).strip() else None
            except (ValueError, TypeError):
                ts = None
            if ts is None:
                raise DataError(f"{self.ts_col!r}{where} must be a date or time such as {nxt[0].isoformat()!r}; got {t!r}.")
            if ts.tzinfo is not None:
                ts = ts.tz_convert("UTC").tz_localize(None)
            h = pos.get(ts)
            if h is not None:  # the future: from the end of the stored history
                window[i] = values[-self.L:]
                start[i, 0] = epoch_seconds(nxt[:1])[0]
                step[i, 0] = h
                continue
            j = past.get(ts)
            if j is None:
                of = f" of series {sid!r}" if sid != ONE_SERIES else ""
                raise DataError(
                    f"{self.ts_col!r}{where} is {ts.isoformat()}, not one of the {self.H} steps ({self.freq}) after the "
                    f"stored history{of}: {nxt[0].isoformat()} .. {nxt[-1].isoformat()}. This model forecasts at most "
                    f"{self.H} steps ahead (horizon); retrain on newer data to forecast later times.")
            # a stored time: the backtest forecast, from the origin of its fold (origins every H steps back from the end)
            n = len(values)
            o = n - self.H * int(np.ceil((n - j) / self.H))
            if o < self.L:
                o += self.H
            window[i] = values[o - self.L:o]
            start[i, 0] = epoch_seconds(self.times[sid][o:o + 1])[0]
            step[i, 0] = j - o + 1
        return {"window": window, "start": start, "step": step, **feeds_future}

    def _pick(self, keys: Sequence[Any]) -> str:
        for name in self._names():
            if name in keys:
                return name
        raise SchemaError(f"No time column: each row needs {self.ts_col!r}, the time to forecast; got "
                          f"{sorted(map(str, keys))[:10]}.")

    def _extra(self, keys: Sequence[Any]) -> list[str]:
        return [str(c) for c in keys if c not in self._names() and c != self.sid_col and c not in HISTORY_COLUMNS
                and c not in self.covs]

    def encode_frame(self, df: pd.DataFrame, on_unknown: str = "ignore") -> dict[str, np.ndarray]:
        name = self._pick(list(df.columns))
        self.last_extra_, self.last_unknown_ = self._extra(list(df.columns)), {}
        ids = df[self.sid_col].tolist() if self.sid_col and self.sid_col in df.columns else None
        covs = self._cov_values(lambda c: df[c].tolist() if c in df.columns else None, len(df))
        return self._encode(df[name].tolist(), ids, covs=covs)

    def encode_columns(self, cols: Mapping[str, Any], on_unknown: str = "ignore") -> dict[str, np.ndarray]:
        name = self._pick(list(cols))
        values = cols[name]
        if isinstance(values, (str, bytes)):
            raise SchemaError(f"{name!r} must be a list of times (one per row), got a single string; wrap it in a list.")
        arr = np.asarray(values, dtype=object).reshape(-1)
        self.last_extra_, self.last_unknown_ = self._extra(list(cols)), {}
        ids = np.asarray(cols[self.sid_col], dtype=object).reshape(-1).tolist() if self.sid_col and self.sid_col in cols else None
        hist = list(cols["history"]) if "history" in cols else None
        ends = list(cols["history_end"]) if hist is not None and "history_end" in cols else None
        covs = self._cov_values(lambda c: np.asarray(cols[c], dtype=object).reshape(-1).tolist() if c in cols else None, len(arr))
        return self._encode(arr.tolist(), ids, histories=hist if ends is not None else None, ends=ends, covs=covs)

    def encode_row(self, row: Mapping[str, Any], on_unknown: str = "ignore") -> dict[str, np.ndarray]:
        name = self._pick(list(row))
        self.last_extra_, self.last_unknown_ = self._extra(list(row)), {}
        ids = [row[self.sid_col]] if self.sid_col and self.sid_col in row else None
        covs = self._cov_values(lambda c: [row[c]] if c in row else None, 1, rows=False)
        return self._encode([row[name]], ids, rows=False, covs=covs)

    def dummy(self) -> dict[str, np.ndarray]:
        sid = next(iter(self.series))
        covs = np.zeros((1, len(self.covs)), np.float32) if self.covs else None
        return self._encode([self.series[sid][1][0]], [sid] if self.sid_col else None, covs=covs)
