"""Fulcrum's default forecaster vs statsforecast (AutoETS, AutoARIMA, SeasonalNaive) on statsmodels' series.

    .venv/bin/python benchmarks/bench_forecast.py [--series co2,sunspots,...] [--folds 10 --test-folds 4]
                                                  [--peer-limit 300] [--peers-venv .venv-peers] [--json out.json]

Series. ``design``: the four built-ins (co2, sunspots, nile, elnino) that Fulcrum's forecasting defaults were
developed on (their held-out folds were looked at while choosing candidates and rules). ``unseen``: series that
played no part in that: the quarterly US macro series in statsmodels' ``macrodata`` (realgdp, realcons, realinv,
cpi, m1, unemp, tbilrate; 1959-2009, 203 quarters) and ``elec_equip`` (euro-area electrical equipment orders,
monthly 1995-2016, 257 months); all ship with statsmodels (nothing is downloaded). Those twelve were then
looked at while adding the ``drift`` and ``arima`` candidates, so they are design series too now. ``holdout``:
fixed before any run of them (the rule, written before any result was seen): every further statsmodels series of
the same kind that loads offline and nobody had run: ``macrodata`` realgovt, realdpi, infl, realint, pop (203
quarters); ``interest_inflation`` Dp, R (107 quarters, 1972-1998); ``danish_data`` lrm, lry, ibo, ide (55
quarters, 1974-1987); ``fertility``: the first 8 countries in the file's order with no missing year over
1960-2011 (52 years; 2012-2013 are empty for every country): ABW, AFG, AGO, ALB, ARE, ARG, ARM, ATG. That
group was run once (s18b) and its results were looked at while changing the selection rule (s19), so all 31
series above are design series now. ``holdout2``: fixed in s19 before any run of them (the rule, written and
committed before anything was run on them): ``danish_data`` lpy (the one remaining column of the datasets above;
55 quarters) and 20 ``fertility`` codes drawn without replacement by ``numpy.random.default_rng(20261201)
.choice`` from the codes (rows in the file's order) with no missing year over 1960-2011 that no group above uses
(184 codes; the file's aggregates such as WLD count like countries): IND, IRN, GNB, MNG, DNK, CYP, BHR, GRD, LBR,
SEN, HRV, GUM, ISR, SSD, BIH, TKM, LCN, CMR, MRT, LCA. That group was run once (s19) and its results were
looked at while changing the ``arima`` candidate (s19b), so it is a design group now (``design_all`` counts it).
``holdout3``: fixed in s19b before any run of them (the rule, written and committed before anything was run on
them or the model was changed): 20 ``fertility`` codes drawn without replacement by
``numpy.random.default_rng(2026120119).choice`` from the complete codes (rows in the file's order, as above) that
no group above uses (164 codes): MAC, MUS, MYS, VEN, NZL, HKG, MKD, PAN, KHM, PAK, GUY, NLD, RWA, DOM, BEL, BDI,
IDN, YEM, URY, GIN. That group was run once (s19b) and its results were looked at while changing the
selection and the ``arima`` candidate (s20), so it is a design group now (``design_all`` counts it).
``holdout4``: fixed in s20 before any run of them and before any change of that session (the rule, written and
committed first): 40 ``fertility`` codes drawn without replacement by ``numpy.random.default_rng(2026120121)
.choice`` from the complete codes (rows in the file's order, as above) that no group above uses (144 codes):
LKA, RUS, TJK, NIC, LTU, FJI, NGA, PHL, MLI, EST, SVK, LBY, PRK, CUB, BRB, SLB, TLS, KWT, BLR, SLE, WSM, SDN, GTM,
SLV, PNG, EGY, LVA, CPV, ISL, COM, MAR, IRL, NAM, HTI, AUS, DJI, PYF, OMN, BRA, SVN (40 rather than 20: the
average over 20 short series moved by more than the gaps being measured). statsmodels ships no further regular
series long enough for the backtest (longley, copper, grunfeld, strikes: 16-25 steps or panels); ``--groups``
runs only some groups.

Short series: the backtest uses ``--folds`` (10) origins with the last ``--test-folds`` (4) held out when
Fulcrum's plan fits the series; otherwise one fold fewer at a time (never under 6; still 4 held out) until it
fits. The same origins go to every system (danish_data: 9 folds; fertility: 6).

The same rolling-origin backtest for everyone: Fulcrum's plan (season, horizon H) on each series, origins H steps
apart at the end of the series; the last ``--test-folds`` origins are held out. Fulcrum trains with its default
options (``model=auto``: the candidate is chosen on the earlier origins only), and its forecasts at the held-out
origins are those of its backtest (each fitted on the data before the origin). Each peer is fitted on
``values[:origin]`` at each held-out origin and forecasts H steps. MASE: mean absolute error over the in-sample
seasonal-naive MAE of the data before the origin (the same scale for everyone).

Peers run in the peers' virtualenv (``make bench-peers``) through ``benchmarks/peers/run_forecast_peer.py``: one
subprocess per (series, model), killed (its whole process group) after ``--peer-limit`` seconds of wall clock,
import included; such a cell reads "did not finish in N s" and has no MASE. Averages: per system over the series
it finished (``n`` says how many), and over the series every system finished (the fair comparison; the verdict
uses it).

Intervals: each system's own 90% prediction intervals (Fulcrum's default coverage) at the held-out origins:
Fulcrum's from its run (conformal on the validation folds, never narrower than each fold model's in-sample
errors: the intervals its run measures its coverage with), the peers' from statsforecast (``level=[90]``); coverage = the share of the held-out values
inside, per series, then averaged over the series (with the 10th percentile, since one series' coverage over
4 x H correlated points is noisy).

Time: Fulcrum's whole training run (backtest of every candidate on every fold, selection, intervals, refit, ONNX
export and parity check); the peers' fit + forecast at the held-out origins only (measured inside the subprocess).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
DESIGN = {"co2": "co2", "sunspots": "sunactivity", "nile": "volume", "elnino": "temperature"}
MACRO = ("realgdp", "realcons", "realinv", "cpi", "m1", "unemp", "tbilrate")
UNSEEN = (*MACRO, "elec_equip")
HOLD_MACRO = ("realgovt", "realdpi", "infl", "realint", "pop")
HOLD_II = ("Dp", "R")
HOLD_DANISH = ("lrm", "lry", "ibo", "ide")
FERTILITY = ("ABW", "AFG", "AGO", "ALB", "ARE", "ARG", "ARM", "ATG")  # the rule: see the docstring
HOLDOUT = (*(f"macro_{c}" for c in HOLD_MACRO), *(f"ii_{c}" for c in HOLD_II), *(f"danish_{c}" for c in HOLD_DANISH),
           *(f"fert_{c}" for c in FERTILITY))
HOLDOUT2_SEED, HOLDOUT2_FERT = 20261201, 20  # the s19 rule: see the docstring
HOLD2_DANISH = ("lpy",)


def _fert_complete() -> list[str]:
    """Fertility country codes (the file's row order) with no missing year over 1960-2011."""
    from statsmodels.datasets import fertility

    d = fertility.load_pandas().data
    years = [str(y) for y in range(1960, 2012)]
    return [str(c) for c in d.loc[~d[years].isna().any(axis=1), "Country Code"]]


def holdout2_fertility() -> tuple[str, ...]:
    pool = [c for c in _fert_complete() if c not in FERTILITY]
    pick = np.random.default_rng(HOLDOUT2_SEED).choice(len(pool), size=HOLDOUT2_FERT, replace=False)
    return tuple(pool[i] for i in pick)


FERTILITY2 = holdout2_fertility()
HOLDOUT2 = (*(f"danish_{c}" for c in HOLD2_DANISH), *(f"fert_{c}" for c in FERTILITY2))
HOLDOUT3_SEED, HOLDOUT3_FERT = 2026120119, 20  # the s19b rule: see the docstring


def holdout3_fertility() -> tuple[str, ...]:
    pool = [c for c in _fert_complete() if c not in FERTILITY and c not in FERTILITY2]
    pick = np.random.default_rng(HOLDOUT3_SEED).choice(len(pool), size=HOLDOUT3_FERT, replace=False)
    return tuple(pool[i] for i in pick)


FERTILITY3 = holdout3_fertility()
HOLDOUT3 = tuple(f"fert_{c}" for c in FERTILITY3)
HOLDOUT4_SEED, HOLDOUT4_FERT = 2026120121, 40  # the s20 rule: see the docstring


def holdout4_fertility() -> tuple[str, ...]:
    used = {*FERTILITY, *FERTILITY2, *FERTILITY3}
    pool = [c for c in _fert_complete() if c not in used]
    pick = np.random.default_rng(HOLDOUT4_SEED).choice(len(pool), size=HOLDOUT4_FERT, replace=False)
    return tuple(pool[i] for i in pick)


FERTILITY4 = holdout4_fertility()
HOLDOUT4 = tuple(f"fert_{c}" for c in FERTILITY4)
ALL = (*DESIGN, *UNSEEN, *HOLDOUT, *HOLDOUT2, *HOLDOUT3, *HOLDOUT4)
MIN_FOLDS = 6
PEERS = ("AutoETS", "AutoARIMA", "SeasonalNaive")
NOMINAL = 0.9  # Fulcrum's default interval coverage; the peers are asked for their own intervals at this level


def _mase(y: np.ndarray, f: np.ndarray, scale: float) -> float:
    return float(np.mean(np.abs(np.asarray(y) - np.asarray(f))) / max(scale, 1e-12))


def load_series(name: str) -> tuple[pd.DataFrame, str]:
    """(a (date, value) table, the target column) for a design or unseen series."""
    if name in DESIGN:
        from fulcrum.data import load_builtin

        return load_builtin(name), DESIGN[name]
    if name in MACRO:
        from statsmodels.datasets import macrodata

        d = macrodata.load_pandas().data
        dates = [f"{int(y)}-{3 * (int(q) - 1) + 1:02d}-01" for y, q in zip(d["year"], d["quarter"])]
        return pd.DataFrame({"date": dates, name: d[name].to_numpy(np.float64)}), name
    if name == "elec_equip":
        from statsmodels.datasets import elec_equip

        d = elec_equip.load().data
        return pd.DataFrame({"date": pd.DatetimeIndex(d.index).strftime("%Y-%m-%d"),
                             "orders": d.iloc[:, 0].to_numpy(np.float64)}), "orders"
    if name.startswith("macro_") and name[6:] in HOLD_MACRO:
        from statsmodels.datasets import macrodata

        d, c = macrodata.load_pandas().data, name[6:]
        dates = [f"{int(y)}-{3 * (int(q) - 1) + 1:02d}-01" for y, q in zip(d["year"], d["quarter"])]
        return pd.DataFrame({"date": dates, c: d[c].to_numpy(np.float64)}), c
    if name.startswith("ii_") and name[3:] in HOLD_II:
        from statsmodels.datasets import interest_inflation

        d, c = interest_inflation.load_pandas().data, name[3:]
        dates = [f"{int(y)}-{3 * (int(q) - 1) + 1:02d}-01" for y, q in zip(d["year"], d["quarter"])]
        return pd.DataFrame({"date": dates, c: d[c].to_numpy(np.float64)}), c
    if name.startswith("danish_") and name[7:] in (*HOLD_DANISH, *HOLD2_DANISH):
        from statsmodels.datasets import danish_data

        d, c = danish_data.load_pandas().data, name[7:]
        return pd.DataFrame({"date": pd.DatetimeIndex(d.index).strftime("%Y-%m-%d"), c: d[c].to_numpy(np.float64)}), c
    if name.startswith("fert_") and name[5:] in (*FERTILITY, *FERTILITY2, *FERTILITY3, *FERTILITY4):
        from statsmodels.datasets import fertility

        d = fertility.load_pandas().data
        years = [str(y) for y in range(1960, 2012)]
        row = d[d["Country Code"] == name[5:]].iloc[0]
        v = row[years].to_numpy(np.float64)
        if np.isnan(v).any():
            raise SystemExit(f"{name}: missing years; the hold-out rule takes countries with none")
        return pd.DataFrame({"date": [f"{y}-01-01" for y in years], "fertility": v}), "fertility"
    raise SystemExit(f"unknown series {name!r}: choose from {', '.join(ALL)}")


def run_fulcrum(name: str, folds: int, test_folds: int) -> dict[str, Any]:
    from fulcrum.tasks import get_task
    from fulcrum.tasks.forecast._fit import _scale

    from fulcrum.errors import DataError

    frame, target = load_series(name)
    while True:  # short series: one fold fewer at a time until the plan fits (never under MIN_FOLDS)
        try:
            t0 = time.perf_counter()
            tr = get_task("forecast").fit(frame, {"target": target, "folds": folds, "test_folds": test_folds,
                                                  "progress": False})
            break
        except DataError as e:
            if folds <= MIN_FOLDS or "backtest folds" not in str(e):
                raise
            folds -= 1
    secs = time.perf_counter() - t0
    m = tr.manifest
    H, P = m["task"]["horizon"], m["task"]["season"]
    (s,) = tr.extra["series"]
    n = len(s.values)
    origins = [n - H * (folds - f) for f in range(folds - test_folds, folds)]
    fam = m["model"]["family"]
    per_fam = {}
    for f_name, fl in tr.extra["backtest"]["folds"].items():
        per_fam[f_name] = [fl[f]["f"][0].tolist() for f in range(folds - test_folds, folds)]
    cov = m["metrics"]["coverage"]
    # the intervals Fulcrum's run gives at the held-out origins: from data before the held-out folds only (as the
    # coverage the run reports), forecast +- q * the window's scale
    from fulcrum.tasks.forecast._fit import heldout_quantiles

    fl = tr.extra["backtest"]["folds"][fam]
    qs = heldout_quantiles(fl, folds - test_folds, test_folds * H, cov["nominal"])
    bands = [(fl[f]["f"][0] - q * fl[f]["s"][0], fl[f]["f"][0] + q * fl[f]["s"][0])
             for f, q in zip(range(folds - test_folds, folds), qs)]
    return {"values": s.values.tolist(), "season": P, "horizon": H, "lags": m["task"]["lags"], "origins": origins,
            "family": fam, "members": m["model"].get("members", [fam]), "selection": m["model"]["selection"], "forecasts": per_fam[fam], "candidates": per_fam,
            "seconds": secs, "folds": folds, "fit_s": tr.extra.get("fit_s"), "coverage": {"nominal": cov["nominal"], "measured": cov["measured"], "points": cov["points"]},
            "lower": [b[0].tolist() for b in bands], "upper": [b[1].tolist() for b in bands],
            "scales": [_scale(s.values[:o], P if P > 1 else 1) for o in origins]}


def run_peer(peers_python: str, name: str, model: str, series: dict[str, Any], limit: float, tmp: Path,
             level: int | None = None) -> dict[str, Any]:
    """One peer model on one series in its own process group, killed after ``limit`` seconds of wall clock;
    with ``level`` (a percentage) the model's own prediction intervals at that level too."""
    task, out = tmp / f"{name}.{model}.task.json", tmp / f"{name}.{model}.out.json"
    task.write_text(json.dumps({"series": {name: series}, **({"level": level} if level else {})}))
    cmd = [peers_python, str(HERE / "peers" / "run_forecast_peer.py"), "--in", str(task), "--out", str(out),
           "--models", model]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, start_new_session=True)
    try:
        rc = proc.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return {"forecasts": None, "seconds": None, "wall": time.perf_counter() - t0, "errors": [],
                "status": f"did not finish in {limit:g} s"}
    if rc != 0 or not out.exists():
        return {"forecasts": None, "seconds": None, "wall": time.perf_counter() - t0, "errors": [f"exit {rc}"],
                "status": f"failed (exit {rc})"}
    res = json.loads(out.read_text())[name][model]
    return {**res, "wall": time.perf_counter() - t0, "status": "ok"}


def _coverage(y: list[list[float]], lower: list | None, upper: list | None) -> float | None:
    """Share of the held-out values inside the system's interval (None when it gave none at some origin)."""
    if not lower or not upper or any(b is None for b in (*lower, *upper)):
        return None
    inside = [(np.asarray(lo) <= np.asarray(yy)) & (np.asarray(yy) <= np.asarray(hi)) for yy, lo, hi in zip(y, lower, upper)]
    return float(np.mean(np.concatenate(inside)))


def _avg(rows: dict[str, dict[str, Any]], names: list[str], s: str) -> float | None:
    vals = [rows[n][s]["mase"] for n in names]
    return None if not vals or any(v is None for v in vals) else float(np.mean(vals))


def _table(title: str, names: list[str], rows: dict[str, dict[str, Any]], systems: list[str],
           say: Callable[[str], None]) -> dict[str, Any]:
    say(f"\n{title}")
    say(f"{'series':>10} " + " ".join(f"{s:>26}" for s in systems))
    for name in names:
        cells = []
        for s in systems:
            c = rows[name][s]
            if c["mase"] is None:
                cells.append(f"{c['status']:>26}")
            else:
                cells.append(f"{format(c['mase'], '.3f') + ' (' + format(c['seconds'], '.1f') + ' s)':>26}")
        say(f"{name:>10} " + " ".join(cells))
    per: dict[str, Any] = {}
    for s in systems:
        done = [n for n in names if rows[n][s]["mase"] is not None]
        per[s] = {"mase": _avg(rows, done, s), "n": len(done),
                  "seconds": float(sum(rows[n][s]["seconds"] for n in done))}
    common = [n for n in names if all(rows[n][s]["mase"] is not None for s in systems)]
    both = {s: _avg(rows, common, s) for s in systems}
    own = {s: ("-" if per[s]["mase"] is None else format(per[s]["mase"], ".3f")) + f" (n={per[s]['n']})" for s in systems}
    say(f"{'avg (own)':>10} " + " ".join(f"{own[s]:>26}" for s in systems) + "   <- each over the series it finished")
    say(f"{'avg (all)':>10} " + " ".join(
        f"{('-' if both[s] is None else format(both[s], '.3f')):>26}" for s in systems)
        + f"   <- over the {len(common)} series every system finished: {', '.join(common) or 'none'}")
    cov = {}
    for s in systems:
        c = [rows[n][s]["coverage"] for n in common if rows[n][s].get("coverage") is not None]
        cov[s] = None if len(c) < len(common) or not c else {"mean": float(np.mean(c)),
                                                             "p10": float(np.percentile(c, 10)),
                                                             "within_10_points": float(np.mean(np.abs(np.asarray(c) - NOMINAL) <= 0.10))}
    say(f"{'coverage':>10} " + " ".join(
        f"{('-' if cov[s] is None else format(cov[s]['mean'], '.1%') + ' (p10 ' + format(cov[s]['p10'], '.0%') + ')'):>26}"
        for s in systems) + f"   <- share of held-out values inside the {NOMINAL:.0%} interval, mean over the series "
        "(10th percentile)")
    best_peer = min((p for p in PEERS if both.get(p) is not None), key=lambda p: both[p], default=None)
    verdict = None
    if best_peer is not None and both["fulcrum"] is not None:
        verdict = "at least as good as" if both["fulcrum"] <= both[best_peer] else "WORSE than"
        say(f"fulcrum average MASE {both['fulcrum']:.3f} is {verdict} the best peer ({best_peer} {both[best_peer]:.3f}) "
            f"over the {len(common)} series every system finished")
    paired = _paired(rows, common, best_peer) if best_peer is not None and len(common) >= 2 else None
    if paired is not None:
        say(f"{'':>10} paired by series, fulcrum - {best_peer}: mean {paired['mean']:+.3f} (95% bootstrap CI "
            f"{paired['ci'][0]:+.3f} to {paired['ci'][1]:+.3f}), fulcrum as good or better on {paired['as_good']} of "
            f"{len(common)}, Wilcoxon p = {paired['wilcoxon_p']:.2g}: {paired['separated']}")
    return {"per_system": per, "common_series": common, "common_average": both, "best_peer": best_peer, "verdict": verdict,
            "paired": paired, "coverage": cov}


def _paired(rows: dict[str, dict[str, Any]], names: list[str], peer: str) -> dict[str, Any]:
    """Fulcrum's MASE minus ``peer``'s, series by series: mean, 95% paired bootstrap interval (10,000 resamples,
    seed 0), how many series Fulcrum is as good or better on, Wilcoxon's signed-rank p; ``separated`` says which
    side is better only when the interval excludes 0 (a difference is a difference only when the measurements
    separate: DESIGN.md section 8)."""
    from scipy import stats

    d = np.array([rows[n]["fulcrum"]["mase"] - rows[n][peer]["mase"] for n in names])
    boot = np.random.default_rng(0).choice(d, size=(10_000, len(d))).mean(axis=1)
    lo, hi = (float(v) for v in np.percentile(boot, [2.5, 97.5]))
    p = float(stats.wilcoxon(d).pvalue) if np.any(d != 0) else 1.0
    sep = ("fulcrum better (the interval is below 0)" if hi < 0 else "fulcrum WORSE (the interval is above 0)"
           if lo > 0 else "not separated: the interval spans 0")
    return {"mean": float(d.mean()), "ci": [lo, hi], "as_good": int((d <= 0).sum()), "wilcoxon_p": p, "separated": sep}


def summarize(names: list[str], rows: dict[str, dict[str, Any]], systems: list[str],
              say: Callable[[str], None]) -> dict[str, Any]:
    """The per-group tables (MASE, coverage, the paired comparison with the best peer) of a run's rows."""
    groups = {"design": [n for n in names if n in DESIGN], "unseen": [n for n in names if n in UNSEEN],
              "holdout": [n for n in names if n in HOLDOUT],
              "holdout2": [n for n in names if n in HOLDOUT2],
              "holdout3": [n for n in names if n in HOLDOUT3],
              "design_all": [n for n in names if n in DESIGN or n in UNSEEN or n in HOLDOUT or n in HOLDOUT2
                             or n in HOLDOUT3],
              "holdout4": [n for n in names if n in HOLDOUT4]}
    titles = {"design": "design series (Fulcrum's defaults were developed on these)",
              "unseen": "the 8 series first run unseen in s18 (looked at since: the drift and arima candidates were "
                        "added after seeing them)",
              "holdout": "the 19 s18b hold-out series (looked at since: the s19 selection rule was changed after "
                         "seeing them; design series now)",
              "holdout2": "the 21 s19 hold-out series (looked at since: the arima candidate was changed in s19b after "
                          "seeing them; design series now)",
              "holdout3": "the 20 s19b hold-out series (looked at since: the selection and the arima candidate "
                          "were changed in s20 after seeing them; design series now)",
              "design_all": "all 72 design series (the five groups above)",
              "holdout4": "hold-out series of s20 (fixed by the stated rule before any run or change; never used "
                          "to design anything)"}
    summary = {}
    for g, gnames in groups.items():
        if gnames:
            summary[g] = _table(titles[g], gnames, rows, systems, say)
    if sum(bool(v) for g, v in groups.items() if g != "design_all") > 1:
        summary["all"] = _table("all series", names, rows, systems, say)
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series", default=None, help="comma-separated series (default: every group's)")
    ap.add_argument("--groups", default=None,
                    help="comma-separated groups to run instead: design (the 31 first design series), holdout2 "
                         "(design since s19b), holdout3 (design since s20), holdout4")
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--test-folds", type=int, default=4)
    ap.add_argument("--peer-limit", type=float, default=300.0,
                    help="wall-clock seconds per (series, peer model) before its process is killed (default 300)")
    ap.add_argument("--peers-venv", default=str(HERE.parent / ".venv-peers"))
    ap.add_argument("--json", default=None)
    ap.add_argument("--report", default=None, metavar="JSON",
                    help="print the group tables of a saved run (its --json file) again, running nothing")
    a = ap.parse_args()
    if a.report:
        rows = json.loads(Path(a.report).read_text())["rows"]
        summarize(list(rows), rows, ["fulcrum", *PEERS], lambda msg: print(msg, flush=True))
        return
    group_series = {"design": (*DESIGN, *UNSEEN, *HOLDOUT), "holdout2": HOLDOUT2, "holdout3": HOLDOUT3,
                    "holdout4": HOLDOUT4}
    if a.series is not None and a.groups is not None:
        raise SystemExit("give --series or --groups, not both")
    if a.groups is not None:
        bad = [g for g in a.groups.split(",") if g and g not in group_series]
        if bad:
            raise SystemExit(f"unknown group {bad[0]!r}: choose from {', '.join(group_series)}")
        names = [n for g in a.groups.split(",") if g for n in group_series[g]]
    else:
        names = [x for x in (a.series or ",".join(ALL)).split(",") if x]
    for n in names:
        if n not in ALL:
            raise SystemExit(f"unknown series {n!r}: choose from {', '.join(ALL)}")
    peers_python = str(Path(a.peers_venv) / "bin" / "python")
    if not Path(peers_python).exists():
        raise SystemExit(f"no peers virtualenv at {a.peers_venv}: run `make bench-peers` first")
    say = lambda msg: print(msg, flush=True)  # noqa: E731
    load_before = os.getloadavg()
    say(f"bench_forecast: {' '.join(sys.argv[1:]) or '(defaults)'}; folds {a.folds}, last {a.test_folds} held out; "
        f"peer limit {a.peer_limit:g} s per series and model; {os.cpu_count()} CPUs")
    say(f"load average before: {load_before}")
    t_all = time.perf_counter()
    fulcrum = {}
    for name in names:
        fulcrum[name] = r = run_fulcrum(name, a.folds, a.test_folds)
        say(f"fulcrum {name}: {r['family']} (season {r['season']}, horizon {r['horizon']}, window {r['lags']}, "
            f"{r['folds']} folds, {len(r['values'])} steps) "
            f"in {r['seconds']:.1f} s [load {os.getloadavg()[0]:.1f}]: {r['selection']}")
    peers: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            r = fulcrum[name]
            series = {k: r[k] for k in ("values", "season", "horizon", "origins")}
            level = round(100 * r["coverage"]["nominal"])  # the peers' own intervals at Fulcrum's nominal level
            peers[name] = {}
            for p in PEERS:
                peers[name][p] = res = run_peer(peers_python, name, p, series, a.peer_limit, Path(tmp), level)
                say(f"peer {name} {p}: {res['status']}" + (f", fit+forecast {res['seconds']:.1f} s" if res["seconds"] is not None else "")
                    + f" (wall {res['wall']:.1f} s) [load {os.getloadavg()[0]:.1f}]")
    rows: dict[str, dict[str, Any]] = {}
    systems = ["fulcrum", *PEERS]
    for name in names:
        r = fulcrum[name]
        y = [r["values"][o:o + r["horizon"]] for o in r["origins"]]
        row = {"fulcrum": {"mase": float(np.mean([_mase(yy, f, sc) for yy, f, sc in zip(y, r["forecasts"], r["scales"])])),
                           "seconds": r["seconds"], "model": r["family"], "status": "ok",
                           "coverage": _coverage(y, r["lower"], r["upper"])}}
        for fam, fc in r["candidates"].items():
            row[f"fulcrum:{fam}"] = {"mase": float(np.mean([_mase(yy, f, sc) for yy, f, sc in zip(y, fc, r["scales"])]))}
        for p in PEERS:
            res = peers[name][p]
            fc = res["forecasts"]
            ok = fc is not None and all(f is not None for f in fc)
            status = res["status"] if fc is None else ("ok" if ok else f"failed on {sum(f is None for f in fc)} origin(s)")
            row[p] = {"mase": float(np.mean([_mase(yy, f, sc) for yy, f, sc in zip(y, fc, r["scales"])])) if ok else None,
                      "seconds": res["seconds"], "wall": res["wall"], "errors": res["errors"], "status": status,
                      "coverage": _coverage(y, res.get("lower"), res.get("upper")) if ok else None}
        rows[name] = row
    say(f"\nMASE on {a.test_folds} held-out origins per series (lower is better) and seconds: Fulcrum's whole training "
        "run; each peer's fit + forecast at the held-out origins")
    summary = summarize(names, rows, systems, say)
    say("")
    say("fulcrum models chosen: " + ", ".join(
        f"{n} {rows[n]['fulcrum']['model']}" + (f" ({'+'.join(fulcrum[n]['members'])})"
                                                if rows[n]['fulcrum']['model'] == "combination" else "") for n in names))
    say("fulcrum candidates (held-out MASE; shown, never used to choose): " + "; ".join(
        f"{n} " + ", ".join(f"{k.split(':')[1]} {v['mase']:.3f}" for k, v in rows[n].items() if k.startswith("fulcrum:"))
        for n in names))
    say("interval coverage on held-out origins: " + ", ".join(
        f"{n} {fulcrum[n]['coverage']['measured']:.1%} of {fulcrum[n]['coverage']['points']}" for n in names)
        + f" (nominal {fulcrum[names[0]]['coverage']['nominal']:.0%})")
    say("folds per series (rule: 10, else one fewer until Fulcrum's plan fits, 4 held out): " + ", ".join(
        f"{n} {fulcrum[n]['folds']}" for n in names))
    say("summary, average MASE over the series every system finished: " + "; ".join(
        f"{g} (n={len(v['common_series'])}): " + ", ".join(
            f"{s} {('-' if v['common_average'][s] is None else format(v['common_average'][s], '.3f'))}" for s in systems)
        for g, v in summary.items()))
    say(f"total wall {time.perf_counter() - t_all:.0f} s; load average after: {os.getloadavg()}")
    if a.json:
        Path(a.json).write_text(json.dumps({"rows": rows, "summary": summary, "load_before": load_before,
                                            "load_after": os.getloadavg(), "peer_limit_s": a.peer_limit}, indent=1))


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent / "src"))
    main()
