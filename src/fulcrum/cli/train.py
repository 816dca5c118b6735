"""``fulcrum train DATA --target COL``: train, package and register a model."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ._common import add_registry_option, metrics_lines, note, print_json, registry_from

# flag -> config key, for the common options (any key works through --set KEY=VALUE)
FLAGS = {
    "target": str, "task": str, "kind": str, "model": str, "epochs": int, "batch_size": int, "lr": float,
    "seed": int, "cv_folds": int, "balance": str, "patience": int, "fine_tune": bool,
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
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other config key, e.g. --set hidden_sizes=[256,128] --set dropout=0.2")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_registry_option(p)
    p.set_defaults(func=run)


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
    overrides.update(_parse_set(args.set))
    if args.resume:
        overrides["resume"] = True
    if args.no_progress or args.json:
        overrides["progress"] = False
    pkg = train(args.data, name=args.name, config=args.config, registry=registry_from(args),
                log=note, **overrides)
    m = pkg.manifest
    if args.json:
        print_json({"ref": pkg.ref, "path": str(pkg.path), "metrics": m["metrics"], "model": m["model"]})
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
    print(f"package {pkg.ref}  ({pkg.path})")
    return 0
