"""statsforecast (AutoETS, AutoARIMA, SeasonalNaive) on a rolling-origin backtest given as JSON.

Runs inside the peers' virtualenv (``make bench-peers`` builds ``.venv-peers``), driven by
``benchmarks/bench_forecast.py`` through a subprocess, so statsforecast never enters Fulcrum's environment.

    run_forecast_peer.py --check
    run_forecast_peer.py --in task.json --out result.json [--models AutoARIMA]

``task.json``: ``{"series": {name: {"values": [...], "season": P, "horizon": H, "origins": [i, ...]}}}``; for
each origin (index of the first forecast step) every model is fitted on ``values[:origin]`` and forecasts
``values[origin:origin + H]``; with ``"level": 90`` in the task (a percentage) each model also gives its own
prediction interval at that level. ``result.json``: ``{name: {model: {"forecasts": [[H floats] per origin],
"lower": [...], "upper": [...] (with a level; None per origin where the model gave none), "seconds": fit +
forecast time over all origins}}}``. Scoring (MASE, interval coverage) is the caller's, the same for everyone.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

MODELS = ("AutoETS", "AutoARIMA", "SeasonalNaive")


def _model(name: str, season: int) -> Any:
    from statsforecast.models import AutoARIMA, AutoETS, SeasonalNaive

    if name == "AutoETS":
        return AutoETS(season_length=season)
    if name == "AutoARIMA":
        return AutoARIMA(season_length=season)
    return SeasonalNaive(season_length=season)


def run(task: dict[str, Any], models: tuple[str, ...] = MODELS) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, s in task["series"].items():
        y = np.asarray(s["values"], dtype=np.float64)
        P, H = int(s["season"]), int(s["horizon"])
        level = task.get("level")
        out[name] = {}
        for m in models:
            fc, lo, hi, errors = [], [], [], []
            t0 = time.perf_counter()
            for o in s["origins"]:
                try:
                    model = _model(m, P)
                    res = model.forecast(y=y[:o], h=H, **({"level": [level]} if level else {}))
                    fc.append([float(v) for v in np.asarray(res["mean"], dtype=np.float64)])
                    band = level and f"lo-{level}" in res and f"hi-{level}" in res
                    lo.append([float(v) for v in np.asarray(res[f"lo-{level}"], np.float64)] if band else None)
                    hi.append([float(v) for v in np.asarray(res[f"hi-{level}"], np.float64)] if band else None)
                except Exception as exc:  # noqa: BLE001 - reported, scored as missing
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])
                    fc.append(None)
                    lo.append(None)
                    hi.append(None)
            out[name][m] = {"forecasts": fc, "seconds": time.perf_counter() - t0, "errors": errors,
                            **({"lower": lo, "upper": hi} if level else {})}
            print(f"peer {name} {m}: {out[name][m]['seconds']:.1f} s", file=sys.stderr, flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--in", dest="inp")
    ap.add_argument("--out")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of " + ", ".join(MODELS))
    a = ap.parse_args(argv)
    models = tuple(m for m in a.models.split(",") if m)
    if not models or set(models) - set(MODELS):
        raise SystemExit(f"--models: choose from {', '.join(MODELS)}; got {a.models!r}")
    if a.check:
        import statsforecast

        print(f"statsforecast {statsforecast.__version__}")
        return
    if not a.inp or not a.out:
        raise SystemExit("--in TASK.json and --out RESULT.json, please")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run(json.loads(Path(a.inp).read_text()), models)
    Path(a.out).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
