"""Entry point: ``fulcrum VERB ...``. Errors print one clear line and exit non-zero."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from . import costs, datasets, evaluate, keys, models, monitor, optimize, predict, promote, retrain, serve, tasks, train, tune, ui

VERBS = [datasets, tasks, train, tune, evaluate, predict, models, promote, serve, keys, monitor, retrain, costs, optimize, ui]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fulcrum",
        description="Train, package, optimize, serve and cost machine-learning models.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb in VERBS:
        verb.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from ..errors import FulcrumError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from .. import __version__

        print(f"fulcrum {__version__}")
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except FulcrumError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if os.environ.get("FULCRUM_DEBUG"):
            raise
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
