"""``fulcrum monitor REF``: what the server saw (drift, OOD rate), the live metric from feedback,
the training metric, and whether to retrain."""

from __future__ import annotations

import argparse
import contextlib
from typing import Any

from ._common import add_registry_option, fmt, print_json, registry_from, table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "monitor",
        help="drift, out-of-distribution rate and live metric of a served model, and a retrain recommendation",
        description="Reads the latest monitor snapshot the server saved for REF and the ground-truth feedback "
        "from the serving records (<registry>.serving.sqlite, or --records-db); with --data, monitors a file of "
        "inputs instead of the server's window.",
    )
    p.add_argument("ref", help="model reference: name, name@3 or name@alias")
    p.add_argument("--data", metavar="FILE", help="monitor these inputs (a file or builtin:NAME) instead of the server's snapshot")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--records-db", metavar="PATH", default=None,
                   help="the server's records database (default: <registry>.serving.sqlite; as `fulcrum serve --records-db`)")
    add_registry_option(p)
    p.set_defaults(func=run)


def collect(reg: Any, ref: str, data: str | None = None, records_db: str | None = None) -> dict[str, Any]:
    """Everything ``fulcrum monitor`` shows, as a dict (also used by ``--json``)."""
    from ..data import read_table
    from ..serve import FeedbackStore, Monitor, load_latest_snapshot, recommend
    from ..serve._records import connect_records, records_path

    pkg = reg.load(ref)
    name, version = pkg.name, pkg.version
    db = records_path(reg, records_db)
    m = pkg.manifest
    if data is not None:
        frame = read_table(data)
        mon = Monitor.from_package(pkg, window=max(1, len(frame)))
        watched = [str(o["name"]) for o in m.get("outputs") or [] if o.get("kind") == "monitored"]
        scores = None
        if watched or mon.graph_scores:  # the graph's per-input quantities (e.g. an image's brightness) or its OOD
            # score (e.g. a transcriber's): run it, as the server does
            import numpy as np

            from ..runtime import Predictor

            out = Predictor(pkg).predict_columns({str(c): frame[c].to_numpy() for c in frame.columns})
            frame = frame.assign(**{k: np.asarray(out[k], dtype=np.float64).reshape(-1) for k in watched if k in out})
            scores = out.get("ood_score") if mon.graph_scores else None
        mon.observe(frame, scores=scores)
        snapshot: dict[str, Any] | None = mon.snapshot()
        origin = f"file {data}"
    else:
        with contextlib.closing(connect_records(db)) as conn:
            snapshot = load_latest_snapshot(conn, name, version)
        origin = "server" if snapshot is not None else None
    with FeedbackStore(db, registry=reg) as store:
        live = store.live_metric(name, version)
        counts = store.counts(name)
        counts_version = store.counts(name, version)
    trained = (m.get("metrics") or {}).get("test") or {}
    source = (m.get("data") or {}).get("source")
    rec = recommend(snapshot, live, trained, data_source=source, feedback_rows=counts["feedback"])
    return {
        "ref": pkg.ref,
        "served": counts_version["predictions"] > 0 or snapshot is not None,
        "origin": origin,
        "snapshot": snapshot,
        "predictions": counts_version["predictions"],
        "live_metric": live,
        "trained_metric": {k: v for k, v in trained.items() if k != "confusion_matrix"},
        "recommendation": rec,
    }


def run(args: argparse.Namespace) -> int:
    reg = registry_from(args)
    report = collect(reg, args.ref, args.data, args.records_db)
    if args.json:
        print_json(report)
        return 0
    ref, snap, live, rec = report["ref"], report["snapshot"], report["live_metric"], report["recommendation"]
    print(f"monitor {ref}")
    if snap is None:
        if report["predictions"]:
            print(f"  no monitor snapshot saved for {ref} yet ({report['predictions']} prediction(s) recorded)")
        else:
            print(f"  nothing served yet: no monitor snapshot and no recorded predictions for {ref}; "
                  f"serve it with `fulcrum serve {ref}`, or check a file of inputs with `fulcrum monitor {ref} --data FILE`")
    else:
        w, c = snap["window"], snap["counts"]
        print(f"  inputs from the {report['origin']}, snapshot {snap.get('created', '-')}: {w['rows']} row(s) in the window "
              f"(size {w['size']}), {c['rows_observed']} observed")
        if snap["status"] == "insufficient data":
            print(f"  insufficient data: drift needs at least {w['min_rows']} rows in the window")
        print(f"\ndrift per input (PSI >= {snap['psi_threshold']} and significant = drifted):")
        rows = [
            (col, d.get("kind") or "-", d.get("n", 0), d.get("psi"), d.get("ks"),
             fmt((d.get("missing") or {}).get("window")), d["status"])
            for col, d in snap["drift"].items()
        ]
        print("  " + table(["column", "kind", "n", "psi", "ks", "missing", "status"], rows).replace("\n", "\n  "))
        for col, d in snap["drift"].items():  # a text input drifts by its length or by its words
            parts = [(label, d.get(key)) for label, key in (("text length (characters)", "length"),
                                                            ("out-of-vocabulary share", "oov")) if d.get(key)]
            for label, part in parts:
                mean = {k: ("-" if v is None else f"{v:.4g}") for k, v in (part.get("mean") or {}).items()}
                print(f"    {col}: {label}: mean {mean.get('train', '-')} in training -> {mean.get('window', '-')} "
                      f"now, psi {fmt(part.get('psi'))}, {part.get('status')}")
        ood = snap["ood"]
        rate = "-" if ood["rate"] is None else f"{ood['rate']:.1%}"
        print(f"\nout-of-distribution: {rate} of the window (rows scoring >= {ood['threshold']}; "
              f"mean score {fmt(ood['mean_score'])}, max {fmt(ood['max_score'])})")
    metric = rec["checks"]["metric"]
    name = metric["name"] or "metric"
    print()
    if live["n"] == 0:
        print(f"live {name}: no feedback yet (send ground truth by request id to measure it); "
              f"training test {name}: {fmt(metric['trained'])}")
    else:
        print(f"live {name}: {fmt(metric['live'])} on {live['n']} feedback row(s)  vs  training test {name}: "
              f"{fmt(metric['trained'])}" + ("" if live["n"] >= metric["min_feedback"]
                                              else f"  (fewer than {metric['min_feedback']} rows: no verdict)"))
    print()
    data = rec["data"]
    if rec["retrain"]:
        print("recommendation: RETRAIN")
        for reason in rec["reasons"]:
            print(f"  - {reason}")
    else:
        undecided = [k for k, ch in rec["checks"].items() if ch["crossed"] is None]
        extra = f" (not enough data to judge: {', '.join(undecided)})" if undecided else ""
        print(f"recommendation: no retrain needed{extra}")
    print(f"  retrain data: {data['source']} + {data['feedback_rows']} feedback row(s)"
          + (f"  -> `fulcrum retrain {ref}`" if rec["retrain"] else ""))
    return 0
