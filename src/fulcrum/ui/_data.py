"""What the dashboard shows, as plain JSON types: one function per endpoint.

Every figure comes from where the commands read it: the registry index (names, versions,
aliases, task, metric, size), the package's measurement record (``fulcrum.costs.measurement``:
latency, $/1M, size, metric), the cost ledger (``fulcrum.costs._ledger.package_ledger``), the
promotion comparison (``fulcrum.artifact.compare_versions``) and the serving records (monitor
snapshots, usage, feedback). Nothing here computes a figure of its own.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
from contextlib import closing
from typing import Any, Mapping

from ..errors import ConfigError, FulcrumError, NotFoundError

__all__ = ["models_list", "version_detail", "variants_detail", "costs_detail", "compare_detail", "monitor_history",
           "SORT_KEYS"]

SORT_KEYS = ("name", "version", "created", "task", "metric_value", "size_bytes", "training_usd", "usd_per_million")


def clean(obj: Any) -> Any:
    """JSON-safe copy: non-finite floats become None (JSON has no NaN), tuples become lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    try:  # numpy scalars and the like
        return clean(obj.item())
    except AttributeError:
        return str(obj)


class _IndexedPackage:
    """Enough of a ModelPackage for the measurement record: the manifest the index holds."""

    def __init__(self, name: str, version: int, manifest: dict[str, Any]) -> None:
        self.name, self.version, self.manifest = name, version, manifest
        self.ref = f"{name}@{version}"


def _cost_columns(pkg: Any) -> dict[str, Any]:
    """Training cost and $/1M predictions (the parent graph at batch 1, default cost model): the
    figures `fulcrum models` prints, read the same way."""
    from ..costs import CostModel, measurement, money
    from ..costs._ledger import _training_record

    out: dict[str, Any] = {"training_usd": None, "usd_per_million": None}
    try:
        out["training_usd"] = money(_training_record(pkg), CostModel())["total_usd"]
    except (FulcrumError, KeyError, TypeError, ValueError):
        pass
    try:
        out["usd_per_million"] = measurement(pkg, "base", batch=1).usd_per_million
    except (FulcrumError, KeyError, TypeError, ValueError):
        pass
    return out


# --------------------------------------------------------------------------- models list


class _ListCache:
    """The models list of one registry, rebuilt only when the index changed.

    Why: the cost columns need each version's manifest (JSON-decoded and priced), which is most
    of the time of a list of 1,000 versions (benchmarks/bench_ui.py); a version never changes
    once written except through ``update_index``, which rewrites the index. The key is the index
    file and its write-ahead log (size and modification time): every commit changes one of them.
    Per row, the priced columns are kept by (name, version, manifest text), so one new version
    costs one manifest, not a thousand."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._building = threading.Lock()  # one build at a time: a reader arriving mid-build waits for it
        self._stamp: dict[str, tuple[Any, ...]] = {}
        self._rows: dict[str, list[dict[str, Any]]] = {}
        self._priced: dict[str, dict[tuple[str, int], tuple[int, dict[str, Any]]]] = {}

    @staticmethod
    def stamp(index_path: str) -> tuple[Any, ...]:
        parts: list[Any] = []
        for p in (index_path, index_path + "-wal"):
            try:
                st = os.stat(p)
                parts += [st.st_size, st.st_mtime_ns]
            except OSError:
                parts += [None, None]
        return tuple(parts)

    def rows(self, registry: Any) -> list[dict[str, Any]]:
        key = str(registry.index_path)
        stamp = self.stamp(key)
        with self._lock:
            if self._stamp.get(key) == stamp and key in self._rows:
                return self._rows[key]
        with self._building:
            stamp = self.stamp(key)
            with self._lock:
                if self._stamp.get(key) == stamp and key in self._rows:
                    return self._rows[key]  # built while this reader waited
            rows = self._build(registry, key)
            with self._lock:
                self._stamp[key], self._rows[key] = stamp, rows
        return rows

    def _build(self, registry: Any, key: str) -> list[dict[str, Any]]:
        with closing(registry.connect()) as conn:
            alias_rows = conn.execute("SELECT name, version, alias FROM aliases ORDER BY alias").fetchall()
            rows = conn.execute(
                "SELECT name, version, task, metric_name, metric_value, size_bytes, created, manifest_json"
                " FROM versions ORDER BY name, version").fetchall()
        aliases: dict[tuple[str, int], list[str]] = {}
        for n, v, a in alias_rows:
            aliases.setdefault((n, int(v)), []).append(a)
        with self._lock:
            old = self._priced.get(key, {})
        priced: dict[tuple[str, int], tuple[int, dict[str, Any]]] = {}
        out = []
        for n, v, task, metric_name, metric_value, size, created, manifest_json in rows:
            v = int(v)
            digest = hash(manifest_json or "")
            hit = old.get((n, v))
            if hit is not None and hit[0] == digest:
                extra = hit[1]
            else:
                try:
                    manifest = json.loads(manifest_json) if manifest_json else {}
                except ValueError:
                    manifest = {}
                extra = _row_extra(_IndexedPackage(n, v, manifest))
            priced[(n, v)] = (digest, extra)
            out.append(clean({"name": n, "version": v, "ref": f"{n}@{v}", "aliases": aliases.get((n, v), []),
                              "task": task, "metric_name": metric_name, "metric_value": metric_value,
                              "size_bytes": size, "created": created, **extra}))
        with self._lock:
            self._priced[key] = priced
        return out


def _row_extra(pkg: _IndexedPackage) -> dict[str, Any]:
    m = pkg.manifest
    lineage = m.get("lineage") if isinstance(m.get("lineage"), dict) else {}
    task = m.get("task") if isinstance(m.get("task"), dict) else {}
    return {**_cost_columns(pkg), "workload": task.get("workload"),
            "family": (m.get("model") or {}).get("family") if isinstance(m.get("model"), dict) else None,
            "parent": lineage.get("parent"), "variant": lineage.get("variant")}


_CACHE = _ListCache()


def models_list(registry: Any, q: str | None = None, sort: str = "name", order: str = "asc",
                limit: int | None = None, offset: int = 0) -> dict[str, Any]:
    """Every version in the registry with its aliases, task, primary metric, size, training cost and
    $/1M predictions; ``q`` filters (case-insensitive substring of name, task, family, aliases or
    metric name), ``sort``/``order`` orders (missing values last)."""
    if sort not in SORT_KEYS:
        raise ConfigError(f"Unknown sort key {sort!r}; sort by one of {', '.join(SORT_KEYS)}.")
    if order not in ("asc", "desc"):
        raise ConfigError(f"Unknown order {order!r}; use asc or desc.")
    if limit is not None and limit < 1:
        raise ConfigError(f"limit must be a positive number of rows, got {limit}.")
    if offset < 0:
        raise ConfigError(f"offset must be 0 or more rows, got {offset}.")
    rows = _CACHE.rows(registry)
    total = len(rows)
    if q:
        needle = q.lower()
        rows = [r for r in rows if needle in " ".join(str(x) for x in (
            r["name"], r["ref"], r["task"], r.get("family"), r.get("workload"), r["metric_name"], *r["aliases"])).lower()]
    present = [r for r in rows if r.get(sort) is not None]
    missing = [r for r in rows if r.get(sort) is None]
    present.sort(key=lambda r: (r[sort], r["name"], r["version"]) if sort not in ("name", "version")
                 else (r["name"], r["version"]) if sort == "name" else (r["version"], r["name"]),
                 reverse=order == "desc")
    rows = present + missing
    matched = len(rows)
    rows = rows[offset:offset + limit] if limit is not None else rows[offset:]
    return {"registry": str(registry.root), "total": total, "matched": matched, "sort": sort, "order": order,
            "q": q or "", "offset": offset, "models": rows,  # rows are JSON-clean already (cached that way)
            "cost_note": "$/1M: the version's own graph at batch 1, default cost model, from its latest "
                         "measurement (the figure `fulcrum models` prints)"}


# --------------------------------------------------------------------------- one version


def _read_json(pkg: Any, relpath: str) -> Any:
    if not pkg.has_file(relpath):
        return None
    try:
        return pkg.read_json(relpath)
    except (FulcrumError, ValueError):
        return None


def _children(registry: Any, ref: str) -> list[dict[str, Any]]:
    """Versions whose lineage names ``ref`` as parent (retrains and materialized variants)."""
    out = []
    for r in _CACHE.rows(registry):
        if r.get("parent") == ref:
            out.append({"ref": r["ref"], "variant": r.get("variant"), "aliases": r["aliases"]})
    return out


def _readable_manifest(m: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The manifest as titled sections of (key, value) lines; long or nested values stay JSON text."""
    sections = []
    for key in sorted(m):
        value = m[key]
        if isinstance(value, Mapping):
            items = [{"key": str(k), "value": _short(v)} for k, v in value.items()]
        else:
            items = [{"key": key, "value": _short(value)}]
        sections.append({"section": key, "items": items})
    return sections


def _short(v: Any) -> str:
    if isinstance(v, str):
        return v
    text = json.dumps(clean(v), sort_keys=True, default=str)
    return text if len(text) <= 400 else text[:400] + " …"


def version_detail(registry: Any, ref: str) -> dict[str, Any]:
    pkg = registry.load(ref, verify=False)
    m = pkg.manifest
    metrics = m.get("metrics") or {}
    test = metrics.get("test") or {}
    task = m.get("task") or {}
    selection = m.get("selection") or {}
    history = _read_json(pkg, "history.json")
    profile = _read_json(pkg, "profile.json")
    profile_cols = []
    for col, p in ((profile or {}).get("columns") or {}).items():
        if not isinstance(p, Mapping):
            continue
        profile_cols.append({"column": col, "kind": p.get("kind"), "count": p.get("count"), "missing": p.get("missing"),
                             "mean": p.get("mean"), "std": p.get("std"), "min": p.get("min"), "max": p.get("max"),
                             "top": _top_categories(p)})
    lineage = dict(m.get("lineage") or {})
    aliases = {a: v for a, v in registry.aliases(pkg.name).items()}
    confusion = test.get("confusion_matrix")
    return clean({
        "ref": pkg.ref, "name": pkg.name, "version": pkg.version, "created": m.get("created"),
        "aliases": sorted(a for a, v in aliases.items() if v == pkg.version),
        "task": task, "family": (m.get("model") or {}).get("family"),
        "primary": metrics.get("primary"), "metrics": {"test": {k: v for k, v in test.items() if k != "confusion_matrix"},
                                                      "validation": {k: v for k, v in (metrics.get("validation") or {}).items()
                                                                     if k != "confusion_matrix"}},
        "size_bytes": pkg.size_bytes, **_cost_columns(pkg),
        "inputs": m.get("inputs") or (m.get("schema") or {}).get("columns"),
        "manifest": _readable_manifest({k: v for k, v in m.items() if k != "files"}),
        "files": [{"path": k, "bytes": (v or {}).get("bytes")} for k, v in sorted((m.get("files") or {}).items())],
        "profile": profile_cols,
        "history": history if isinstance(history, list) else [],
        "leaderboard": selection.get("leaderboard") or [],
        "selection": {k: selection.get(k) for k in ("chosen", "metric", "method", "why", "preset")},
        "confusion_matrix": {"labels": [str(x) for x in task.get("labels") or []], "matrix": confusion,
                             "split": "test"} if isinstance(confusion, list) else None,
        "residuals": None,
        "residuals_note": None if isinstance(confusion, list) else
        "residuals are not stored in the package (its held-out outputs are, without the truth); regression metrics above",
        "lineage": {**lineage, "retrain_source": lineage.get("data_source") if lineage.get("feedback_rows") is not None
                    else None, "children": _children(registry, pkg.ref)},
    })


def _top_categories(p: Mapping[str, Any]) -> list[list[Any]] | None:
    for key in ("categories", "frequencies", "top"):
        cats = p.get(key)
        if isinstance(cats, Mapping):
            items = sorted(cats.items(), key=lambda kv: -kv[1] if isinstance(kv[1], (int, float)) else 0)[:5]
            return [[str(k), v] for k, v in items]
    return None


# --------------------------------------------------------------------------- variants


def variants_detail(registry: Any, ref: str, batch: int = 1) -> dict[str, Any]:
    """The measured graphs of ``ref`` (parent ``base`` and its variants) with intervals, for the
    Pareto chart (metric vs p50 latency, size as marker), and where each alias of the model points."""
    from ..costs import measurements

    if batch < 1:
        raise ConfigError(f"batch must be a positive measured batch size (1 or 256), got {batch}.")
    pkg = registry.load(ref, verify=False)
    recs = measurements(pkg, batch=batch)
    rows = []
    for vid, meas in recs.items():
        d = meas.to_dict()
        d["id"] = vid
        d["pareto"] = False
        rows.append(d)
    greater = _greater(pkg.manifest)
    _mark_pareto(rows, greater=bool(greater))
    # where each alias of this model points: a version of it, and when that version is a
    # materialized variant of this one, which variant
    by_ref = {r["ref"]: r for r in _CACHE.rows(registry) if r["name"] == pkg.name}
    aliases = []
    for alias, version in sorted(registry.aliases(pkg.name).items()):
        target = by_ref.get(f"{pkg.name}@{version}") or {}
        variant = target.get("variant") if target.get("parent") == pkg.ref else None
        if version == pkg.version:
            variant = "base"
        aliases.append({"alias": alias, "version": version, "ref": f"{pkg.name}@{version}", "variant": variant,
                        "parent": target.get("parent")})
    return clean({"ref": pkg.ref, "batch": batch, "metric": (pkg.manifest.get("metrics") or {}).get("primary"),
                  "greater_is_better": bool(greater), "variants": rows, "aliases": aliases,
                  "selected_variant": pkg.manifest.get("selected_variant")})


def _greater(manifest: dict[str, Any]) -> bool:
    """Whether a higher primary metric is better (a forecast's MASE or a transcription's WER is lower-is-better)."""
    from ..tasks import greater_is_better

    name = ((manifest.get("metrics") or {}).get("primary") or {}).get("name")
    try:
        return greater_is_better(name) if name else bool((manifest.get("selection") or {}).get("greater", True))
    except ConfigError:  # a metric this Fulcrum does not know: the package's own word, if it has one
        return bool((manifest.get("selection") or {}).get("greater", True))


def _mark_pareto(rows: list[dict[str, Any]], *, greater: bool) -> None:
    """A row is on the front when no other row is at least as good on metric, p50 latency and size
    and better on one."""
    def key(r: dict[str, Any]) -> tuple[float, float, float] | None:
        metric = (r.get("metric") or {}).get("value")
        lat = (r.get("latency_ms") or {}).get("p50")
        if metric is None or lat is None:
            return None
        return (-metric if greater else metric, lat, r.get("size_bytes") or 0)

    keys = [key(r) for r in rows]
    for i, ki in enumerate(keys):
        if ki is None:
            continue
        rows[i]["pareto"] = not any(kj is not None and j != i and all(a <= b for a, b in zip(kj, ki)) and kj != ki
                                    for j, kj in enumerate(keys))


# --------------------------------------------------------------------------- costs


def costs_detail(registry: Any, ref: str, rate: str | None = None, horizon: str = "12mo",
                 points: int = 60) -> dict[str, Any]:
    """``fulcrum costs REF`` as JSON (the same ledger) plus the cumulative-cost curves of each variant
    from 1 s to the horizon on a log-spaced grid, break-even points and training vs inference energy."""
    from ..costs import CostModel, parse_horizon, parse_rate
    from ..costs._ledger import live_usage, package_ledger

    pkg = registry.load(ref, verify=False)
    horizon_s = parse_horizon(horizon)
    usage = live_usage(registry, pkg.name, pkg.version)
    if rate:
        rate_s, rate_source = parse_rate(rate), "given"
    elif usage and usage.get("rate_per_s"):
        rate_s, rate_source = float(usage["rate_per_s"]), "live serving traffic"
    else:
        rate, rate_source = "10/s", "default"
        rate_s = parse_rate(rate)
    report = package_ledger(pkg, CostModel(), rate_per_s=rate_s, horizon_s=horizon_s, usage=usage)
    report["assumptions"]["rate_source"] = rate_source
    train_usd = float(report["training"]["usd"])
    lo = min(1.0, horizon_s)
    grid = [lo * (horizon_s / lo) ** (i / (points - 1)) for i in range(points)] if horizon_s > lo else [horizon_s]
    curves = {}
    for vid, v in report["variants"].items():
        per = float(v["per_prediction"]["usd"])
        fixed = train_usd + float(v.get("optimization_usd") or 0.0)
        curves[vid] = {"t_s": grid, "usd": [fixed + per * rate_s * t for t in grid],
                       "break_even_s": v.get("break_even_s"), "excluded": v.get("excluded")}
    base = report["variants"].get(report.get("baseline") or "base") or next(iter(report["variants"].values()))
    n = float(report["assumptions"]["predictions_over_horizon"])
    energy = {
        "training": {"kwh": report["training"]["energy_kwh"], "co2_g": report["training"]["co2_g"],
                     "usd": train_usd, "method": report["training"]["energy_method"]},
        "inference": {"kwh": base["kwh_per_million"] * n / 1e6, "co2_g": base["co2_g_per_million"] * n / 1e6,
                      "usd": base["usd_per_million"] * n / 1e6, "variant": report.get("baseline"),
                      "predictions": n},
    }
    return clean({"ref": pkg.ref, "report": report, "curves": curves, "energy": energy,
                  "rate": rate or f"{rate_s:g}/s", "horizon": horizon})


# --------------------------------------------------------------------------- compare


_COMPARE_KEYS = ("task", "family", "primary", "size_bytes", "training_usd", "usd_per_million", "created", "aliases")


def compare_detail(registry: Any, a: str, b: str, *, score: bool = True) -> dict[str, Any]:
    """Two versions side by side, and (``score``) the promotion comparison: both scored on the held-out
    rows of ``a`` with an interval on the difference (``fulcrum.artifact.compare_versions``)."""
    from ..artifact import compare_versions

    left, right = version_detail(registry, a), version_detail(registry, b)
    metrics = sorted(set(left["metrics"]["test"]) | set(right["metrics"]["test"]))
    rows = [{"field": k, "a": left.get(k), "b": right.get(k)} for k in _COMPARE_KEYS]
    rows += [{"field": f"test {k}", "a": left["metrics"]["test"].get(k), "b": right["metrics"]["test"].get(k)}
             for k in metrics if k not in ("n", "rows")]
    cfg_a = _config_of(registry, a)
    cfg_b = _config_of(registry, b)
    config = [{"field": k, "a": cfg_a.get(k), "b": cfg_b.get(k)} for k in sorted(set(cfg_a) | set(cfg_b))
              if cfg_a.get(k) != cfg_b.get(k)]
    verdict = None
    if score:
        try:
            verdict = compare_versions(registry, left["ref"], right["ref"])
        except FulcrumError as exc:
            verdict = {"comparable": False, "reason": str(exc)}
    return clean({"a": left["ref"], "b": right["ref"], "rows": rows, "config_diff": config,
                  "history": {"a": left["history"], "b": right["history"]}, "comparison": verdict})


def _config_of(registry: Any, ref: str) -> dict[str, Any]:
    cfg = registry.load(ref, verify=False).manifest.get("config") or {}
    return {k: v for k, v in cfg.items() if not isinstance(v, (dict, list))} if isinstance(cfg, Mapping) else {}


# --------------------------------------------------------------------------- serving records


def monitor_history(records_db: Any, name: str, version: int | None, limit: int = 200) -> list[dict[str, Any]]:
    """The monitor snapshots the server saved (oldest first): time, OOD rate, PSI per column."""
    if records_db is None or not os.path.isfile(str(records_db)):
        return []
    try:
        with closing(sqlite3.connect(f"file:{records_db}?mode=ro", uri=True, timeout=10)) as conn:
            if version is None:
                cur = conn.execute("SELECT snapshot_json FROM monitor_snapshots WHERE model = ? ORDER BY id DESC LIMIT ?",
                                   (name, int(limit)))
            else:
                cur = conn.execute("SELECT snapshot_json FROM monitor_snapshots WHERE model = ? AND version = ? "
                                   "ORDER BY id DESC LIMIT ?", (name, int(version), int(limit)))
            raw = [r[0] for r in cur.fetchall()]
    except sqlite3.Error:
        return []
    out = []
    for text in reversed(raw):
        try:
            out.append(snapshot_point(json.loads(text)))
        except (ValueError, TypeError, KeyError):
            continue
    return out


def snapshot_point(snap: Mapping[str, Any]) -> dict[str, Any]:
    drift = snap.get("drift") or {}
    return {"created": snap.get("created"), "status": snap.get("status"),
            "rows": (snap.get("window") or {}).get("rows"), "ood_rate": (snap.get("ood") or {}).get("rate"),
            "psi": {str(col): d.get("psi") for col, d in drift.items() if isinstance(d, Mapping)},
            "drifted": list(snap.get("drifted_columns") or [])}


def not_found(what: str) -> NotFoundError:
    return NotFoundError(what)
