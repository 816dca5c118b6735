"""Fulcrum's default forecaster vs statsforecast (AutoETS, AutoARIMA, SeasonalNaive) on statsmodels' series.

    .venv/bin/python benchmarks/bench_forecast.py [--series co2,sunspots,nile,elnino] [--folds 10 --test-folds 4]
                                                  [--peers-venv .venv-peers] [--json out.json]

The same rolling-origin backtest for everyone: Fulcrum's plan (season, horizon H) on each built-in series, origins
H steps apart at the end of the series; the last ``--test-folds`` origins are held out. Fulcrum trains with its
default options (``model=auto``: the candidates are chosen on the earlier origins only), and its forecasts at the
held-out origins are those of its backtest (each fitted on the data before the origin). Each peer is fitted on
``values[:origin]`` at each held-out origin and forecasts H steps. MASE: mean absolute error over the in-sample
seasonal-naive MAE of the data before the origin (the same scale for everyone); the average is over series.

Time: Fulcrum's whole training run (backtest of every candidate on every fold, selection, intervals, refit,
ONNX export and parity check); the peers' fit + forecast at the held-out origins only. statsforecast runs in the
peers' virtualenv (``make bench-peers``) through ``benchmarks/peers/run_forecast_peer.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
TARGETS = {"co2": "co2", "sunspots": "sunactivity", "nile": "volume", "elnino": "temperature"}
PEERS = ("AutoETS", "AutoARIMA", "SeasonalNaive")


def _mase(y: np.ndarray, f: np.ndarray, scale: float) -> float:
    return float(np.mean(np.abs(np.asarray(y) - np.asarray(f))) / max(scale, 1e-12))


def run_fulcrum(name: str, folds: int, test_folds: int) -> dict[str, Any]:
    from fulcrum.data import load_builtin
    from fulcrum.tasks import get_task
    from fulcrum.tasks.forecast._fit import _scale

    frame = load_builtin(name)
    t0 = time.perf_counter()
    tr = get_task("forecast").fit(frame, {"target": TARGETS[name], "folds": folds, "test_folds": test_folds,
                                          "progress": False})
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
    return {"values": s.values.tolist(), "season": P, "horizon": H, "lags": m["task"]["lags"], "origins": origins,
            "family": fam, "forecasts": per_fam[fam], "candidates": per_fam, "seconds": secs,
            "coverage": {"nominal": cov["nominal"], "measured": cov["measured"], "points": cov["points"]},
            "scales": [_scale(s.values[:o], P if P > 1 else 1) for o in origins]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series", default=",".join(TARGETS))
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--test-folds", type=int, default=4)
    ap.add_argument("--peers-venv", default=str(HERE.parent / ".venv-peers"))
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    names = [x for x in a.series.split(",") if x]
    peers_python = str(Path(a.peers_venv) / "bin" / "python")
    if not Path(peers_python).exists():
        raise SystemExit(f"no peers virtualenv at {a.peers_venv}: run `make bench-peers` first")
    print(f"load average before: {os.getloadavg()}", flush=True)
    fulcrum = {}
    for name in names:
        fulcrum[name] = r = run_fulcrum(name, a.folds, a.test_folds)
        print(f"fulcrum {name}: {r['family']} (season {r['season']}, horizon {r['horizon']}, window {r['lags']}) "
              f"in {r['seconds']:.1f} s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        task = {"series": {k: {kk: v[kk] for kk in ("values", "season", "horizon", "origins")} for k, v in fulcrum.items()}}
        (Path(tmp) / "task.json").write_text(json.dumps(task))
        proc = subprocess.run([peers_python, str(HERE / "peers" / "run_forecast_peer.py"), "--in", str(Path(tmp) / "task.json"),
                               "--out", str(Path(tmp) / "out.json")], stdout=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise SystemExit("peer run failed (its stderr is above)")
        peers = json.loads((Path(tmp) / "out.json").read_text())
    rows: dict[str, dict[str, Any]] = {}
    systems = ["fulcrum", *PEERS]
    for name in names:
        r = fulcrum[name]
        y = [r["values"][o:o + r["horizon"]] for o in r["origins"]]
        row = {"fulcrum": {"mase": float(np.mean([_mase(yy, f, sc) for yy, f, sc in zip(y, r["forecasts"], r["scales"])])),
                           "seconds": r["seconds"], "model": r["family"]}}
        for fam, fc in r["candidates"].items():
            row[f"fulcrum:{fam}"] = {"mase": float(np.mean([_mase(yy, f, sc) for yy, f, sc in zip(y, fc, r["scales"])]))}
        for p in PEERS:
            res = peers[name][p]
            ok = [(yy, f, sc) for yy, f, sc in zip(y, res["forecasts"], r["scales"]) if f is not None]
            row[p] = {"mase": float(np.mean([_mase(*t) for t in ok])) if len(ok) == len(y) else None,
                      "seconds": res["seconds"], "errors": res["errors"]}
        rows[name] = row
    print()
    print(f"MASE on {a.test_folds} held-out origins per series (lower is better); time in seconds")
    print(f"{'series':>10} " + " ".join(f"{s:>22}" for s in systems))
    for name in names:
        cells = []
        for s in systems:
            c = rows[name][s]
            m = "failed" if c["mase"] is None else f"{c['mase']:.3f}"
            cells.append(f"{m + ' (' + format(c['seconds'], '.1f') + ' s)':>22}")
        print(f"{name:>10} " + " ".join(cells))
    avg = {}
    for s in systems:
        vals = [rows[n][s]["mase"] for n in names]
        avg[s] = None if any(v is None for v in vals) else float(np.mean(vals))
    tot = {s: sum(rows[n][s]["seconds"] for n in names) for s in systems}
    print(f"{'average':>10} " + " ".join(f"{('failed' if avg[s] is None else format(avg[s], '.3f')) + ' (' + format(tot[s], '.1f') + ' s)':>22}" for s in systems))
    print()
    print("fulcrum models chosen: " + ", ".join(f"{n} {rows[n]['fulcrum']['model']}" for n in names))
    print("fulcrum candidates (held-out MASE): " + "; ".join(
        f"{n} " + ", ".join(f"{k.split(':')[1]} {v['mase']:.3f}" for k, v in rows[n].items() if k.startswith("fulcrum:"))
        for n in names))
    print("interval coverage on held-out origins: " + ", ".join(
        f"{n} {fulcrum[n]['coverage']['measured']:.1%} of {fulcrum[n]['coverage']['points']} (nominal "
        f"{fulcrum[n]['coverage']['nominal']:.0%})" for n in names))
    best_peer = min((p for p in PEERS if avg[p] is not None), key=lambda p: avg[p], default=None)
    if best_peer is not None and avg["fulcrum"] is not None:
        verdict = "at least as good as" if avg["fulcrum"] <= avg[best_peer] else "WORSE than"
        print(f"fulcrum average MASE {avg['fulcrum']:.3f} is {verdict} the best peer ({best_peer} {avg[best_peer]:.3f})")
    print(f"load average after: {os.getloadavg()}")
    if a.json:
        Path(a.json).write_text(json.dumps({"rows": rows, "average": avg, "seconds": tot, "load": os.getloadavg()}, indent=1))


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent / "src"))
    main()
