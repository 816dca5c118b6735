"""``fulcrum promote REF --alias A``: point an alias (production, staging, ...) at a version, through the
promotion policy: old -> new with the metric change on the same held-out rows, and a move to a version
that is worse beyond noise needs ``--force``."""

from __future__ import annotations

import argparse

from ._common import add_registry_option, print_json, registry_from


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "promote", help="point an alias at a model version (refuses a worse one without --force)",
        description="Compares REF with the alias's current target on that version's held-out test rows (primary "
                    "metric, paired-bootstrap 95% interval), prints old -> new with the change, and moves the alias "
                    "unless REF is worse beyond noise by more than --max-drop, cannot be compared on the same rows, "
                    "or changes the class labels; --force moves it anyway.")
    p.add_argument("ref", help="name@version (or name for the latest)")
    p.add_argument("--alias", default="production", help="alias to set (default: production)")
    p.add_argument("--force", action="store_true", help="move the alias even to a worse or incomparable version")
    p.add_argument("--max-drop", type=float, default=None, metavar="X",
                   help="largest metric drop allowed without --force, in the metric's units (default 0.01)")
    p.add_argument("--data", default=None, metavar="FILE",
                   help="the current target's training table, when its recorded data source cannot be read again")
    p.add_argument("--json", action="store_true", help="print what happened as JSON")
    add_registry_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..artifact import DEFAULT_MAX_DROP, promote
    from ..errors import ConstraintError
    from ._common import note

    reg = registry_from(args)
    max_drop = DEFAULT_MAX_DROP if args.max_drop is None else args.max_drop
    try:
        result = promote(reg, args.ref, args.alias, force=args.force, max_drop=max_drop, data=args.data,
                         log=note if args.json else print)
    except ConstraintError as exc:
        if args.json and getattr(exc, "result", None) is not None:
            print_json({**exc.result, "error": str(exc)})  # type: ignore[attr-defined]
        raise
    if args.json:
        print_json(result)
    return 0
