"""AutoML: Fulcrum's tabular training vs AutoGluon, FLAML and a tuned HistGradientBoosting pipeline.

Every system gets the same files: per dataset one fixed, stratified 80/20 split (``--split-seed``)
written as ``train.csv`` / ``test.csv``; each system trains on ``train.csv`` only and is scored on
``test.csv`` with Fulcrum's primary metric (accuracy for classification, R² for regression). Each
``--seeds`` value is passed to every system as its own seed (the split stays fixed).

Systems, in this order per dataset and seed:

- ``fulcrum``: ``fulcrum.train(train.csv)`` with default settings, in this interpreter (Fulcrum
  makes its own train/validation/test split inside ``train.csv``, as ``fulcrum train`` does);
- ``autogluon``: ``TabularPredictor(eval_metric=<metric>).fit(train)``, default presets, no time limit
  unless ``--autogluon-time-limit``;
- ``fulcrum-best``: ``preset="best"`` when this Fulcrum has that option (detected), with
  ``time_limit`` = AutoGluon's measured time on that dataset and seed when ``time_limit`` exists too;
- ``flaml``: ``AutoML.fit(time_budget=<fulcrum's measured time on that dataset and seed>)``;
- ``hgb``: impute / ordinal-encode + HistGradientBoosting (early stopping), a 2x2x2 grid chosen by
  3-fold CV.

AutoGluon and FLAML run in their own virtualenv (``make bench-peers`` builds ``.venv-peers``)
through ``benchmarks/peers/run_peer.py``; so does ``hgb`` (under this interpreter when the peers'
venv is missing). Training time is wall-clock around the fit call (Fulcrum: around
``fulcrum.train``, which includes its package writing and inference measurement). Single-row
latency: p50 over 200 calls after 20 warm-up calls on the first test row: ``predict_one`` of
``fulcrum.load(...)`` (ONNX Runtime) for Fulcrum, ``predict_proba`` (``predict`` for regression) on
a one-row DataFrame for the peers. No thread limits are set: each system uses the machine as it
would by default.

Tables: the five built-ins (iris, wine, breast_cancer, diabetes, penguins) and three real public
tables that ship inside wheels in the peers' venv (no download): ``fair`` (statsmodels, 6,366 rows,
had an affair yes/no), ``anes96`` (statsmodels, 944 rows, vote Dole/Clinton), ``cars``
(vega_datasets, 398 rows, miles per gallon; text, dates and gaps).

Noise: per dataset, score mean ± 95% t-interval half-width over the seeds. The goal checks compare
systems with a paired bootstrap over test rows (2,000 resamples; per resample each system's score
averaged over the seeds, datasets resampled independently), so the interval covers the
test-sampling noise that dominates on 30-row test sets.

    make bench-peers
    python benchmarks/bench_automl.py [--datasets iris,fair,...] [--seeds 0,1,2] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.model_selection import train_test_split

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "peers"))
import run_peer  # noqa: E402  (the peers' runner: the same scoring and latency code for everyone)

import fulcrum  # noqa: E402
from fulcrum.config import TrainConfig  # noqa: E402
from fulcrum.data import builtin_info, load_builtin, read_table  # noqa: E402
from fulcrum.errors import FulcrumError  # noqa: E402

BUILTIN = ("iris", "wine", "breast_cancer", "diabetes", "penguins")
DEFAULT_DATASETS = ",".join((*BUILTIN, *run_peer.EXTRA))
SYSTEMS = ("fulcrum", "fulcrum-best", "autogluon", "flaml", "hgb")
RUN_ORDER = ("fulcrum", "autogluon", "fulcrum-best", "flaml", "hgb")  # best's time limit is AutoGluon's time
BOOTSTRAP = 2000


@dataclasses.dataclass
class Dataset:
    name: str
    target: str
    task: str
    source: str
    train_csv: Path
    test_csv: Path
    rows: int
    n_train: int
    n_test: int
    y_test: np.ndarray


def _load(name: str, peers_python: str | None, tmp: Path) -> tuple[pd.DataFrame, str, str, str]:
    if name in BUILTIN or name == "digits":
        info = builtin_info(name)
        src = "palmerpenguins" if name == "penguins" else "scikit-learn"
        return load_builtin(name), info.target, info.task, f"builtin:{name} ({src})"
    if name not in run_peer.EXTRA:
        raise SystemExit(f"unknown dataset {name!r}; choose from {DEFAULT_DATASETS}")
    if peers_python is None:
        raise LookupError(f"{name} ships in a package of the peers' venv; run `make bench-peers`")
    out = tmp / f"{name}-full.csv"
    subprocess.run([peers_python, str(HERE / "peers" / "run_peer.py"), "--export", name, "--out", str(out)],
                   check=True, capture_output=True, text=True)
    e = run_peer.EXTRA[name]
    return pd.read_csv(out), e["target"], e["task"], e["source"]


def prepare(name: str, peers_python: str | None, tmp: Path, split_seed: int) -> Dataset:
    """One fixed stratified 80/20 split of ``name``, written once as the files every system reads."""
    df, target, task, source = _load(name, peers_python, tmp)
    df = df[df[target].notna()].reset_index(drop=True)
    train, test = train_test_split(df, test_size=0.2, random_state=split_seed,
                                   stratify=df[target] if task == "classification" else None)
    d = tmp / name
    d.mkdir(parents=True, exist_ok=True)
    train.to_csv(d / "train.csv", index=False)
    test.to_csv(d / "test.csv", index=False)
    y = run_peer.read_split(d / "test.csv", target, task)[target].to_numpy()
    return Dataset(name, target, task, source, d / "train.csv", d / "test.csv", len(df), len(train), len(test), y)


def option_exists(key: str, value: Any) -> bool:
    """Whether this Fulcrum's TrainConfig takes ``key`` (unknown keys are refused with a ConfigError)."""
    try:
        TrainConfig.from_dict({key: value})
    except FulcrumError:
        return False
    return True


def run_fulcrum(ds: Dataset, seed: int, reg: Any, label: str, **opts: Any) -> dict[str, Any]:
    t0 = time.perf_counter()
    pkg = fulcrum.train(str(ds.train_csv), target=ds.target, name=f"{label}-{ds.name}-s{seed}".replace("_", "-"),
                        registry=reg, seed=seed, progress=False, log=lambda _msg: None, **opts)
    secs = time.perf_counter() - t0
    predictor = fulcrum.load(pkg.ref, registry=reg)
    X_test = read_table(str(ds.test_csv)).drop(columns=[ds.target])
    pred = predictor.predict(X_test)["prediction"].to_numpy()
    row = {c: (v.item() if hasattr(v, "item") else v) for c, v in X_test.iloc[0].items()}
    latency = run_peer.p50_latency_ms(lambda: predictor.predict_one(row))
    preds = [str(p) if ds.task == "classification" else float(p) for p in pred]
    m = pkg.manifest
    return {"system": label, "score": run_peer.score(ds.task, ds.y_test, preds), "train_s": secs,
            "latency": latency, "predictions": preds, "time_limit": opts.get("time_limit"),
            "info": {"family": m["model"]["family"], "options": {k: v for k, v in opts.items()}}}


def run_peer_system(system: str, ds: Dataset, seed: int, python: str, tmp: Path,
                    time_limit: float | None) -> dict[str, Any]:
    work = tmp / "runs" / f"{system}-{ds.name}-s{seed}"
    work.mkdir(parents=True, exist_ok=True)
    out = work / "result.json"
    cmd = [python, str(HERE / "peers" / "run_peer.py"), "--system", system, "--train", str(ds.train_csv),
           "--test", str(ds.test_csv), "--target", ds.target, "--task", ds.task, "--seed", str(seed),
           "--workdir", str(work), "--out", str(out)]
    if time_limit is not None:
        cmd += ["--time-limit", f"{time_limit:.3f}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not out.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"system": system, "error": " | ".join(tail) or f"exit {proc.returncode}"}
    result: dict[str, Any] = json.loads(out.read_text())
    subprocess.run(["rm", "-rf", str(work / "autogluon")], check=False)  # AutoGluon's saved models
    return result


# --------------------------------------------------------------------------- statistics


def t_half(values: list[float]) -> float:
    if len(values) < 2:
        return float("nan")
    return float(stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values)))


def _scores_on(task: str, y: np.ndarray, preds: list[list[Any]], idx: np.ndarray) -> np.ndarray:
    """Score of each seed's predictions on each bootstrap resample ``idx`` (B, n) -> (B,), seed mean."""
    out = []
    for p in preds:
        if task == "classification":
            hit = (np.asarray(p, dtype=object) == y).astype(np.float64)
            out.append(hit[idx].mean(axis=1))
        else:
            pa = np.asarray(p, dtype=np.float64)
            yt, pt = y[idx], pa[idx]
            ss_res = ((yt - pt) ** 2).sum(axis=1)
            ss_tot = ((yt - yt.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
            out.append(1.0 - ss_res / ss_tot)
    return np.mean(out, axis=0)


def paired_diff(datasets: list[Dataset], res: dict[str, dict[str, list[dict[str, Any]]]], a: str, b: str,
                rng_seed: int = 0) -> dict[str, Any] | None:
    """Mean over datasets of (a - b), point estimate and bootstrap 95% interval; per-dataset too."""
    rng = np.random.default_rng(rng_seed)
    per: dict[str, tuple[float, float, float]] = {}
    boots = []
    for ds in datasets:
        ra, rb = _ok(res[ds.name][a]), _ok(res[ds.name][b])
        if not ra or not rb:
            continue
        y = ds.y_test.astype(object) if ds.task == "classification" else ds.y_test.astype(np.float64)
        pa, pb = [r["predictions"] for r in ra], [r["predictions"] for r in rb]
        full = np.arange(len(y))[None, :]
        point = float(_scores_on(ds.task, y, pa, full)[0] - _scores_on(ds.task, y, pb, full)[0])
        idx = rng.integers(0, len(y), size=(BOOTSTRAP, len(y)))
        d = _scores_on(ds.task, y, pa, idx) - _scores_on(ds.task, y, pb, idx)
        boots.append(d)
        per[ds.name] = (point, float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5)))
    if not per:
        return None
    mean_boot = np.mean(boots, axis=0)
    point = statistics.fmean(p[0] for p in per.values())
    return {"per": per, "mean": point, "lo": float(np.percentile(mean_boot, 2.5)),
            "hi": float(np.percentile(mean_boot, 97.5))}


def _ok(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in runs if "error" not in r and "skipped" not in r]


def geomean(xs: list[float]) -> float:
    return float(math.exp(statistics.fmean(math.log(x) for x in xs))) if xs else float("nan")


# --------------------------------------------------------------------------- report


def print_table(ds: Dataset, runs: dict[str, list[dict[str, Any]]], seeds: list[int]) -> None:
    metric = "accuracy" if ds.task == "classification" else "r2"
    print(f"\n== {ds.name}: {ds.task}, {metric}; {ds.rows} rows ({ds.n_train} train / {ds.n_test} test); {ds.source}")
    print(f"{'system':<13} {'score mean ± 95% CI':>21} {'train s':>8} {'1-row p50 ms':>13}  notes")
    for system in SYSTEMS:
        rs = runs.get(system, [])
        ok = _ok(rs)
        if not ok:
            why = next((r.get("skipped") or r.get("error") for r in rs), "not run")
            print(f"{system:<13} {'-':>21} {'-':>8} {'-':>13}  {why}")
            continue
        sc = [r["score"] for r in ok]
        half = t_half(sc)
        shown = f"{statistics.fmean(sc):.4f} ± {half:.4f}" if not math.isnan(half) else f"{sc[0]:.4f}"
        secs = statistics.fmean(r["train_s"] for r in ok)
        lat = statistics.median(r["latency"]["p50_ms"] for r in ok)
        notes = _notes(system, ok)
        if len(ok) < len(rs):
            notes += f"; {len(rs) - len(ok)} run(s) failed: {next(r['error'] for r in rs if 'error' in r)}"
        print(f"{system:<13} {shown:>21} {secs:8.2f} {lat:13.4f}  {notes}")


def _notes(system: str, ok: list[dict[str, Any]]) -> str:
    info = [r.get("info", {}) for r in ok]
    if system.startswith("fulcrum"):
        fams = [i.get("family", "?") for i in info]
        return "chose " + ", ".join(f"{f} x{fams.count(f)}" for f in sorted(set(fams)))
    if system == "autogluon":
        best = [i.get("best_model", "?") for i in info]
        return f"{len(info[0].get('models', []))} models; best " + ", ".join(sorted(set(best)))
    if system == "flaml":
        return "budget " + ", ".join(f"{r['time_limit']:.1f}" for r in ok) + " s; " + \
            ", ".join(sorted({i.get("best_estimator", "?") for i in info}))
    if system == "hgb":
        return "grid: lr x leaves x l2, 3-fold CV"
    return ""


def goals(datasets: list[Dataset], res: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    print("\n== goals of issue 14 (Fulcrum default and --preset best vs AutoGluon default presets)")
    print("score differences: mean over datasets of (system - AutoGluon) in each table's metric (accuracy or R²),")
    print(f"with a paired bootstrap 95% interval over test rows ({BOOTSTRAP} resamples, seeds averaged)")

    d = paired_diff(datasets, res, "fulcrum", "autogluon")
    if d is None:
        print("1. score: no AutoGluon results (run `make bench-peers`)")
    else:
        for name, (p, lo, hi) in d["per"].items():
            print(f"   {name:<14} fulcrum - autogluon {p:+.4f} [{lo:+.4f}, {hi:+.4f}]")
        met = d["hi"] >= 0
        print(f"1. score: Fulcrum default - AutoGluon, mean over {len(d['per'])} datasets {d['mean']:+.4f} "
              f"[{d['lo']:+.4f}, {d['hi']:+.4f}]: "
              + ("MET (not below AutoGluon beyond noise)" if met else "MISSED (below AutoGluon beyond noise)"))

    ratios, lat_ratios = [], []
    for ds in datasets:
        f, a = _ok(res[ds.name]["fulcrum"]), _ok(res[ds.name]["autogluon"])
        if f and a:
            ratios.append((ds.name, statistics.fmean(r["train_s"] for r in a) / statistics.fmean(r["train_s"] for r in f)))
            lat_ratios.append((ds.name, statistics.median(r["latency"]["p50_ms"] for r in a)
                               / statistics.median(r["latency"]["p50_ms"] for r in f)))
    if ratios:
        g = geomean([r for _, r in ratios])
        print("2. training time: AutoGluon / Fulcrum default (goal >= 5): "
              + ", ".join(f"{n} {r:.2f}x" for n, r in ratios)
              + f"; geometric mean {g:.2f}x (the verdict), worst {min(r for _, r in ratios):.2f}x: "
              + ("MET" if g >= 5 else "MISSED"))
        g = geomean([r for _, r in lat_ratios])
        print("3. single-row latency: AutoGluon predict_proba p50 / Fulcrum predict_one p50 (goal >= 100): "
              + ", ".join(f"{n} {r:.0f}x" for n, r in lat_ratios)
              + f"; geometric mean {g:.0f}x, worst {min(r for _, r in lat_ratios):.0f}x (the verdict): "
              + ("MET" if min(r for _, r in lat_ratios) >= 100 else "MISSED"))

    best_runs = [r for ds in datasets for r in res[ds.name]["fulcrum-best"]]
    if best_runs and all("skipped" in r for r in best_runs):
        print(f"4. --preset best vs AutoGluon at equal time: not measurable: {best_runs[0]['skipped']}")
    else:
        d = paired_diff(datasets, res, "fulcrum-best", "autogluon")
        if d is not None:
            t = [statistics.fmean(r["train_s"] for r in _ok(res[ds.name]["fulcrum-best"]))
                 / statistics.fmean(r["train_s"] for r in _ok(res[ds.name]["autogluon"]))
                 for ds in datasets if _ok(res[ds.name]["fulcrum-best"]) and _ok(res[ds.name]["autogluon"])]
            print(f"4. --preset best - AutoGluon, mean {d['mean']:+.4f} [{d['lo']:+.4f}, {d['hi']:+.4f}] at "
                  f"{geomean(t):.2f}x AutoGluon's time (geometric mean): "
                  + ("MET beyond noise" if d["lo"] > 0 else "above on the mean, within noise" if d["mean"] > 0
                     else "MISSED"))

    small = [(ds.name, max(r["train_s"] for r in _ok(res[ds.name]["fulcrum"])))
             for ds in datasets if ds.rows < 10_000 and _ok(res[ds.name]["fulcrum"])]
    if small:
        worst = max(small, key=lambda x: x[1])
        print(f"5. slowest default Fulcrum run on a table under 10k rows: {worst[0]} {worst[1]:.1f} s (goal <= 15 s): "
              + ("MET" if worst[1] <= 15 else "MISSED"))
    for other in ("flaml", "hgb"):
        d = paired_diff(datasets, res, "fulcrum", other)
        if d is not None:
            print(f"   for reference, Fulcrum default - {other}: mean {d['mean']:+.4f} [{d['lo']:+.4f}, {d['hi']:+.4f}]")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default=DEFAULT_DATASETS)
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated seeds given to every system")
    ap.add_argument("--split-seed", type=int, default=0, help="seed of the one fixed 80/20 split per dataset")
    ap.add_argument("--systems", default=",".join(SYSTEMS), help="a subset of " + ",".join(SYSTEMS))
    ap.add_argument("--peers-venv", default=str(HERE.parent / ".venv-peers"))
    ap.add_argument("--autogluon-time-limit", type=float, default=None, help="seconds; default: none")
    ap.add_argument("--json", help="write every run (scores, times, latencies, predictions) here")
    ap.add_argument("--resume", action="store_true",
                    help="reuse the successful runs already in --json (same split seed); run only the missing ones")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    names = [n for n in args.datasets.split(",") if n]
    systems = [s for s in args.systems.split(",") if s]
    if unknown := [s for s in systems if s not in SYSTEMS]:
        raise SystemExit(f"unknown system(s) {unknown}; choose from {', '.join(SYSTEMS)}")
    if "flaml" in systems and "fulcrum" not in systems:
        raise SystemExit("flaml's time budget is Fulcrum's measured time: keep 'fulcrum' in --systems")

    peers_python: str | None = str(Path(args.peers_venv) / "bin" / "python")
    if not Path(peers_python).exists():
        print(f"no peers' venv at {args.peers_venv}: AutoGluon, FLAML and the extra tables are skipped "
              "(run `make bench-peers`); hgb runs under this interpreter")
        peers_python = None
    has_preset = option_exists("preset", "best")
    has_time_limit = option_exists("time_limit", 10.0)
    no_best = "this Fulcrum has no preset option (TrainConfig refuses preset='best')"
    load0 = os.getloadavg()
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in load0)} on {os.cpu_count()} CPUs; "
          f"seeds {seeds}; split seed {args.split_seed}; fulcrum {fulcrum.__version__}; "
          f"preset option: {'yes' if has_preset else 'no'}; time_limit option: {'yes' if has_time_limit else 'no'}")

    prev: dict[str, Any] = {}
    if args.resume:
        if not args.json or not Path(args.json).exists():
            raise SystemExit("--resume reuses the runs in --json FILE: give an existing file")
        old = json.loads(Path(args.json).read_text())
        if old.get("split_seed") != args.split_seed:
            raise SystemExit(f"{args.json} was measured on split seed {old.get('split_seed')}, not {args.split_seed}")
        prev = old["runs"]
    res: dict[str, dict[str, list[dict[str, Any]]]] = {}
    datasets: list[Dataset] = []
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-automl-") as home:
        tmp = Path(home)
        reg = fulcrum.Registry(tmp / "registry")
        for name in names:
            try:
                ds = prepare(name, peers_python, tmp, args.split_seed)
            except LookupError as exc:
                print(f"skip {name}: {exc}")
                continue
            datasets.append(ds)
            runs: dict[str, list[dict[str, Any]]] = {s: [] for s in SYSTEMS}
            res[name] = runs
            for seed in seeds:
                r: dict[str, Any]
                for system in RUN_ORDER:
                    load = os.getloadavg()[0]
                    reuse = [x for x in prev.get(name, {}).get(system, []) if x.get("seed") == seed and "score" in x]
                    if reuse:
                        runs[system].append(reuse[0])
                        print(f"{name:<14} seed {seed} {system:<13} score {reuse[0]['score']:.4f}  (reused from {args.json})")
                        continue
                    if system not in systems:
                        r = {"system": system, "skipped": "not in --systems"}
                    elif system == "fulcrum":
                        r = run_fulcrum(ds, seed, reg, "fulcrum")
                    elif system == "fulcrum-best":
                        if not has_preset:
                            r = {"system": system, "skipped": no_best}
                        else:
                            opts: dict[str, Any] = {"preset": "best"}
                            ag = [x for x in runs["autogluon"] if "train_s" in x and x.get("seed") == seed]
                            if has_time_limit and ag:
                                opts["time_limit"] = max(1.0, ag[0]["train_s"])
                            r = run_fulcrum(ds, seed, reg, "fulcrum-best", **opts)
                    elif system in ("autogluon", "flaml") and peers_python is None:
                        r = {"system": system, "skipped": "no peers' venv (make bench-peers)"}
                    elif system == "flaml":
                        f = [x for x in runs["fulcrum"] if x.get("seed") == seed and "train_s" in x]
                        r = (run_peer_system("flaml", ds, seed, peers_python, tmp, f[0]["train_s"]) if f  # type: ignore[arg-type]
                             else {"system": system, "skipped": "no Fulcrum time to budget"})
                    else:
                        limit = args.autogluon_time_limit if system == "autogluon" else None
                        r = run_peer_system(system, ds, seed, peers_python or sys.executable, tmp, limit)
                    r["seed"], r["load_before"] = seed, load
                    runs[system].append(r)
                    if args.json:  # after every run, so an interrupted benchmark keeps what it measured
                        _write_json(args.json, args, load0, datasets, res)
                    if "score" in r:
                        print(f"{name:<14} seed {seed} {system:<13} score {r['score']:.4f}  train {r['train_s']:7.2f} s  "
                              f"1-row p50 {r['latency']['p50_ms']:8.4f} ms  (load {load:.2f})", flush=True)
                    elif "error" in r:
                        print(f"{name:<14} seed {seed} {system:<13} FAILED: {r['error']}", flush=True)
    for ds in datasets:
        print_table(ds, res[ds.name], seeds)
    goals(datasets, res)
    print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"wall time {time.perf_counter() - t_start:.0f} s")
    if args.json:
        _write_json(args.json, args, load0, datasets, res)
        print(f"runs written to {args.json}")


def _write_json(path: str, args: argparse.Namespace, load0: tuple[float, ...], datasets: list[Dataset],
                res: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    tmp = Path(f"{path}.tmp")
    tmp.write_text(json.dumps({
        "seeds": args.seeds, "split_seed": args.split_seed, "load_at_start": load0,
        "datasets": {ds.name: {"target": ds.target, "task": ds.task, "source": ds.source, "rows": ds.rows,
                               "n_train": ds.n_train, "n_test": ds.n_test} for ds in datasets},
        "runs": res, "load_now": os.getloadavg()}, default=str))
    tmp.replace(path)


if __name__ == "__main__":
    main()
