"""``fulcrum tune DATA --trials N --time-limit S --model FAMILY``: search one family's hyperparameters with
Optuna, train the best trial and register it with the study's summary and a plot of the search."""

from __future__ import annotations

import argparse
import math
from typing import Any

from ._common import add_registry_option, fmt, metrics_lines, note, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tune", help="search a tabular model's hyperparameters (Optuna) and register the best",
                       description="Search the hyperparameters of one tabular model family on DATA (a file or "
                                   "builtin:NAME) with Optuna: a seeded TPE sampler, bad trials pruned from their "
                                   "intermediate reports (CV folds for linear and LightGBM, epochs for the MLP). "
                                   "Trial 0 is the defaults. The best trial is trained as `fulcrum train` would "
                                   "and registered; its manifest holds the study's summary (`tuning`) and the "
                                   "package a plot of the search (tuning/search.png).")
    p.add_argument("data", help="a file path or builtin:NAME")
    p.add_argument("--target", help="the column to predict (default for builtin data: its usual target)")
    p.add_argument("--name", help="model name in the registry (default: the file's stem)")
    p.add_argument("--model", default="lightgbm",
                   help="the family to tune: lightgbm (default) | mlp | linear")
    p.add_argument("--trials", type=int, default=20, metavar="N", help="at most N trials (default 20)")
    p.add_argument("--time-limit", dest="time_limit", type=float, metavar="SECONDS",
                   help="no trial starts after this many seconds of search (a running one finishes; the final "
                        "training follows)")
    p.add_argument("--backend", default="local",
                   help="local (default: Optuna in this process) | ray: the trials on a Ray cluster through Ray "
                        "Tune (OptunaSearch over the same space, pruned by the ASHA scheduler)")
    p.add_argument("--address", metavar="ADDR",
                   help="with --backend ray: the cluster (auto: the one `ray start --head` runs here; HOST:PORT; "
                        "ray://HOST:10001); default: a local cluster on this machine")
    p.add_argument("--pruner", default="median",
                   help="median (default) | halving | none (the local backend; Ray Tune prunes with ASHA)")
    p.add_argument("--folds", type=int, default=5, help="CV folds per linear / LightGBM trial (default 5)")
    p.add_argument("--epochs", type=int, help="MLP epochs per trial (early stopping still applies)")
    p.add_argument("--seed", type=int)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other config key, e.g. --set patience=5")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_registry_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import tune
    from .train import _parse_set

    overrides: dict[str, Any] = {k: getattr(args, k) for k in ("epochs", "seed") if getattr(args, k) is not None}
    overrides.update(_parse_set(args.set))
    if args.no_progress or args.json:
        overrides["progress"] = False
    limit = args.time_limit
    pkg = tune(args.data, args.target, trials=args.trials, time_limit=limit, model=args.model,
               backend=args.backend, pruner=args.pruner, folds=args.folds, name=args.name, address=args.address,
               registry=args.registry, log=note, **overrides)
    m = pkg.manifest
    s = m["tuning"]
    plot = pkg.path / s["plot"]
    if args.json:
        print_json({"ref": pkg.ref, "path": str(pkg.path), "metrics": m["metrics"], "tuning": s, "plot": str(plot)})
        return 0
    base = s["baseline"]
    print(f"tuned {s['family']} for {m['task']['kind']} of {m['task']['target']!r}: {s['trials']} trials "
          f"({s['complete']} complete, {s['pruned']} pruned, {s['failed']} failed) in {s['search_s']:.1f} s, "
          f"stopped by {s['stopped_by']}")
    print(f"  objective: {s['metric']}, {s['objective']}" + ("  (Ray Tune, ASHA)" if s["backend"] == "ray" else ""))
    print(f"  best trial {s['best_trial']}: {fmt(s['best_value'])}   defaults (trial 0): {fmt(base['value'])}"
          + ("" if base["state"] == "complete" else f" ({base['state']})"))
    print("  best params: " + ", ".join(f"{k}={_short(v)}" for k, v in s["best_params"].items()))
    print(f"  test:       {metrics_lines(m['metrics']['test'])}")
    print(f"search plot: {plot}")
    print(f"package {pkg.ref}  ({pkg.path})")
    return 0


def _short(v: Any) -> str:
    if isinstance(v, float) and math.isfinite(v):
        return f"{v:.4g}"
    return str(v)
