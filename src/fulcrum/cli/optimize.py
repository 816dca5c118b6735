"""``fulcrum optimize REF``: build optimized variants, measure them here, choose one under constraints.

::

    fulcrum optimize iris@1                                        # build + measure every variant that applies
    fulcrum optimize iris@1 --constraints "p95_ms<=1, metric_drop<=0.01" --alias production --plot pareto.png
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ._common import add_registry_option, fmt, note, print_json, table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("optimize", help="build and measure optimized variants; choose one under constraints")
    p.add_argument("ref", help="model reference (name, name@3, name@alias) or a package directory")
    p.add_argument("--constraints", metavar="TEXT", default=None,
                   help='e.g. "p95_ms<=1, size_mb<=0.5, metric_drop<=0.01"; keys: p50_ms p95_ms p99_ms (batch 1), '
                        "throughput (>=), size_mb, metric_drop, metric (>=)")
    p.add_argument("--objective", default="p95_ms", choices=["p95_ms", "p50_ms", "p99_ms", "size_mb", "throughput",
                                                                 "metric", "metric_drop"],
                   help="what the best variant minimizes (throughput/metric: maximizes); default p95_ms at batch 1")
    p.add_argument("--alias", default=None,
                   help="register the chosen variant as a new version and point this alias at it (needs --constraints); "
                        "a version worse than the alias's current target beyond noise (by more than the metric_drop "
                        "constraint, default 0.01) is refused unless --force")
    p.add_argument("--force", action="store_true",
                   help="with --alias: move the alias even to a version worse than its current target")
    p.add_argument("--variants", default=None, metavar="A,B",
                   help="kinds or ids to build/consider, as the model's task offers them: onnx-fp32, int8-dynamic, "
                        "int8-static; for tables pruned, pruned-NN, "
                        "distilled, trees, trees-NN, shallow (default: every kind that applies)")
    p.add_argument("--sparsities", default=None, metavar="0.5,0.8", help="pruning sparsities (default 0.5,0.8)")
    p.add_argument("--data", default=None, metavar="FILE",
                   help="the training table, when the package's recorded data source cannot be read again")
    p.add_argument("--remeasure", action="store_true", help="measure existing variants again on this machine")
    p.add_argument("--plot", default=None, metavar="FILE.png", help="write a Pareto plot (metric vs p95 latency)")
    p.add_argument("--json", action="store_true", help="print the variants and the choice as JSON")
    add_registry_option(p)
    p.set_defaults(func=run)


def _split_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    return items or None


def _ms_with_interval(value: float | None, ci: list[float] | None) -> str:
    from ..costs._record import format_ms

    if value is None:
        return "-"
    if not ci:
        return format_ms(value)
    return f"{format_ms(value)} ({format_ms(ci[0])}-{format_ms(ci[1])})"


def _rows(variants: dict[str, Any], records: dict[str, Any], selected: str | None,
          passing: set[str] | None) -> list[list[Any]]:
    """One row per variant; every figure read from the package's measurement record."""
    from ..costs._compare import simplicity_key
    from ..costs._record import format_ms, format_size, format_usd

    rows = []
    base = records.get("base")
    for vid in sorted(variants, key=lambda v: simplicity_key(v, variants[v])):
        e, m = variants[vid], records.get(vid)
        lat = (m.latency_ms if m is not None else None) or {}
        ci = (m.latency_ci_ms if m is not None else None) or {}
        value = m.metric_value if m is not None else None
        base_value = base.metric_value if base is not None else None
        delta = None if value is None or base_value is None else value - base_value + 0.0
        verdict = e.get("verdict", "-")
        if passing is not None and vid not in passing:
            verdict += "; fails constraints"
        mark = "*" if vid == selected else ""
        rows.append([
            mark + vid,
            fmt(value),
            "-" if delta is None else f"{delta:+.4f}",
            _ms_with_interval(lat.get("p50"), ci.get("p50")), format_ms(lat.get("p95")), format_ms(lat.get("p99")),
            "-" if e.get("throughput_rps") is None else f"{e['throughput_rps']:,.0f}",
            format_size(m.size_bytes if m is not None else e.get("size_bytes")),
            format_usd(m.usd_per_million if m is not None else None),
            verdict,
        ])
    return rows


def _footer(records: dict[str, Any]) -> None:
    base = records.get("base")
    if base is None:
        return
    timing = (base.entry.get("timing") or {}) if base.source == "optimize" else {}
    rounds = f"median over {timing['rounds']} interleaved rounds, (lo-hi) = {100 * timing['level']:.0f}% interval; " \
        if timing.get("rounds") else ""
    print(f"latency: one call at batch 1, {rounds}faster/slower only when intervals separate")
    print(f"$/1M: batch 1, default cost model (the figure `fulcrum costs` and `fulcrum models` show); size in kB "
          f"(1000 bytes)")
    print(f"measured: {base.describe()}")


def run(args: argparse.Namespace) -> int:
    from ..artifact import is_path_ref, validate_alias
    from ..errors import ConfigError, ConstraintError
    from ..optimize._select import parse_constraints, select_variant, with_quality_default
    from ..optimize._variants import OptimizeOptions, expand_ids, optimize_package, promote_variant, store

    # ---- every input is checked before anything is built or written
    constraints = parse_constraints(args.constraints)
    quality_added = False
    if constraints:  # quality before speed or size (DESIGN §8): the default metric_drop<=0.01 unless given
        constraints, quality_added = with_quality_default(constraints)
    if args.alias is not None:
        validate_alias(args.alias)
        if not constraints:
            raise ConfigError('--alias needs --constraints to choose a variant by, e.g. --constraints "metric_drop<=0.01".')
        if is_path_ref(args.ref):
            raise ConfigError(f"--alias needs a registered model, and {args.ref} is a package directory; pass a "
                              "registry reference (name@version) instead.")
    if args.plot is not None and not str(args.plot).lower().endswith(".png"):
        raise ConfigError(f"--plot writes a PNG; give a file name ending in .png, not {args.plot!r}.")
    opts = OptimizeOptions()
    if args.sparsities:
        try:
            opts = OptimizeOptions(sparsities=tuple(float(s) for s in _split_list(args.sparsities) or ()))
        except ValueError:
            raise ConfigError(f"--sparsities takes fractions like 0.5,0.8; got {args.sparsities!r}.") from None
    requested = _split_list(args.variants)

    from ..artifact import Registry

    registry = Registry(args.registry)
    report = optimize_package(args.ref, registry=registry, variants=requested, data=args.data, options=opts,
                              remeasure=args.remeasure, log=note)
    variants = report.variants
    if requested is not None:  # choose among the requested ones and the parent
        keep = expand_ids(requested, opts, report.package) | {"base"}
        variants = {k: v for k, v in variants.items() if k in keep or v.get("kind") in requested}

    selection = None
    failure: ConstraintError | None = None
    if constraints:
        try:
            selection = select_variant(variants, constraints, args.objective)
        except ConstraintError as exc:
            failure = exc

    from ..costs import measurements

    pkg = report.package
    records = measurements(pkg, batch=1)  # the one source of every figure printed below and in the plot
    result: dict[str, Any] = {**report.to_dict(), "variants": variants,
                              "measurements": {k: records[k].to_dict() for k in variants if k in records}}
    if quality_added:
        result["quality_constraint"] = "metric_drop<=0.01 (default)"
    if selection is not None:
        from datetime import datetime, timezone

        record = {**selection.to_dict(), "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        pkg = store(pkg, report.registry, {}, {"selected_variant": record})
        result["selected_variant"] = record
        if args.alias:  # register the choice, then move the alias through the one promotion policy
            from ..artifact import DEFAULT_MAX_DROP, promote

            new = promote_variant(registry, pkg.ref, selection.chosen, None, record)
            max_drop = max(0.0, next((c.value for c in constraints if c.key == "metric_drop"), DEFAULT_MAX_DROP))
            try:
                decision = promote(registry, new.ref, args.alias, force=args.force, max_drop=max_drop, log=None)
            except ConstraintError as exc:  # worse than the alias's current target: refused, exit 1
                if getattr(exc, "result", None) is None:
                    raise
                decision, failure = exc.result, exc  # type: ignore[attr-defined]
            result["alias"] = {**decision, "alias": args.alias, "ref": new.ref}
    if args.plot:
        from ..optimize._plot import metric_rows_label, plot_pareto

        plot_pareto({k: records[k] for k in variants if k in records}, args.plot, metric_name=report.metric_name,
                    greater_is_better=report.greater_is_better, rows=metric_rows_label(pkg.manifest),
                    selected=selection.chosen if selection else None, constraints=constraints,
                    title=f"{pkg.ref}: variants measured on this machine")
        result["plot"] = str(args.plot)

    if args.json:
        if failure is not None:
            result["error"] = str(failure)
            result["failures"] = getattr(failure, "failures", None)
        print_json(result)
    else:
        headers = ["variant", report.metric_name, "Δ vs parent", "p50 b1 ms (interval)", "p95 b1 ms", "p99 b1 ms",
                   "rows/s b256", "size", "$/1M", "verdict"]
        passing = set(selection.passing) if selection else (set() if failure else None)
        print(f"{pkg.ref}: variants measured on this machine"
              f"{'' if report.measured else ' (stored measurements; --remeasure to measure again)'}")
        print(table(headers, _rows(variants, records, selection.chosen if selection else None, passing)))
        _footer(records)
        for kind, why in report.skipped.items():
            print(f"skipped {kind}: {why}")
        if quality_added:
            print("quality constraint: metric_drop<=0.01 (the default; add metric_drop<=X or metric>=X to "
                  "--constraints to change it)")
        if selection is not None:
            print(f"selected: {selection.chosen} ({selection.reason}; {args.objective} = {selection.value:.4g}; "
                  f"meeting {', '.join(map(str, constraints))}: {', '.join(selection.passing)})")
            if args.alias:
                print(result["alias"]["line"])
                if result["alias"]["moved"]:
                    print(f"{pkg.name}@{args.alias} -> {result['alias']['ref']} (model.onnx = variant {selection.chosen})")
        if args.plot:
            print(f"plot: {args.plot}")
    if failure is not None:
        print(f"error: {failure}", file=sys.stderr)
        return 1
    return 0
