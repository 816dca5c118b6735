"""``fulcrum train DATA --target COL``: train, package and register a model."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from ._common import add_registry_option, metrics_lines, note, print_json, registry_from

# flag -> config key, for the common options (any key works through --set KEY=VALUE)
FLAGS = {
    "target": str, "task": str, "kind": str, "model": str, "epochs": int, "batch_size": int, "lr": float,
    "seed": int, "cv_folds": int, "balance": str, "patience": int, "fine_tune": bool,
    "backend": str, "ray_address": str, "workers": int, "gpus_per_worker": float, "max_failures": int,
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model on a table and register it",
                       description="Train on DATA (a .csv/.parquet/.jsonl file or builtin:NAME). The task is "
                                   "inferred (a long free-text column and a label: text; otherwise tabular) unless "
                                   "--task NAME forces one; `fulcrum tasks` lists them. Task-specific options go "
                                   "through --set KEY=VALUE (or a --config file) and are checked by the task.")
    p.add_argument("data", help="a file path or builtin:NAME")
    p.add_argument("--target", help="the column to predict (default for builtin data: its usual target)")
    p.add_argument("--name", help="model name in the registry (default: the file's stem)")
    p.add_argument("--model", help="the task's model family, e.g. for tables auto | mlp | linear | lightgbm, for text "
                                   "auto | ngram | minilm | ensemble (default auto: train several, keep the best)")
    p.add_argument("--task", help="auto | a task name (see `fulcrum tasks`: tabular, text, ...); the old "
                                  "classification | regression still set --kind")
    p.add_argument("--kind", help="auto | classification | regression (the prediction kind)")
    p.add_argument("--config", metavar="FILE", help="a .json/.toml/.yaml file of options; unknown keys are refused")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", dest="batch_size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--patience", type=int)
    p.add_argument("--cv-folds", dest="cv_folds", type=int, help="k-fold cross-validation (0 = off)")
    p.add_argument("--balance", help="none | class_weight | oversample")
    p.add_argument("--fine-tune", dest="fine_tune", action="store_true", default=None,
                   help="text: fine-tune the MiniLM encoder end to end (through the shared Trainer) instead of "
                        "training a head on its frozen embeddings")
    p.add_argument("--preset", choices=("fast", "balanced", "best"),
                   help="what --model auto runs (default balanced). fast: linear + LightGBM, 3-fold CV, no search, "
                        "no ensemble, no refit on all rows, 5 s limit. balanced: + up to 12 LightGBM search trials "
                        "(Optuna TPE), the MLP on tables of >= 5,000 rows when its estimated time fits, 5-fold CV, a "
                        "weighted ensemble when it beats the best single model beyond noise, refit on all rows, 12 s "
                        "limit. best: up to 60 trials, 8 folds, the MLP from 1,000 rows, 120 s limit. Default limits "
                        "grow with rows x columns above 200,000 cells")
    p.add_argument("--time-limit", dest="time_limit", type=_seconds, metavar="SECONDS",
                   help="seconds for the whole run (selection, refit, export, inference measurement); it returns the "
                        "best model found so far (default: the preset's, scaled to the table)")
    p.add_argument("--infer-limit", dest="infer_limit", type=_millis, metavar="MS",
                   help="per-row latency limit at batch 1 in milliseconds, measured on this machine on each "
                        "candidate's ONNX graph; slower candidates and ensembles are excluded (stored in the package)")
    refit = p.add_mutually_exclusive_group()
    refit.add_argument("--refit-full", dest="refit_full", action="store_true", default=None,
                       help="after selection and the honest test score, refit the chosen model on every row, test "
                            "rows included (default in presets balanced and best)")
    refit.add_argument("--no-refit-full", dest="refit_full", action="store_false",
                       help="keep the test rows out of the final model (default in preset fast)")
    p.add_argument("--plot", nargs="?", const="", metavar="PNG",
                   help="write the leaderboard as a PNG (default path: NAME-vVERSION-leaderboard.png here)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other config key, e.g. --set hidden_sizes=[256,128] --set dropout=0.2")
    p.add_argument("--backend", choices=("local", "ray"),
                   help="local (default: this process) | ray: data-parallel training of the MLP (--model mlp) "
                        "through Ray Train (DDP), checkpointed every epoch, resumed from the last checkpoint "
                        "after a worker failure")
    p.add_argument("--address", dest="ray_address", metavar="ADDR",
                   help="with --backend ray: the cluster (auto: the one `ray start --head` runs here; HOST:PORT; "
                        "ray://HOST:10001); default: a local cluster on this machine")
    p.add_argument("--workers", type=_count("--workers", 1), metavar="N", help="with --backend ray: data-parallel workers (default 2)")
    p.add_argument("--gpus-per-worker", dest="gpus_per_worker", type=_gpus, metavar="G",
                   help="with --backend ray: GPUs per worker (default 0: CPU)")
    p.add_argument("--max-failures", dest="max_failures", type=_count("--max-failures", 0), metavar="K",
                   help="with --backend ray: worker failures a run survives, each resumed from the last "
                        "checkpoint (default 3)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_registry_option(p)
    p.set_defaults(func=run)


def _positive(flag: str, unit: str, example: str) -> Any:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"{flag} takes a positive number of {unit}, e.g. {flag} {example}; "
                                             f"got {text!r}")
        return value

    return parse


def _count(flag: str, low: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"{flag} takes a whole number >= {low}, e.g. {flag} 2; got {text!r}")
        return value

    return parse


def _gpus(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"--gpus-per-worker takes a number >= 0 (0: CPU; 0.5: half a GPU), e.g. "
                                         f"--gpus-per-worker 1; got {text!r}")
    return value


_seconds = _positive("--time-limit", "seconds", "60")
_millis = _positive("--infer-limit", "milliseconds per row", "1.5")


def _parse_set(items: list[str]) -> dict[str, Any]:
    from ..errors import ConfigError

    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set dropout=0.2.")
        key, raw = item.split("=", 1)
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


def run(args: argparse.Namespace) -> int:
    from .. import train

    overrides = {k: getattr(args, k) for k in FLAGS if getattr(args, k, None) is not None}
    for key in ("preset", "time_limit", "infer_limit", "refit_full"):
        if getattr(args, key, None) is not None:
            overrides[key] = getattr(args, key)
    overrides.update(_parse_set(args.set))
    if args.resume:
        overrides["resume"] = True
    if args.no_progress or args.json:
        overrides["progress"] = False
    pkg = train(args.data, name=args.name, config=args.config, registry=registry_from(args),
                log=note, **overrides)
    m = pkg.manifest
    sel = m.get("selection")
    plot_path = None
    if args.plot is not None and sel:
        from pathlib import Path

        from ..tasks.tabular._select import plot_leaderboard

        plot_path = Path(args.plot or f"{pkg.name}-v{pkg.version}-leaderboard.png")
        plot_leaderboard(sel, plot_path, title=f"{pkg.ref}: {sel['metric']} by candidate (preset {sel['preset']})")
    elif args.plot is not None:
        note("note: --plot draws the leaderboard of a tabular run; this task has none")
    if args.json:
        out = {"ref": pkg.ref, "path": str(pkg.path), "metrics": m["metrics"], "model": m["model"]}
        if sel:
            out["selection"] = sel
        if plot_path is not None:
            out["plot"] = str(plot_path)
        print_json(out)
        return 0
    task = m["task"]
    print(f"trained {m['model']['family']} ({task.get('workload', 'tabular')} task) for {task['kind']} of "
          f"{task['target']!r}")
    print(f"  validation: {metrics_lines(m['metrics'].get('validation') or {})}")
    print(f"  test:       {metrics_lines(m['metrics']['test'])}")
    cv = m["metrics"].get("cv")
    if cv:
        shown = "  ".join(f"{k}={v['mean']:.4f}±{v['std']:.4f}" for k, v in cv.items() if isinstance(v, dict))
        print(f"  cv ({cv['folds']} folds): {shown}")
    d = m["model"].get("describe", {})
    if "coefficients" in d:
        coefs = ", ".join(f"{k}={v:.2f}" for k, v in d["coefficients"].items())
        print(f"  coefficients: {coefs}  intercept={d['intercept']:.2f}")
    if sel:
        _print_selection(m, sel, board=m.get("config", {}).get("model", "auto") == "auto")
    if plot_path is not None:
        print(f"leaderboard plot: {plot_path}")
    print(f"package {pkg.ref}  ({pkg.path})")
    return 0


def _print_selection(m: dict[str, Any], sel: dict[str, Any], *, board: bool = True) -> None:
    """The leaderboard (when candidates were compared), why the winner won, what the time limit cut, and what
    refit_full did."""
    from ..tasks.tabular._select import format_leaderboard

    from ._common import fmt

    t = sel["time"]
    rf = sel.get("refit_full") or {}
    primary = m["metrics"]["primary"]
    if not board:
        if rf.get("applied"):
            print(f"  refit on all {rf['final_fit_rows']} rows (train, validation and test): the test "
                  f"{primary['name']} {fmt(primary['value'])} above was measured before the refit")
        return
    print(f"\nleaderboard (preset {sel['preset']}, {sel['folds']}-fold "
          f"{'CV' if sel['method'] == 'cv' else 'validation split'} on train+validation, "
          f"{sel['n_jobs']} fold(s) at a time):")
    for line in format_leaderboard(sel):
        print(f"  {line}")
    print(f"  {sel['chosen']} won: {sel['why']}")
    if sel.get("infer_limit_ms") is not None:
        print(f"  --infer-limit {sel['infer_limit_ms']:g} ms per row (batch 1, this machine's ONNX Runtime)")
    limit = (f"{t['limit_s']:g} s" if t['limit_s'] is not None else "no limit") + (
        " (the preset's default for this table)" if t.get("default") and t['limit_s'] is not None else "")
    print(f"  time: {t['used_s']:.1f} s of {limit}" + (f"; cut: {'; '.join(t['cut'])}" if t["cut"] else ""))
    for s in sel.get("skipped") or []:
        print(f"  skipped {s}")
    if rf.get("applied"):
        print(f"  refit on all {rf['final_fit_rows']} rows (train, validation and test): the test {primary['name']} "
              f"{fmt(primary['value'])} above was measured before the refit, on test rows the final model has now "
              "seen; promote and retrain score this version there by its stored pre-refit outputs")
    elif rf.get("skipped") == "time limit":
        print(f"  refit on all rows skipped (time limit): the final model fits {rf['final_fit_rows']} rows")
    else:
        print(f"  the final model fits train+validation ({rf.get('final_fit_rows')} rows); the test rows stay held out "
              "(--refit-full fits them too)")
