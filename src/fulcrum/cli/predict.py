"""``fulcrum predict REF INPUT [-o OUTPUT]``: batch prediction over a file."""

from __future__ import annotations

import argparse

from ._common import add_registry_option, note


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict", help="predict every row of a file with a registered model",
        description="Predict every row of INPUT. The output holds the --keep columns, then 'prediction' "
                    "(and 'proba_<label>' per class for classifiers); it is written only when every row succeeded.",
    )
    p.add_argument("ref", help="model reference: name, name@3 or name@alias (or a package directory)")
    p.add_argument("input", help="a .csv, .tsv, .parquet or .jsonl file with the model's input columns")
    p.add_argument("-o", "--output", default="-", metavar="OUTPUT",
                   help="where to write predictions: .csv, .tsv, .parquet, .jsonl or .json (one array of records); "
                        "'-' (the default) writes CSV to standard output")
    p.add_argument("--keep", metavar="COLS", default="",
                   help="comma-separated input columns to copy into the output in front of the predictions, e.g. ids")
    p.add_argument("--chunk-rows", type=int, default=50_000, help="rows per chunk (bounds memory)")
    p.add_argument("--strict", action="store_true", help="fail on categories never seen in training")
    p.add_argument("--no-progress", action="store_true")
    add_registry_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import load
    from ..runtime import predict_file

    keep = [c.strip() for c in args.keep.split(",") if c.strip()]
    to_stdout = args.output == "-"
    predictor = load(args.ref, registry=args.registry)
    rows = predict_file(predictor, args.input, args.output, chunk_rows=args.chunk_rows,
                        on_unknown="error" if args.strict else "ignore",
                        progress=not args.no_progress, notice=note, keep=keep)
    if to_stdout:  # standard output holds the CSV alone
        note(f"wrote {rows} prediction(s) from {predictor.package.ref} to standard output")
    else:
        print(f"wrote {rows} prediction(s) from {predictor.package.ref} to {args.output}")
    return 0
