"""Run one peer system on one CSV split and write what it scored, took and answers a row in.

Runs inside the peers' virtualenv (``make bench-peers`` builds ``.venv-peers``), driven by
``benchmarks/bench_automl.py`` through a subprocess, so AutoGluon, FLAML and their pins never
enter Fulcrum's environment. The ``hgb`` system needs only scikit-learn and pandas, so it also
runs under Fulcrum's own interpreter.

    run_peer.py --check                                   # imports every peer, prints versions
    run_peer.py --datasets                                # JSON: the extra tables below
    run_peer.py --export fair --out fair.csv              # write one of them as a CSV
    run_peer.py --system autogluon --train tr.csv --test te.csv --target y \\
                --task classification --seed 0 [--time-limit S] --workdir DIR --out result.json

Systems: ``autogluon`` (TabularPredictor, default presets, eval_metric = the benchmark metric),
``flaml`` (AutoML with ``time_budget`` = ``--time-limit``), ``hgb`` (impute / ordinal-encode,
HistGradientBoosting with early stopping, a small grid chosen by 3-fold CV).

The result JSON holds the test score (accuracy or R², Fulcrum's primary metrics), the test
predictions (for paired comparisons), the wall-clock training time and the single-row latency:
``predict_proba`` (``predict`` for regression) on one test row, p50 over ``--latency-calls``
timed calls after a warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

SYSTEMS = ("autogluon", "flaml", "hgb")
LATENCY_CALLS = 200
WARMUP_CALLS = 20


# --------------------------------------------------------------------------- shared helpers
# (bench_automl.py imports these, so Fulcrum and the peers are timed and scored the same way)


def p50_latency_ms(call: Callable[[], Any], calls: int = LATENCY_CALLS, warmup: int = WARMUP_CALLS) -> dict[str, float]:
    """Median and p90 of ``calls`` single calls after ``warmup`` untimed ones, in milliseconds."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return {"p50_ms": statistics.median(times), "p90_ms": times[int(0.9 * (len(times) - 1))], "calls": calls}


def score(task: str, y_true: Any, y_pred: Any) -> float:
    """Accuracy (labels compared as text) or R²: Fulcrum's primary metrics."""
    if task == "classification":
        t = np.asarray([str(v) for v in y_true], dtype=object)
        p = np.asarray([str(v) for v in y_pred], dtype=object)
        return float(np.mean(t == p))
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    return 1.0 - float(np.sum((t - p) ** 2)) / ss_tot


def read_split(path: str | os.PathLike[str], target: str, task: str) -> pd.DataFrame:
    """A split file as every peer reads it: pandas defaults, a classification target as text."""
    df = pd.read_csv(path)
    if task == "classification":
        df[target] = df[target].astype(str)
    return df


# --------------------------------------------------------------------------- extra tables
# Real public tables that ship inside wheels installed in .venv-peers; nothing is downloaded.


def _fair() -> pd.DataFrame:
    # Fair (1978) affairs survey, 6,366 women (statsmodels.datasets.fair, a CSV in the wheel).
    # Target as in statsmodels' own logit example: any time spent in affairs.
    import statsmodels.datasets.fair as fair

    df = fair.load_pandas().data.copy()
    df["affair"] = np.where(df.pop("affairs") > 0, "yes", "no")
    return df


def _anes96() -> pd.DataFrame:
    # 1996 American National Election Study, 944 voters (statsmodels.datasets.anes96): vote for
    # Dole or Clinton from ideology placements, party id, TV news, age, education, income.
    # logpopul is dropped: it is log(popul + 0.1), a copy of popul.
    import statsmodels.datasets.anes96 as anes96

    df = anes96.load_pandas().data.copy().drop(columns=["logpopul"])
    df["vote"] = np.where(df["vote"] > 0, "Dole", "Clinton")
    return df


def _cars() -> pd.DataFrame:
    # Classic auto MPG table, 406 cars (vega_datasets' local data: a JSON file in the wheel):
    # name, cylinders, displacement, horsepower (gaps), weight, acceleration, model year (a date),
    # origin (text). Rows without a target (8) are dropped.
    from vega_datasets import local_data

    df = local_data.cars().copy()
    df = df[df["Miles_per_Gallon"].notna()].reset_index(drop=True)
    df["Year"] = pd.to_datetime(df["Year"]).dt.strftime("%Y-%m-%d")
    return df


EXTRA: dict[str, dict[str, Any]] = {
    "fair": {"load": _fair, "target": "affair", "task": "classification", "source": "statsmodels.datasets.fair"},
    "anes96": {"load": _anes96, "target": "vote", "task": "classification", "source": "statsmodels.datasets.anes96"},
    "cars": {"load": _cars, "target": "Miles_per_Gallon", "task": "regression", "source": "vega_datasets.local_data.cars"},
}


# --------------------------------------------------------------------------- systems


def _hgb(task: str, X: pd.DataFrame, seed: int) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OrdinalEncoder

    num = X.select_dtypes("number").columns.tolist()
    cat = [c for c in X.columns if c not in num]
    pre = ColumnTransformer([
        ("num", "passthrough", num),  # trees take NaN natively
        ("cat", make_pipeline(SimpleImputer(strategy="constant", fill_value="<missing>"),
                              OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                                             encoded_missing_value=-1)), cat),
    ])
    common: dict[str, Any] = dict(max_iter=500, early_stopping=True, validation_fraction=0.15, n_iter_no_change=20,
                                  categorical_features=list(range(len(num), len(num) + len(cat))) or None,
                                  random_state=seed)
    if task == "classification":
        est: Any = HistGradientBoostingClassifier(**common)
        cv: Any = StratifiedKFold(3, shuffle=True, random_state=seed)
    else:
        est = HistGradientBoostingRegressor(**common)
        cv = KFold(3, shuffle=True, random_state=seed)
    grid = {"hgb__learning_rate": [0.05, 0.1], "hgb__max_leaf_nodes": [7, 31], "hgb__l2_regularization": [0.0, 1.0]}
    return GridSearchCV(Pipeline([("pre", pre), ("hgb", est)]), grid, cv=cv,
                        scoring="accuracy" if task == "classification" else "r2")


def run_system(system: str, train: pd.DataFrame, test: pd.DataFrame, target: str, task: str, seed: int,
               time_limit: float | None, workdir: Path) -> dict[str, Any]:
    X, y = train.drop(columns=[target]), train[target]
    X_test = test.drop(columns=[target])
    row = X_test.iloc[[0]]
    info: dict[str, Any] = {}
    if system == "autogluon":
        from autogluon.tabular import TabularPredictor

        problem = "regression" if task == "regression" else ("binary" if y.nunique() == 2 else "multiclass")
        predictor = TabularPredictor(label=target, problem_type=problem,
                                     eval_metric="accuracy" if task == "classification" else "r2",
                                     path=str(workdir / "autogluon"), verbosity=0)
        t0 = time.perf_counter()
        # presets: the default (medium_quality); AutoGluon seeds its models itself (0), so --seed does not reach it
        predictor.fit(train, time_limit=time_limit)
        secs = time.perf_counter() - t0
        board = predictor.leaderboard(silent=True)
        info = {"best_model": predictor.model_best, "models": board["model"].tolist(),
                "presets": "default (medium_quality)"}
        pred = predictor.predict(X_test).to_numpy()
        one = (lambda: predictor.predict_proba(row)) if task == "classification" else (lambda: predictor.predict(row))
    elif system == "flaml":
        from flaml import AutoML

        if time_limit is None:
            raise SystemExit("flaml needs --time-limit (its time_budget)")
        automl = AutoML()
        t0 = time.perf_counter()
        # retrain_full="budget": the final refit on all rows happens only within the budget, so the
        # whole fit stays near the time it was given (with the default True it ran 3x past it)
        automl.fit(X, y, task=task, metric="accuracy" if task == "classification" else "r2",
                   time_budget=time_limit, seed=seed, verbose=0, log_file_name="", retrain_full="budget")
        secs = time.perf_counter() - t0
        info = {"best_estimator": automl.best_estimator, "time_budget": time_limit}
        pred = np.asarray(automl.predict(X_test))
        one = (lambda: automl.predict_proba(row)) if task == "classification" else (lambda: automl.predict(row))
    elif system == "hgb":
        t0 = time.perf_counter()
        model = _hgb(task, X, seed).fit(X, y)
        secs = time.perf_counter() - t0
        info = {"best_params": {k.split("__", 1)[1]: v for k, v in model.best_params_.items()}}
        pred = np.asarray(model.predict(X_test))
        one = (lambda: model.predict_proba(row)) if task == "classification" else (lambda: model.predict(row))
    else:
        raise SystemExit(f"unknown system {system!r}; choose one of {', '.join(SYSTEMS)}")
    latency = p50_latency_ms(one)
    return {"system": system, "score": score(task, test[target], pred), "train_s": secs, "latency": latency,
            "predictions": [p if isinstance(p, str) else float(p) for p in pred.tolist()],
            "time_limit": time_limit, "info": info}


# --------------------------------------------------------------------------- entry points


def check() -> None:
    """Import every peer; refuse a CUDA torch (the install must not have pulled one)."""
    import autogluon.tabular
    import catboost
    import flaml
    import lightgbm
    import statsforecast  # benchmarks/bench_forecast.py (run_forecast_peer.py)
    import statsmodels
    import torch
    import transformers
    import vega_datasets
    import xgboost

    if torch.version.cuda is not None:
        raise SystemExit(f"torch {torch.__version__} is a CUDA build; the peers' venv wants the CPU wheel torch==2.13.0")
    mods = {"autogluon.tabular": autogluon.tabular, "flaml": flaml, "lightgbm": lightgbm, "xgboost": xgboost,
            "catboost": catboost, "torch": torch, "transformers": transformers, "statsmodels": statsmodels,
            "statsforecast": statsforecast,
            "vega_datasets": vega_datasets}
    print("peers: " + ", ".join(f"{k} {getattr(m, '__version__', '?')}" for k, m in mods.items()))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--datasets", action="store_true", help="print the extra tables as JSON")
    ap.add_argument("--export", metavar="NAME", help="write extra table NAME to --out as CSV")
    ap.add_argument("--system", choices=SYSTEMS)
    ap.add_argument("--train")
    ap.add_argument("--test")
    ap.add_argument("--target")
    ap.add_argument("--task", choices=("classification", "regression"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--time-limit", type=float, default=None)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    if args.check:
        check()
        return
    if args.datasets:
        print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "load"} for k, v in EXTRA.items()}))
        return
    if args.export:
        if args.export not in EXTRA or not args.out:
            raise SystemExit(f"--export takes one of {', '.join(EXTRA)} and needs --out FILE.csv")
        df = EXTRA[args.export]["load"]()
        df.to_csv(args.out, index=False)
        print(json.dumps({"rows": len(df), "columns": len(df.columns)}))
        return
    missing = [k for k in ("system", "train", "test", "target", "task", "out") if getattr(args, k) is None]
    if missing:
        raise SystemExit("missing: " + ", ".join("--" + m.replace("_", "-") for m in missing))
    workdir = Path(args.workdir or Path(args.out).parent)
    workdir.mkdir(parents=True, exist_ok=True)
    train = read_split(args.train, args.target, args.task)
    test = read_split(args.test, args.target, args.task)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_system(args.system, train, test, args.target, args.task, args.seed, args.time_limit, workdir)
    result["python"] = sys.executable
    Path(args.out).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
