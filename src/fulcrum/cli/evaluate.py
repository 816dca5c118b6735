"""``fulcrum evaluate REF DATA``: metrics of a registered model on labelled data."""

from __future__ import annotations

import argparse

from ._common import METRIC_ORDER, add_registry_option, fmt, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="score a registered model on labelled data")
    p.add_argument("ref", help="model reference: name, name@3 or name@alias")
    p.add_argument("data", help="a file or builtin:NAME holding the target column")
    p.add_argument("--json", action="store_true")
    add_registry_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import evaluate

    metrics = evaluate(args.ref, args.data, registry=args.registry)
    if args.json:
        print_json(metrics)
        return 0
    print(f"{args.ref} on {args.data} ({metrics['n']} rows)")
    for k in METRIC_ORDER:
        if k in metrics:
            print(f"  {k:<18} {fmt(metrics[k])}")
    if "confusion_matrix" in metrics:
        print("  confusion matrix (rows: true, columns: predicted)")
        for row in metrics["confusion_matrix"]:
            print("    " + " ".join(f"{v:>5d}" for v in row))
    return 0
