"""``fulcrum predict REF INPUT [-o OUTPUT]``: batch prediction over a file, or over a folder of images/clips or a
table of their paths for models that take files (runtime/_files.py)."""

from __future__ import annotations

import argparse

from ._common import add_registry_option, note


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict", help="predict every row of a file with a registered model",
        description="Predict every row of INPUT. The output holds the --keep columns, then 'prediction' "
                    "(and 'proba_<label>' per class for classifiers); it is written only when every row succeeded. "
                    "For an image or audio model INPUT may be a folder (every image/clip under it, recursively, in "
                    "sorted order; the output starts with each file's relative 'path') or a table with a column of "
                    "file paths relative to the table's folder (paths leaving that folder are refused). A corrupt or "
                    "over-limit file stops the run with one error naming it, and nothing is written.",
    )
    p.add_argument("ref", help="model reference: name, name@3 or name@alias (or a package directory)")
    p.add_argument("input", help="a .csv, .tsv, .parquet or .jsonl file with the model's input columns; for an "
                                 "image or audio model also a folder of files or a table of their paths")
    p.add_argument("-o", "--output", default="-", metavar="OUTPUT",
                   help="where to write predictions: .csv, .tsv, .parquet, .jsonl or .json (one array of records); "
                        "'-' (the default) writes CSV to standard output")
    p.add_argument("--keep", metavar="COLS", default="",
                   help="comma-separated input columns to copy into the output in front of the predictions, e.g. ids")
    p.add_argument("--chunk-rows", type=int, default=50_000, help="rows per chunk (bounds memory)")
    p.add_argument("--strict", action="store_true", help="fail on categories never seen in training")
    p.add_argument("--path-column", metavar="COL", default=None,
                   help="the table's column of file paths (default: the column whose values end in the model's "
                        "file suffixes, e.g. .png or .wav)")
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="local (default: this process) | ray: spread the chunks of INPUT, or the table files of a "
                        "folder INPUT, over Ray Data workers; the output is the local run's, in input order")
    p.add_argument("--address", metavar="ADDR",
                   help="with --backend ray: the cluster (auto: the one `ray start --head` runs here; HOST:PORT; "
                        "ray://HOST:10001); default: a local cluster on this machine")
    p.add_argument("--no-progress", action="store_true")
    add_registry_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import load
    from ..runtime import predict_file
    from ..runtime._files import is_media_source, predict_media

    keep = [c.strip() for c in args.keep.split(",") if c.strip()]
    to_stdout = args.output == "-"
    predictor = load(args.ref, registry=args.registry)
    if getattr(args, "backend", "local") == "ray":
        from ..runtime._ray_batch import predict_file_ray

        rows = predict_file_ray(predictor, args.input, args.output, chunk_rows=args.chunk_rows,
                                on_unknown="error" if args.strict else "ignore", keep=keep, address=args.address,
                                notice=note)
    elif args.path_column or is_media_source(predictor, args.input):
        rows = predict_media(predictor, args.input, args.output, keep=keep, column=args.path_column,
                             progress=not args.no_progress, notice=note)
    else:
        rows = predict_file(predictor, args.input, args.output, chunk_rows=args.chunk_rows,
                            on_unknown="error" if args.strict else "ignore",
                            progress=not args.no_progress, notice=note, keep=keep)
    if to_stdout:  # standard output holds the CSV alone
        note(f"wrote {rows} prediction(s) from {predictor.package.ref} to standard output")
    else:
        print(f"wrote {rows} prediction(s) from {predictor.package.ref} to {args.output}")
    return 0
