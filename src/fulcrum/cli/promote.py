"""``fulcrum promote REF --alias A``: point an alias (production, staging, ...) at a version."""

from __future__ import annotations

import argparse

from ._common import add_registry_option, registry_from


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("promote", help="point an alias at a model version")
    p.add_argument("ref", help="name@version (or name for the latest)")
    p.add_argument("--alias", default="production", help="alias to set (default: production)")
    add_registry_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    reg = registry_from(args)
    name, version = reg.set_alias(args.ref, args.alias)
    print(f"{name}@{args.alias} -> version {version}")
    return 0
