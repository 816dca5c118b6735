"""``fulcrum evaluate REF DATA``: metrics of a registered model on labelled data."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import METRIC_ORDER, add_registry_option, fmt, note, print_json


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
    dropped = metrics.get("dropped_missing_target", 0)
    if dropped:
        note(f"note: dropped {dropped} row(s) with a missing target {metrics.get('target')!r}")
    print(f"{args.ref} on {args.data} ({metrics['n']} rows)")
    for k in METRIC_ORDER:
        if k in metrics:
            print(f"  {k:<18} {fmt(metrics[k])}")
    if "confusion_matrix" in metrics:
        print("  confusion matrix (rows: true, columns: predicted)")
        print(confusion_table(metrics["confusion_matrix"], metrics.get("labels"), indent="    "))
    return 0


def confusion_table(matrix: list[list[int]], labels: list[Any] | None, indent: str = "") -> str:
    """The matrix with a header of class names (columns: predicted) and one name per row (true)."""
    names = [str(v) for v in (labels if labels is not None else range(len(matrix)))]
    first = max(len(n) for n in names)
    widths = [max(len(n), *(len(str(row[j])) for row in matrix)) for j, n in enumerate(names)]
    lines = [indent + " " * first + "  " + "  ".join(n.rjust(w) for n, w in zip(names, widths))]
    for name, row in zip(names, matrix):
        lines.append(indent + name.ljust(first) + "  " + "  ".join(str(v).rjust(w) for v, w in zip(row, widths)))
    return "\n".join(lines)
