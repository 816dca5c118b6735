"""``fulcrum costs REF``: what training cost, what a prediction costs, and when inference overtakes training."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import add_registry_option, print_json, registry_from, table

DEFAULT_RATE = "10/s"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("costs", help="training cost, cost per prediction, break-even and lifetime cost")
    p.add_argument("ref", help="model reference: name, name@3 or name@alias")
    p.add_argument("--rate", help=f"prediction rate, e.g. 50/s, 3000/min, 1e6/day (default: the live serving rate "
                                  f"if the model has served traffic, else {DEFAULT_RATE})")
    p.add_argument("--horizon", default="12mo", help="how long the model serves, e.g. 30d, 12mo, 2y (default 12mo)")
    p.add_argument("--variant", action="append", default=[], metavar="ID",
                   help="only these variants (repeatable; default: all measured)")
    p.add_argument("--batch", type=int, default=1, help="cost per prediction at this measured batch size (1 or 256)")
    p.add_argument("--max-drop", default="0.01", metavar="X",
                   help="quality constraint of the recommendation: a variant more than X worse than the parent on the "
                        "primary metric (0.01 = one point of accuracy; '1%%' also works) is never recommended "
                        "(default 0.01)")
    p.add_argument("--cost-model", metavar="FILE", help="prices and carbon intensity (.json/.toml/.yaml)")
    p.add_argument("--plot", metavar="PNG", help="write the cumulative cost plot here")
    p.add_argument("--json", action="store_true", help="the whole report as JSON")
    add_registry_option(p)
    p.set_defaults(func=run)


def _money(v: float | None) -> str:
    from ..costs._record import format_usd

    return format_usd(v)


def _count(v: float | None) -> str:
    if v is None:
        return "never"
    for unit, div in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if v >= div:
            return f"{v / div:.3g}{unit}"
    return f"{v:.0f}"


def _duration(s: float | None) -> str:
    if s is None:
        return "never"
    for unit, div in (("y", 365.25 * 86400), ("d", 86400), ("h", 3600), ("min", 60)):
        if s >= div:
            return f"{s / div:.3g} {unit}"
    return f"{s:.3g} s"


def _max_drop(text: str) -> float:
    import math

    from ..errors import ConfigError

    raw = str(text).strip()
    try:
        value = float(raw[:-1]) / 100.0 if raw.endswith("%") else float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 <= value <= 1:
        raise ConfigError(f"--max-drop {text!r}: give the largest metric drop to accept, a number in [0, 1] such as "
                          f"0.01 (one point of accuracy) or 1%.")
    return value


def run(args: argparse.Namespace) -> int:
    from ..costs import CostModel, parse_horizon, parse_rate, plot_cumulative_cost
    from ..costs._ledger import live_usage, package_ledger

    max_drop = _max_drop(args.max_drop)
    reg = registry_from(args)
    pkg = reg.load(args.ref)
    cm = CostModel.from_file(args.cost_model) if args.cost_model else CostModel()
    horizon = parse_horizon(args.horizon)
    usage = live_usage(reg, pkg.name, pkg.version)
    if args.rate:
        rate, rate_source = parse_rate(args.rate), "given"
    elif usage and usage.get("rate_per_s"):
        rate, rate_source = float(usage["rate_per_s"]), "live serving traffic"
    else:
        rate, rate_source = parse_rate(DEFAULT_RATE), "default"
    report = package_ledger(pkg, cm, rate_per_s=rate, horizon_s=horizon, batch=args.batch,
                            variants=args.variant or None, usage=usage, max_drop=max_drop)
    report["assumptions"]["rate_source"] = rate_source
    report["cost_model_source"] = args.cost_model or "default"
    if args.plot:
        plot_cumulative_cost(report, args.plot)
    if args.json:
        print_json(report)
        return 0
    _print(pkg, report, usage)
    if args.plot:
        print(f"plot: {args.plot}")
    return 0


def _print(pkg: Any, report: dict[str, Any], usage: dict[str, Any] | None) -> None:
    from ..costs._record import format_ms

    t, a, cm = report["training"], report["assumptions"], report["cost_model"]
    batch = report["batch"]
    print(f"costs of {pkg.ref}")
    src = report.get("cost_model_source", "default")
    print(f"  cost model: ${cm['price_per_kwh']}/kWh, ${cm['price_per_cpu_hour']}/CPU-hour, "
          f"${cm['price_per_gpu_hour']}/GPU-hour, {cm['grams_co2_per_kwh']} gCO2/kWh, PUE {cm['pue']}"
          + (" (default; `fulcrum models` prices with the same)" if src == "default" else
             f" (from {src}; `fulcrum models` and `fulcrum optimize` price with the default, so their $ differ)"))
    flops = f"{t['flops'] / 1e9:.3g} GFLOP" if t.get("flops") else "FLOPs -"
    print(f"  training:   {t['wall_s']:.2f} s wall, {t['cpu_s']:.2f} CPU-s, {t.get('peak_rss_mb') or 0:.0f} MB peak, "
          f"{flops}, {t['energy_kwh']:.3g} kWh, {_money(t['usd'])}, {t['co2_g']:.3g} g CO2")
    print(f"  energy:     {t['energy_method']} — {t['energy_detail']}")
    if usage:
        print(f"  served:     {usage['predictions']:,} predictions, {usage['compute_s']:.2f} compute-s "
              f"(observed {usage.get('rate_per_s') or 0:.3g}/s)")
    print(f"  traffic:    {a['rate_per_s']:.4g} predictions/s ({a['rate_source']}) over {a['horizon_days']:.0f} days "
          f"= {_count(a['predictions_over_horizon'])} predictions; per-prediction cost at batch {batch}")
    sources = {(m["source"], m["measured_at"], m["machine"], m["method"]) for m in report["measurements"].values()}
    for source, at, machine, method in sorted(sources, key=str):
        what = "optimize run" if source == "optimize" else "measured after training"
        print(f"  measured:   {what} {at or ''}{f' on {machine}' if machine else ''}: {method}")
    rows = []
    metric_name = None
    for name, v in report["variants"].items():
        metric = v.get("metric") or {}
        metric_name = metric_name or metric.get("name")
        lat = v.get("latency_ms") or {}
        drop = v.get("metric_drop")
        rows.append((name + (" (excluded)" if v.get("excluded") else ""),
                     "-" if metric.get("value") is None else f"{metric['value']:.4f}",
                     "-" if drop is None else f"{0.0 - drop:+.4f}",
                     format_ms(lat.get("p50")), _money(v["usd_per_million"]),
                     f"{v['kwh_per_million']:.3g}", f"{v['co2_g_per_million']:.3g}",
                     _count(v["break_even_predictions"]), _duration(v["break_even_s"]),
                     _money(v["optimization_usd"]), _money(v["lifetime_usd"])))
    print()
    print(table(["variant", metric_name or "metric", "Δ vs parent", f"p50 ms/call (b{batch})", "$/1M", "kWh/1M",
                 "gCO2/1M", "break-even", "at rate", "build $", f"lifetime $ ({a['horizon_days']:.0f}d)"], rows))
    print()
    if batch != 1:
        print(f"p50 ms/call: one call of {batch} rows; $/1M is per prediction (row)")
    rec = report["recommendation"]
    best, base = report["best"], report["baseline"]
    if rec.get("note"):
        print(f"{rec['note']}.")
    elif best is None:
        print(f"no variant meets the quality constraint {rec['quality_constraint']}; nothing to recommend "
              f"(--max-drop to loosen it)")
    else:
        cheapest = rec.get("cheapest_by_point")
        tied = [v for v in rec.get("within_noise") or [] if v != best]
        who = f"{best} (the parent itself)" if best == base else best
        line = f"recommended: {who}, the cheapest over the horizon among variants within {rec['quality_constraint']}"
        if cheapest and cheapest != best:
            line = (f"recommended: {who}: {cheapest} is cheapest by point value, but {best}'s lifetime cost is within "
                    f"noise of it and {best} is simpler (variants within {rec['quality_constraint']})")
        elif tied:
            line += f"; {', '.join(tied)} within noise of it but not simpler"
        if best != base:
            line += f"; it saves {_money(report['best_saving_usd'])} against {base}, net of what building it cost"
        print(line)
    for vid, why in (rec.get("excluded") or {}).items():
        print(f"excluded {vid}: {why}")
    if str(t["energy_method"]).startswith("estimated"):
        print("note: energy is estimated (no readable power counters on this machine); see the energy line above")
