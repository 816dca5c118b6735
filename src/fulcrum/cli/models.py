"""``fulcrum models``: what the registry holds."""

from __future__ import annotations

import argparse

from ._common import add_registry_option, human_size, print_json, registry_from, table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list registered models and versions")
    p.add_argument("name", nargs="?", help="only this model")
    p.add_argument("--json", action="store_true")
    add_registry_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    reg = registry_from(args)
    rows = [r for r in reg.list() if args.name is None or r["name"] == args.name]
    if args.name and not rows:
        reg.resolve(args.name)  # raises NotFoundError with the known names
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print(f"no models in {reg.root} yet; train one with `fulcrum train builtin:iris`")
        return 0
    print(table(
        ["name", "version", "aliases", "task", "metric", "size", "created"],
        [(r["name"], r["version"], ",".join(r["aliases"]) or "-", r["task"],
          f"{r['metric_name']}={r['metric_value']:.4f}" if r.get("metric_value") is not None else "-",
          human_size(r["size_bytes"]), str(r["created"])[:19]) for r in rows],
    ))
    return 0
