"""The measurement record of a package: one source for every figure Fulcrum prints about it.

``fulcrum models``, ``fulcrum costs``, ``fulcrum optimize`` and both plots read latency,
cost per 1M predictions, size and metric through :func:`measurement` / :func:`measurements`,
so the same figure is printed the same everywhere, with where it came from::

    from fulcrum.costs import measurement
    m = measurement(pkg, "base", batch=1)          # the parent graph at batch 1
    m.usd_per_million, m.latency_ms["p50"], m.size_bytes, m.describe()

Where a figure comes from (the newest side-by-side measurement wins):

- ``source="optimize"``: the package's ``variants.<id>`` entry written by ``fulcrum optimize``
  (every variant and the parent, id ``base``, timed together in interleaved rounds on one
  machine; its date, machine and method are stored with it);
- ``source="train"``: for the parent only, when it was never optimized: the window measured
  right after training (``costs.inference.base``: the Predictor end to end, request parsing
  and encoding included).

Money is priced at read time from the stored windows (CPU seconds, energy) with the given
cost model (default :class:`CostModel`), so every command that uses the default shows the
same dollars.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import FormatError, NotFoundError
from ._compare import ratio_interval
from ._meter import CostRecord
from ._model import CostModel, money
from ._project import per_prediction_cost

__all__ = ["Measurement", "measurement", "measurements", "format_usd", "format_size", "format_ms"]

TRAIN_METHOD = ("fulcrum.load(...).predict_one end to end (dict in, dict out: request parsing and encoding "
                "included), one window right after training")


def format_usd(v: float | None) -> str:
    """Dollars as every command prints them: 4 significant digits below $1, cents above."""
    if v is None:
        return "-"
    if v == 0:
        return "$0"
    return f"${v:.4g}" if abs(v) < 1 else f"${v:,.2f}"


def format_size(n: float | None) -> str:
    """Bytes in SI units (1 kB = 1000 bytes), as the tables and the plots print them."""
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if abs(size) < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000.0
    return f"{size:.1f} GB"  # pragma: no cover


def format_ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


@dataclass(frozen=True)
class Measurement:
    """What one graph of a package (the parent ``base`` or a variant) measured, and how."""

    variant: str
    kind: str
    batch: int
    source: str  # "optimize" | "train"
    method: str
    measured_at: str | None
    machine: str | None
    latency_ms: dict[str, float] | None  # p50/p95/p99 of one call of `batch` rows
    latency_ci_ms: dict[str, list[float]] | None
    throughput_rps: float | None
    size_bytes: int | None
    metric_name: str | None
    metric_value: float | None
    metric_drop: float | None
    per_prediction: dict[str, Any] | None  # per_prediction_cost(...) priced with the cost model
    usd_ci: tuple[float, float] | None = None  # per prediction, over rounds
    entry: dict[str, Any] = field(default_factory=dict, repr=False)  # the stored entry it was read from

    @property
    def usd_per_million(self) -> float | None:
        return None if self.per_prediction is None else float(self.per_prediction["usd"]) * 1e6

    @property
    def usd_per_million_ci(self) -> tuple[float, float] | None:
        return None if self.usd_ci is None else (self.usd_ci[0] * 1e6, self.usd_ci[1] * 1e6)

    def describe(self) -> str:
        """One line: which run, when, where, how."""
        what = "optimize run" if self.source == "optimize" else "measured after training"
        when = f" {self.measured_at}" if self.measured_at else ""
        where = f" on {self.machine}" if self.machine else ""
        return f"{what}{when}{where}: {self.method}"

    def to_dict(self) -> dict[str, Any]:
        return {"variant": self.variant, "kind": self.kind, "batch": self.batch, "source": self.source,
                "method": self.method, "measured_at": self.measured_at, "machine": self.machine,
                "latency_ms": self.latency_ms, "latency_ci_ms": self.latency_ci_ms,
                "throughput_rps": self.throughput_rps, "size_bytes": self.size_bytes,
                "metric": {"name": self.metric_name, "value": self.metric_value}, "metric_drop": self.metric_drop,
                "usd_per_million": self.usd_per_million,
                "usd_per_million_ci": None if self.usd_ci is None else list(self.usd_per_million_ci or ()),
                "per_prediction": self.per_prediction}


def _machine_line(machine: Any) -> str | None:
    if not isinstance(machine, Mapping):
        return None if machine is None else str(machine)
    parts = [str(machine.get("processor") or ""), f"{machine['logical_cpus']} CPUs" if machine.get("logical_cpus") else "",
             f"onnxruntime {machine['onnxruntime']}" if machine.get("onnxruntime") else "",
             str(machine.get("platform") or "")]
    return ", ".join(p for p in parts if p) or None


def _flops_per_row(pkg: Any, spec: Mapping[str, Any] | None) -> int | None:
    from ._inference import flops_per_prediction

    manifest = pkg.manifest
    if spec:
        manifest = {**manifest, "model": {**(manifest.get("model") or {}), **spec}}
    try:
        flops, _ = flops_per_prediction(manifest)
    except Exception:  # noqa: BLE001 - a model description this build cannot count: FLOPs unknown
        return None
    return flops


def _priced(pkg: Any, win: Mapping[str, Any], spec: Mapping[str, Any] | None,
            cm: CostModel) -> tuple[dict[str, Any], tuple[float, float] | None]:
    """(per-prediction cost of a stored window, its interval over rounds when rounds were kept)."""
    rec = CostRecord.from_dict(dict(win["window"]))
    n = int(win["n_predictions"])
    if rec.flops is None:
        flops = _flops_per_row(pkg, spec)
        if flops is not None:
            rec.flops = flops * n
    pp = per_prediction_cost(rec, n, cm)
    rounds = win.get("rounds") or []
    ci = None
    if len(rounds) >= 2:
        usd = [money(CostRecord(float(r["wall_s"]), float(r["cpu_s"]), float(r["energy_kwh"]), rec.energy_method,
                                rec.energy_detail), cm)["total_usd"] for r in rounds]
        iv = ratio_interval(usd, [int(r["n"]) for r in rounds])
        ci = (min(iv.lo, pp["usd"]), max(iv.hi, pp["usd"]))
    return pp, ci


def _from_variant(pkg: Any, vid: str, e: Mapping[str, Any], batch: int, cm: CostModel) -> Measurement | None:
    lat_key = f"b{batch}"
    lat = (e.get("latency_ms") or {}).get(lat_key)
    win = (e.get("costs") or {}).get(f"batch_{batch}")
    if lat is None and win is None:
        return None
    pp, ci = _priced(pkg, win, e.get("model"), cm) if win else (None, None)
    optimize = pkg.manifest.get("optimize") or {}
    timing = e.get("timing") or {}
    method = timing.get("method") or optimize.get("method") or \
        "ONNX Runtime session.run on pre-encoded inputs (the graph only), round-robin rounds (older record: no intervals)"
    metric = e.get("metric") or {}
    return Measurement(
        variant=vid, kind=str(e.get("kind") or vid), batch=batch, source="optimize", method=str(method),
        measured_at=e.get("measured_at") or optimize.get("measured_at"),
        machine=_machine_line(e.get("machine") or optimize.get("machine")),
        latency_ms=dict(lat) if lat else None,
        latency_ci_ms=dict((e.get("latency_ci_ms") or {}).get(lat_key) or {}) or None,
        throughput_rps=e.get("throughput_rps"), size_bytes=e.get("size_bytes"),
        metric_name=metric.get("name"), metric_value=metric.get("value"), metric_drop=e.get("metric_drop"),
        per_prediction=pp, usd_ci=ci, entry=dict(e),
    )


def _from_training(pkg: Any, batch: int, cm: CostModel) -> Measurement | None:
    m = pkg.manifest
    inference = (m.get("costs") or {}).get("inference") or {}
    win = (inference.get("base") or {}).get(f"batch_{batch}")
    if not win:
        return None
    pp, ci = _priced(pkg, win, None, cm)
    primary = (m.get("metrics") or {}).get("primary") or {}
    lat = {q: float(win[f"{q}_ms"]) for q in ("p50", "p95", "p99") if win.get(f"{q}_ms") is not None}
    files = m.get("files") or {}
    graph = (m.get("onnx") or {}).get("file", "model.onnx")
    size = (files.get(graph) or {}).get("bytes")
    return Measurement(
        variant="base", kind="base", batch=batch, source="train", method=str(win.get("method") or TRAIN_METHOD),
        measured_at=win.get("measured_at") or m.get("created"), machine=_machine_line(win.get("machine")),
        latency_ms=lat or None, latency_ci_ms=None, throughput_rps=win.get("throughput_rps"), size_bytes=size,
        metric_name=primary.get("name"), metric_value=primary.get("value"), metric_drop=0.0,
        per_prediction=pp, usd_ci=ci, entry=dict(win),
    )


def measurements(pkg: Any, *, batch: int = 1, cost_model: CostModel | None = None) -> dict[str, Measurement]:
    """Every graph of ``pkg`` measured at ``batch``: the parent (``base``) first, then its variants from
    the simplest to the most transformed (:data:`fulcrum.costs._compare.SIMPLICITY`)."""
    cm = cost_model or CostModel()
    out: dict[str, Measurement] = {}
    variants = pkg.manifest.get("variants") or {}
    base = variants.get("base")
    rec = _from_variant(pkg, "base", base, batch, cm) if isinstance(base, Mapping) else None
    if rec is None:  # never optimized: the window measured after training
        rec = _from_training(pkg, batch, cm)
    if rec is not None:
        out["base"] = rec
    from ._compare import simplicity_key

    others = [(vid, e) for vid, e in variants.items() if vid != "base" and isinstance(e, Mapping)]
    for vid, e in sorted(others, key=lambda item: simplicity_key(item[0], item[1])):  # one order in every table
        r = _from_variant(pkg, vid, e, batch, cm)
        if r is not None:
            out[vid] = r
    return out


def measurement(pkg: Any, variant: str = "base", *, batch: int = 1, cost_model: CostModel | None = None) -> Measurement:
    """The measurement record of one graph of ``pkg`` at ``batch`` (see the module docstring)."""
    records = measurements(pkg, batch=batch, cost_model=cost_model)
    if variant in records:
        return records[variant]
    known = sorted(pkg.manifest.get("variants") or {})
    if variant != "base" and variant not in known:
        raise NotFoundError(f"Model {pkg.ref} has no variant {variant!r}; its variants: {', '.join(known) or '(none)'}; "
                            f"build some with `fulcrum optimize {pkg.ref}`.")
    raise FormatError(f"Model {pkg.ref} has no measurement of {variant!r} at batch {batch}; measured batch sizes come "
                      f"from training (1 and 256) and `fulcrum optimize {pkg.ref}` (--remeasure to measure again).")
