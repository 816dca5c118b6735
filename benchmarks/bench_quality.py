"""Quality bar: `fulcrum train` with defaults vs a plain scikit-learn pipeline, same split.

For each built-in dataset, Fulcrum's own split (seeded, stratified) is reproduced
with fulcrum.data.train_val_test_split; the scikit-learn baseline (impute +
scale / one-hot + logistic or ridge regression) is fitted on train+validation
(it has no use for a validation split) and both are scored on the same test rows.

    python benchmarks/bench_quality.py [--datasets iris,wine,...] [--seeds 0,1,2]

Target (issue 2): Fulcrum >= baseline on breast_cancer, wine, iris, penguins, diabetes.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, r2_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import fulcrum
from fulcrum.config import TrainConfig
from fulcrum.data import builtin_info, read_table, train_val_test_split

DEFAULT = "breast_cancer,wine,iris,penguins,diabetes"


def baseline(train: pd.DataFrame, test: pd.DataFrame, target: str, task: str) -> float:
    X, y = train.drop(columns=[target]), train[target]
    num = X.select_dtypes("number").columns.tolist()
    cat = [c for c in X.columns if c not in num]
    pre = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), num),
        ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")), cat),
    ])
    est = LogisticRegression(max_iter=2000) if task == "classification" else Ridge()
    model = make_pipeline(pre, est).fit(X, y)
    pred = model.predict(test.drop(columns=[target]))
    return accuracy_score(test[target], pred) if task == "classification" else r2_score(test[target], pred)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default=DEFAULT)
    ap.add_argument("--seeds", default="0", help="comma-separated seeds; each seed is its own split")
    args = ap.parse_args()
    diffs: dict[str, list[float]] = {}
    seeds = [int(s) for s in args.seeds.split(",")]
    for seed in seeds:
        args.seed = seed
        for name, ours, base in run(args):
            diffs.setdefault(name, []).append(ours - base)
    if len(seeds) > 1:
        print(f"mean difference fulcrum - sklearn over seeds {seeds}:")
        for name, d in diffs.items():
            print(f"  {name:<14} {np.mean(d):+.4f}  (worst {min(d):+.4f})")


def run(args: argparse.Namespace) -> list[tuple[str, float, float]]:
    rows = []
    with tempfile.TemporaryDirectory() as home:
        reg = fulcrum.Registry(f"{home}/registry")
        for name in args.datasets.split(","):
            info = builtin_info(name)
            df = read_table(f"builtin:{name}")
            df = df[df[info.target].notna()].reset_index(drop=True)
            cfg = TrainConfig(target=info.target, seed=args.seed, progress=False)
            train, val, test = train_val_test_split(df, info.target, task=info.task, test_size=cfg.test_size,
                                                    val_size=cfg.val_size, seed=cfg.seed)
            t0 = time.perf_counter()
            pkg = fulcrum.train(f"builtin:{name}", registry=reg, seed=args.seed, progress=False)
            secs = time.perf_counter() - t0
            m = pkg.manifest["metrics"]
            ours = m["primary"]["value"]
            base = baseline(pd.concat([train, val]), test, info.target, info.task)
            rows.append((name, m["primary"]["name"], pkg.manifest["model"]["family"], ours, base, secs))
    print(f"{'dataset':<14} {'metric':<9} {'fulcrum model':<13} {'fulcrum':>8} {'sklearn':>8} {'diff':>7} {'train s':>8}")
    for name, metric, fam, ours, base, secs in rows:
        print(f"{name:<14} {metric:<9} {fam:<13} {ours:8.4f} {base:8.4f} {ours - base:+7.4f} {secs:8.1f}")
    ok = sum(ours >= base - 1e-9 for _, _, _, ours, base, _ in rows)
    print(f"fulcrum >= baseline on {ok}/{len(rows)} datasets (test split, seed {args.seed})")
    return [(name, ours, base) for name, _, _, ours, base, _ in rows]


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
