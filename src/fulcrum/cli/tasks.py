"""``fulcrum tasks``: the registered tasks (workloads), in the order ``fulcrum train`` asks them."""

from __future__ import annotations

import argparse

from ._common import print_json, table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tasks", help="list the tasks (workloads) fulcrum trains; force one with train --task NAME",
                       description="The registered tasks, in detection order: `fulcrum train` gives a table to the "
                                   "first task that recognises it, and to the last (tabular) otherwise.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from ..config import TrainConfig
    from ..tasks import FALLBACK, list_tasks

    rows = []
    for task in list_tasks():
        cls = task.config_class or TrainConfig
        rows.append({"name": task.name, "summary": task.summary, "kinds": list(task.kinds),
                     "fallback": task.name == FALLBACK, "config": cls.__name__,
                     "config_keys": sorted(f.name for f in dataclasses.fields(cls))})
    if args.json:
        print_json(rows)
        return 0
    print(table(["task", "kinds", "config", "summary"],
                [(r["name"] + (" (fallback)" if r["fallback"] else ""), ", ".join(r["kinds"]), r["config"], r["summary"])
                 for r in rows]))
    print("\nfulcrum train DATA --task NAME forces a task; its options: --set KEY=VALUE (keys of its config).")
    return 0
