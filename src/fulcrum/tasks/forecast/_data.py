"""Time-series tables: the time column, frequency, season, the regular grid (missing steps and values
filled and reported), and the statsmodels series offered as built-in datasets."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Callable

import numpy as np
import pandas as pd

from ...errors import ConfigError, DataError

__all__ = ["datetime_column", "prepare_series", "Series", "season_of", "step_index", "builtin_series"]

ONE_SERIES = "_"  # the id of the only series of a table without an id column
#: mean length of a step for calendar frequencies (the step index is round((t - t0) / mean step): exact for
#: every month / quarter / year start or end, whose distance from the linear grid stays under a week)
_MEAN_DAYS = {"M": 30.436875, "Q": 91.310625, "Y": 365.2425}


def _parse_times(values: pd.Series) -> pd.Series | None:
    """The column as datetimes, or None when it is not a time column (numbers are never read as times)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        out = pd.to_datetime(values)
    elif values.dtype == object or pd.api.types.is_string_dtype(values):
        sample = values.dropna().astype(str).head(200)
        if sample.empty or sample.str.fullmatch(r"\s*-?\d+(\.\d+)?\s*").all():
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
            except (ValueError, TypeError):
                return None
            if parsed.notna().mean() < 0.95:
                return None
            out = pd.to_datetime(values.astype("string"), errors="coerce", format="mixed")
    else:
        return None
    if getattr(out.dt, "tz", None) is not None:
        out = out.dt.tz_convert("UTC").dt.tz_localize(None)
    return out


def datetime_column(frame: pd.DataFrame, target: str | None) -> str | None:
    """The first column holding datetimes (a datetime dtype, or strings that parse as dates), not the target."""
    for col in frame.columns:
        if col == target:
            continue
        if _parse_times(frame[col].head(500)) is not None:
            return str(col)
    return None


def _offset_family(freq: str) -> str:
    off = pd.tseries.frequencies.to_offset(freq)
    name = type(off).__name__
    for key, fam in (("Month", "M"), ("Quarter", "Q"), ("Year", "Y"), ("Week", "W"), ("BusinessDay", "B"),
                     ("Day", "D"), ("Hour", "h"), ("Minute", "min"), ("Second", "s")):
        if key in name:
            return fam
    return "other"


def season_of(freq: str) -> int:
    """Steps per seasonal cycle for a frequency: hours 24, days 7, business days 5, weeks 52, months 12,
    quarters 4, minutes 60; years (and anything else) 1 (no season)."""
    fam = _offset_family(freq)
    mult = pd.tseries.frequencies.to_offset(freq).n
    base = {"h": 24, "D": 7, "B": 5, "W": 52, "M": 12, "Q": 4, "min": 60, "s": 60}.get(fam, 1)
    return max(1, base // mult) if mult > 1 else base


def step_seconds(freq: str) -> float:
    """The (mean) length of one step in seconds."""
    fam = _offset_family(freq)
    off = pd.tseries.frequencies.to_offset(freq)
    if fam in _MEAN_DAYS:
        return _MEAN_DAYS[fam] * 86400.0 * off.n
    if fam == "W":
        return 7 * 86400.0 * off.n
    return float(pd.Timedelta(off).total_seconds())


def step_index(times: Any, t0: int, step_s: float) -> np.ndarray:
    """round((t - t0) / step) for epoch-second times: the position of each time on the grid."""
    t = np.asarray(times, dtype=np.int64)
    return np.round((t - np.int64(t0)) / step_s).astype(np.int64)


def epoch_seconds(times: Any) -> np.ndarray:
    return np.asarray(pd.DatetimeIndex(times).as_unit("s").asi8, dtype=np.int64)


def _infer_freq(times: pd.DatetimeIndex) -> str | None:
    """A pandas frequency alias the times lie on (most of them), or None."""
    if len(times) >= 3:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas 3 warns that infer_freq will return an offset
            f = pd.infer_freq(times)
        if f:
            return f if isinstance(f, str) else f.freqstr
    if len(times) < 2:
        return None
    diffs = np.diff(times.as_unit("s").asi8).astype(np.float64)
    mode = float(pd.Series(diffs).mode().iloc[0])
    days = mode / 86400
    cands: list[str] = []
    if 28 <= days <= 31:
        cands = ["MS", "ME"]
    elif 89 <= days <= 92:
        cands = ["QS", "QE"]
    elif 365 <= days <= 366:
        cands = ["YS", "YE"]
    elif days == 7:
        cands = [f"W-{times[0].day_name()[:3].upper()}"]
    elif mode > 0 and mode == int(mode):
        cands = [pd.tseries.frequencies.to_offset(pd.Timedelta(seconds=int(mode))).freqstr]
    best, share = None, 0.0
    for c in cands:
        grid = pd.date_range(times[0], times[-1], freq=c)
        if len(grid) == 0:
            continue
        if len(times) < 0.5 * len(grid):  # most of the grid empty: not a series on this grid
            continue
        s = float(times.isin(grid).mean())
        if s > share:
            best, share = c, s
    return best if share >= 0.9 else None


@dataclasses.dataclass
class Series:
    """One regular series: ``values`` on the grid ``start + i * freq`` (no gaps, no NaN after filling)."""

    id: str
    times: pd.DatetimeIndex
    values: np.ndarray
    covs: np.ndarray | None = None  # (n, C) known-future covariates on the same grid (missing ones carried forward)


def prepare_series(frame: pd.DataFrame, target: str, timestamp: str | None, series: str | None, freq: str | None,
                   log: Callable[[str], None] | None = None,
                   covariates: list[str] | None = None) -> tuple[list[Series], dict[str, Any]]:
    """Read a time-series table into regular series: the checks, the frequency and what was filled.

    Refused with one :class:`DataError` each: no time column, a non-numeric target, duplicate timestamps
    within a series, fewer than 3 rows in a series, times with no inferable frequency."""
    say = log or (lambda msg: None)
    if target not in frame.columns:
        raise DataError(f"No target column {target!r}; the table's columns are {list(map(str, frame.columns))[:10]}.")
    ts_col = timestamp or datetime_column(frame, target)
    if ts_col is None:
        raise DataError(
            "No timestamp column: forecasting needs a column of dates or times (e.g. 2020-01-31 or 2020-01-31 "
            f"12:00) besides the target {target!r}; add one, name it with --set timestamp=COLUMN, or train a table "
            "model with --task tabular.")
    if ts_col not in frame.columns:
        raise DataError(f"No timestamp column {ts_col!r}; the table's columns are {list(map(str, frame.columns))[:10]}.")
    times = _parse_times(frame[ts_col])
    if times is None:
        raise DataError(f"Column {ts_col!r} does not hold dates or times; name the time column with --set timestamp=COLUMN.")
    y = pd.to_numeric(frame[target], errors="coerce")
    bad = frame[target].notna() & y.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"The target {target!r} must be numeric; row {i} holds {frame[target].iloc[i]!r}.")
    if not np.isfinite(y.dropna().to_numpy(dtype=np.float64)).all():
        raise DataError(f"The target {target!r} holds infinite values; replace them with numbers or leave them empty.")
    sid_col = series
    if sid_col is not None and sid_col not in frame.columns:
        raise DataError(f"No series column {sid_col!r}; the table's columns are {list(map(str, frame.columns))[:10]}.")
    ids = frame[sid_col].astype(str) if sid_col else pd.Series(ONE_SERIES, index=frame.index)
    others = [c for c in frame.columns if c not in (target, ts_col, sid_col)]
    if covariates is None:  # every other numeric (or boolean) column
        cov_cols = [str(c) for c in others if pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c])]
    else:
        missing = [c for c in covariates if c not in frame.columns or c in (target, ts_col, sid_col)]
        if missing:
            raise DataError(f"No covariate column(s) {missing}; the table's other columns are {list(map(str, others))[:10]}.")
        cov_cols = [str(c) for c in covariates]
    ignored = [str(c) for c in others if str(c) not in cov_cols]
    notes: dict[str, Any] = {"timestamp": ts_col, "series_column": sid_col, "ignored_columns": ignored,
                             "covariates": cov_cols}
    cov_frame = pd.DataFrame(index=frame.index)
    for c in cov_cols:
        v = pd.to_numeric(frame[c].astype("float64") if pd.api.types.is_bool_dtype(frame[c]) else frame[c], errors="coerce")
        bad_c = frame[c].notna() & v.isna()
        if bad_c.any():
            i = int(np.flatnonzero(bad_c.to_numpy())[0])
            raise DataError(f"The covariate {c!r} must be numeric (e.g. a 0/1 holiday flag); row {i} holds {frame[c].iloc[i]!r}. "
                            "Encode it as numbers, or leave it out with --set covariates=[].")
        cov_frame[c] = v
    if cov_cols:
        say(f"known-future covariate(s): {', '.join(cov_cols)} (their values at each forecast step are inputs; a request "
            "must carry them)")
    if ignored:
        say(f"note: ignored column(s) {', '.join(ignored)}: "
            + ("not numeric, so not usable as known-future covariates" if covariates is None
               else "not among the covariates asked for (--set covariates=...)"))
    df = pd.DataFrame({"t": times, "y": y, "id": ids})
    for j, c in enumerate(cov_cols):
        df[f"c{j}"] = cov_frame[c].to_numpy()
    n_bad_t = int(df["t"].isna().sum())
    if n_bad_t:
        say(f"note: dropped {n_bad_t} row(s) whose {ts_col!r} is empty or not a date")
        df = df[df["t"].notna()]
    if not df["t"].is_monotonic_increasing and sid_col is None:
        say(f"note: rows sorted by {ts_col!r} (they were not in time order)")
    df = df.sort_values(["id", "t"], kind="stable")
    dup = df.duplicated(["id", "t"], keep=False)
    if dup.any():
        first = df[dup].iloc[0]
        where = f" in series {first['id']!r}" if sid_col else ""
        raise DataError(
            f"Duplicate timestamps{where}: {first['t']} appears {int(((df['id'] == first['id']) & (df['t'] == first['t'])).sum())} "
            f"times ({int(dup.sum())} rows share a timestamp). A series has one value per time: aggregate the "
            + ("duplicates first." if sid_col else "duplicates first, or name the column that tells the series apart "
               "with --set series=COLUMN."))
    groups = {k: g for k, g in df.groupby("id", sort=True)}
    short = [k for k, g in groups.items() if len(g) < 3]
    if short:
        raise DataError(f"Series {short[0]!r} has {len(groups[short[0]])} row(s); a forecast needs a history of at "
                        "least 3 time steps (in practice several seasons).")
    if freq is None:
        longest = max(groups.values(), key=len)
        freq = _infer_freq(pd.DatetimeIndex(longest["t"]))
        if freq is None:
            raise DataError(
                f"The times in {ts_col!r} are irregular: no frequency (hourly, daily, weekly, monthly, ...) fits "
                "90% of them. Resample the series to a regular grid first, or give the frequency with --set freq=ALIAS "
                "(a pandas alias such as D, W-SUN, MS).")
    try:
        pd.tseries.frequencies.to_offset(freq)
    except ValueError:
        raise ConfigError(f"freq={freq!r} is not a pandas frequency alias (e.g. h, D, W-SUN, MS, QS, YS).") from None
    out: list[Series] = []
    filled = {"missing_timestamps": 0, "missing_values": 0, "off_grid_rows": 0, "leading_missing_dropped": 0}
    for k, g in groups.items():
        t = pd.DatetimeIndex(g["t"])
        grid = pd.date_range(t[0], t[-1], freq=freq)
        if len(grid) == 0 or grid[0] != t[0]:
            grid = pd.date_range(t[0], t[-1] + pd.tseries.frequencies.to_offset(freq), freq=freq)
        on = t.isin(grid)
        if on.mean() < 0.9:
            raise DataError(f"Series {k!r}: only {on.mean():.0%} of its times lie on the {freq!r} grid; resample it to "
                            "that frequency first, or give another with --set freq=ALIAS.")
        filled["off_grid_rows"] += int((~on).sum())
        s = pd.Series(g["y"].to_numpy(dtype=np.float64)[on], index=t[on]).reindex(grid)
        filled["missing_timestamps"] += int(len(grid) - on.sum())
        n_nan = int(s.isna().sum())
        first = s.first_valid_index()
        if first is None:
            raise DataError(f"Series {k!r} has no values in {target!r}.")
        lead = int((s.index < first).sum())
        s = s[s.index >= first]
        filled["leading_missing_dropped"] += lead
        filled["missing_values"] += n_nan - lead
        s = s.interpolate(method="linear", limit_direction="both")
        covs = None
        if cov_cols:
            cf = pd.DataFrame(g[[f"c{j}" for j in range(len(cov_cols))]].to_numpy(dtype=np.float64)[on], index=t[on]).reindex(s.index)
            n_cov_nan = int(cf.isna().to_numpy().sum())
            if n_cov_nan:
                filled["missing_covariates"] = filled.get("missing_covariates", 0) + n_cov_nan
            covs = cf.ffill().bfill().fillna(0.0).to_numpy(dtype=np.float64)
        out.append(Series(str(k), pd.DatetimeIndex(s.index), s.to_numpy(dtype=np.float64), covs))
    if filled["missing_timestamps"] or filled["missing_values"] or filled["off_grid_rows"]:
        say(f"note: {filled['missing_timestamps']} missing timestamp(s) on the {freq!r} grid inserted; "
            f"{filled['missing_values']} missing value(s) filled by linear interpolation"
            + (f"; {filled['off_grid_rows']} row(s) off the grid dropped" if filled["off_grid_rows"] else "")
            + (f"; {filled['leading_missing_dropped']} leading missing value(s) dropped" if filled["leading_missing_dropped"] else ""))
    notes.update(freq=freq, filled=filled, n_series=len(out))
    return out, notes


# ----------------------------------------------------------------------------- built-in series (statsmodels)


def _sm(name: str) -> pd.DataFrame:
    try:
        import statsmodels.api as sm
    except ImportError:  # pragma: no cover - a dependency
        raise DataError("The forecasting built-in datasets ship with statsmodels; pip install statsmodels.") from None
    return getattr(sm.datasets, name).load_pandas().data


def builtin_series(name: str) -> pd.DataFrame:
    """statsmodels' series as (date, value) tables."""
    if name == "co2":
        d = _sm("co2")
        return pd.DataFrame({"date": pd.DatetimeIndex(d.index).strftime("%Y-%m-%d"), "co2": d["co2"].to_numpy()})
    if name == "sunspots":
        d = _sm("sunspots")
        return pd.DataFrame({"date": [f"{int(y)}-01-01" for y in d["YEAR"]], "sunactivity": d["SUNACTIVITY"].to_numpy()})
    if name == "nile":
        d = _sm("nile")
        return pd.DataFrame({"date": [f"{int(y)}-01-01" for y in d["year"]], "volume": d["volume"].to_numpy()})
    if name == "elnino":
        d = _sm("elnino")
        months = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
        rows = [(f"{int(r.YEAR)}-{i + 1:02d}-01", float(getattr(r, m))) for r in d.itertuples() for i, m in enumerate(months)]
        return pd.DataFrame(rows, columns=["date", "temperature"])
    raise DataError(f"No built-in series {name!r}.")
