"""``fulcrum models``: what the registry holds."""

from __future__ import annotations

import argparse

from ._common import add_registry_option, print_json, registry_from, table


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
    for r in rows:
        r.update(_cost_columns(reg, r))
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print(f"no models in {reg.root} yet; train one with `fulcrum train builtin:iris`")
        return 0
    print(table(
        ["name", "version", "aliases", "task", "metric", "size", "train cost", "$/1M pred", "created"],
        [(r["name"], r["version"], ",".join(r["aliases"]) or "-", r["task"],
          f"{r['metric_name']}={r['metric_value']:.4f}" if r.get("metric_value") is not None else "-",
          _size(r["size_bytes"]), _usd(r.get("training_usd")), _usd(r.get("usd_per_million")),
          str(r["created"])[:19]) for r in rows],
    ))
    print("$/1M pred: the version's own graph at batch 1, default cost model, from its latest measurement "
          "(`fulcrum optimize` when run, else the one after training); details: `fulcrum costs NAME@VERSION`")
    return 0


def _size(n: int | None) -> str:
    from ..costs._record import format_size

    return format_size(n)


def _usd(v: float | None) -> str:
    from ..costs._record import format_usd

    return format_usd(v)


def _cost_columns(reg: object, row: dict) -> dict:
    """Training cost and cost per 1M predictions (the parent graph at batch 1, default cost model),
    read through the package's measurement record: the same figures `fulcrum costs` and
    `fulcrum optimize` print."""
    from ..costs import CostModel, measurement, money
    from ..costs._ledger import _training_record
    from ..errors import FulcrumError

    try:
        pkg = reg.load(f"{row['name']}@{row['version']}", verify=False)  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - a broken package still lists; `fulcrum predict` reports it
        return {}
    out: dict = {"training_usd": None, "usd_per_million": None, "cost_source": None}
    try:
        out["training_usd"] = money(_training_record(pkg), CostModel())["total_usd"]
    except (FulcrumError, KeyError, TypeError, ValueError):
        pass
    try:
        m = measurement(pkg, "base", batch=1)
    except (FulcrumError, KeyError, TypeError, ValueError):
        return out
    out["usd_per_million"] = m.usd_per_million
    out["cost_source"] = {"source": m.source, "measured_at": m.measured_at, "method": m.method}
    return out
