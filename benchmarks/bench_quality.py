"""Quality: `fulcrum train` with defaults vs tuned scikit-learn baselines, same splits, several seeds.

For each built-in dataset and seed, Fulcrum's own split (seeded, stratified) is reproduced
with ``fulcrum.data.train_val_test_split``. Each baseline is fitted on train+validation and
tunes itself there by cross-validation; everything is scored on the same test rows with
Fulcrum's primary metric (accuracy / R²):

- ``linear-cv``: impute + scale / one-hot, then LogisticRegressionCV (10 C values, 5-fold)
  or RidgeCV (13 alphas, efficient leave-one-out);
- ``hgb-cv``: impute / ordinal-encode, then HistGradientBoosting (classifier/regressor) with
  early stopping on an internal validation fraction, and a small grid (learning rate x leaf
  count) chosen by 3-fold CV.

Per dataset and baseline the script reports the mean difference Fulcrum - baseline over
the seeds with a 95% t-interval, and a verdict: "behind" when the whole interval is below
zero, "ahead" when it is above, else "tie (within noise)". Test splits of these datasets are
small (30 rows for iris), so one seed's difference is mostly noise; the interval says how
much.

    python benchmarks/bench_quality.py [--datasets iris,wine,...] [--seeds 0,1,2,3,4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from typing import Any

# Quality, not speed, is measured here: one thread per library keeps the many small CV fits
# (HistGradientBoosting, LightGBM, torch) from oversubscribing a shared machine (set
# OMP_NUM_THREADS yourself to change it).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor  # noqa: E402
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.linear_model import LogisticRegressionCV, RidgeCV  # noqa: E402
from sklearn.metrics import accuracy_score, r2_score  # noqa: E402
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold  # noqa: E402
from sklearn.pipeline import Pipeline, make_pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler  # noqa: E402

import fulcrum  # noqa: E402
from fulcrum.config import TrainConfig  # noqa: E402
from fulcrum.data import builtin_info, read_table, train_val_test_split  # noqa: E402

DEFAULT = "breast_cancer,wine,iris,penguins,diabetes"


def _columns(X: pd.DataFrame) -> tuple[list[str], list[str]]:
    num = X.select_dtypes("number").columns.tolist()
    return num, [c for c in X.columns if c not in num]


def linear_cv(task: str, X: pd.DataFrame, seed: int) -> Any:
    num, cat = _columns(X)
    pre = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()), num),
        ("cat", make_pipeline(SimpleImputer(strategy="constant", fill_value="<missing>"),
                              OneHotEncoder(handle_unknown="ignore")), cat),
    ])
    if task == "classification":
        est = LogisticRegressionCV(Cs=10, cv=StratifiedKFold(5, shuffle=True, random_state=seed), max_iter=5000)
    else:
        est = RidgeCV(alphas=np.logspace(-3, 3, 13))
    return make_pipeline(pre, est)


def hgb_cv(task: str, X: pd.DataFrame, seed: int) -> Any:
    num, cat = _columns(X)
    pre = ColumnTransformer([
        ("num", "passthrough", num),  # trees take NaN natively
        ("cat", make_pipeline(SimpleImputer(strategy="constant", fill_value="<missing>"),
                              OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)), cat),
    ])
    common = dict(max_iter=500, early_stopping=True, validation_fraction=0.15, n_iter_no_change=20,
                  categorical_features=list(range(len(num), len(num) + len(cat))) or None, random_state=seed)
    if task == "classification":
        est: Any = HistGradientBoostingClassifier(**common)
        cv: Any = StratifiedKFold(3, shuffle=True, random_state=seed)
    else:
        est = HistGradientBoostingRegressor(**common)
        cv = KFold(3, shuffle=True, random_state=seed)
    grid = {"hgb__learning_rate": [0.05, 0.1], "hgb__max_leaf_nodes": [7, 31]}
    return GridSearchCV(Pipeline([("pre", pre), ("hgb", est)]), grid, cv=cv,
                        scoring="accuracy" if task == "classification" else "r2")


BASELINES = {"linear-cv": linear_cv, "hgb-cv": hgb_cv}


def score(task: str, y: pd.Series, pred: np.ndarray) -> float:
    return float(accuracy_score(y, pred) if task == "classification" else r2_score(y, pred))


def one_seed(name: str, seed: int, reg: Any) -> dict[str, Any]:
    info = builtin_info(name)
    df = read_table(f"builtin:{name}")
    df = df[df[info.target].notna()].reset_index(drop=True)
    cfg = TrainConfig(target=info.target, seed=seed, progress=False)
    train, val, test = train_val_test_split(df, info.target, task=info.task, test_size=cfg.test_size,
                                            val_size=cfg.val_size, seed=cfg.seed)
    t0 = time.perf_counter()
    pkg = fulcrum.train(f"builtin:{name}", registry=reg, seed=seed, progress=False, measure_inference=False)
    out: dict[str, Any] = {"fulcrum": pkg.manifest["metrics"]["primary"]["value"],
                           "family": pkg.manifest["model"]["family"], "secs": {"fulcrum": time.perf_counter() - t0}}
    assert pkg.manifest["data"]["rows"]["test"] == len(test), "the reproduced split differs from Fulcrum's"
    fit = pd.concat([train, val], ignore_index=True)
    X, y = fit.drop(columns=[info.target]), fit[info.target]
    for base, make in BASELINES.items():
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter from the CV grids
            model = make(info.task, X, seed).fit(X, y)
        out[base] = score(info.task, test[info.target], model.predict(test.drop(columns=[info.target])))
        out["secs"][base] = time.perf_counter() - t0
    return out


def interval(d: list[float]) -> tuple[float, float, float]:
    """Mean and 95% t-interval of the per-seed differences."""
    m = statistics.fmean(d)
    if len(d) < 2:
        return m, float("nan"), float("nan")
    half = stats.t.ppf(0.975, len(d) - 1) * statistics.stdev(d) / len(d) ** 0.5
    return m, m - half, m + half


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default=DEFAULT)
    ap.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds; each seed is its own split")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    names = args.datasets.split(",")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    results: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory() as home:
        reg = fulcrum.Registry(f"{home}/registry")
        for seed in seeds:
            for name in names:
                r = one_seed(name, seed, reg)
                results[name].append(r)
                shown = "  ".join(f"{b} {r[b]:.4f}" for b in BASELINES)
                print(f"seed {seed} {name:<14} fulcrum ({r['family']}) {r['fulcrum']:.4f}  {shown}", flush=True)

    metric = {n: "accuracy" if builtin_info(n).task == "classification" else "r2" for n in names}
    print(f"\nFulcrum - baseline on the test split, mean over seeds {seeds} with a 95% t-interval")
    print(f"{'dataset':<14} {'metric':<9} {'fulcrum':>8} {'baseline':<10} {'base':>7} {'diff':>8} {'95% interval':>19}  verdict")
    behind: list[str] = []
    trailing: list[str] = []  # below on the mean, inside the noise
    for name in names:
        rs = results[name]
        ours = statistics.fmean(r["fulcrum"] for r in rs)
        for base in BASELINES:
            d = [r["fulcrum"] - r[base] for r in rs]
            m, lo, hi = interval(d)
            verdict = "behind" if hi < 0 else "ahead" if lo > 0 else "tie (within noise)"
            if verdict == "behind":
                behind.append(f"{name} vs {base} ({m:+.4f} {metric[name]})")
            elif m < 0:
                trailing.append(f"{name} vs {base} ({m:+.4f}, interval [{lo:+.4f}, {hi:+.4f}])")
            print(f"{name:<14} {metric[name]:<9} {ours:8.4f} {base:<10} {statistics.fmean(r[base] for r in rs):7.4f} "
                  f"{m:+8.4f} [{lo:+8.4f}, {hi:+8.4f}]  {verdict}")
        fams = sorted({r["family"] for r in rs})
        secs = {k: statistics.fmean(r["secs"][k] for r in rs) for k in ("fulcrum", *BASELINES)}
        print(f"{'':<14} fulcrum chose {', '.join(fams)}; mean fit seconds: "
              + ", ".join(f"{k} {v:.1f}" for k, v in secs.items()))
    print("\nFulcrum is behind (interval entirely below 0): " + ("; ".join(behind) if behind else "nowhere"))
    print("below on the mean but within noise: " + ("; ".join(trailing) if trailing else "nowhere"))
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
