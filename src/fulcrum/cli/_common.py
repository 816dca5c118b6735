"""Shared CLI plumbing: registry option, output helpers, table printing."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Iterable, Sequence


def add_registry_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--registry", metavar="DIR", default=None,
                   help="registry directory (default: $FULCRUM_HOME/registry, FULCRUM_HOME defaults to ~/.fulcrum)")


def registry_from(args: argparse.Namespace) -> Any:
    from ..artifact import Registry

    return Registry(args.registry)


def note(msg: str) -> None:
    print(msg, file=sys.stderr)


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True, default=str))


def fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    rows = [[fmt(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(out)


def human_size(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


METRIC_ORDER = ("accuracy", "balanced_accuracy", "f1", "roc_auc", "log_loss", "rmse", "mae", "r2",
                "ndcg@10", "recall@10", "map@10", "coverage@10", "wer", "cer")


def metrics_lines(metrics: dict[str, Any]) -> str:
    keys = [k for k in METRIC_ORDER if k in metrics]
    return "  ".join(f"{k}={fmt(metrics[k])}" for k in keys)
