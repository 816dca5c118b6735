"""``fulcrum datasets``: the built-in datasets, a line each."""

from __future__ import annotations

import argparse

from ._common import print_json, table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("datasets", help="list built-in datasets (use them as builtin:NAME)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data import list_builtin

    items = list_builtin()
    if args.json:
        print_json([vars(d) if hasattr(d, "__dict__") else d for d in items])
        return 0
    print(table(["name", "task", "target", "rows", "cols", "description"],
                [(f"builtin:{d.name}", d.task, d.target, d.rows, d.columns, d.description) for d in items]))
    return 0
