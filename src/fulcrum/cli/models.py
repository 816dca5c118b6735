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
          human_size(r["size_bytes"]), _usd(r.get("training_usd")), _usd(r.get("usd_per_million")),
          str(r["created"])[:19]) for r in rows],
    ))
    return 0


def _usd(v: float | None) -> str:
    return "-" if v is None else f"${v:.3g}"


def _cost_columns(reg: object, row: dict) -> dict:
    """Training cost and cost per 1M predictions (batch 1) from the package's cost record."""
    try:
        pkg = reg.load(f"{row['name']}@{row['version']}", verify=False)  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - a broken package still lists; `fulcrum predict` reports it
        return {}
    costs = pkg.manifest.get("costs") or {}
    train = costs.get("training") or {}
    base = (costs.get("inference") or {}).get("base", {}).get("batch_1") or {}
    return {
        "training_usd": train.get("usd"),
        "usd_per_million": base["usd"] * 1e6 if "usd" in base else None,
    }
