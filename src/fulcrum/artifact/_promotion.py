"""One promotion policy for every alias move: ``fulcrum promote``, ``fulcrum optimize --alias``,
``fulcrum retrain --alias`` and Python (DESIGN §8, "decisions follow quality, not noise").

::

    >>> from fulcrum.artifact import Registry, promote
    >>> promote(Registry(), "iris@3", "production")
    iris@production -> version 3 (was version 2): accuracy 0.9667 -> 0.9667 (+0.0000, 95% CI +0.0000 to +0.0000)
    on the 30 held-out test rows of iris@2 (both versions held them out); within noise

How a move is judged:

- **Same rows.** Both versions are scored on the held-out test split of the alias's current
  target, re-drawn exactly as at training time from its recorded data source (same seed and
  split sizes; the data fingerprint must match, else ``data=`` can name the original table).
  Versions trained from the same data and split held those rows out too; a version trained on
  other data is scored there as well, with a note that it may have seen some of them (a bias in
  its favour, never against it). A version refit on every row (``fulcrum train --refit-full``) has
  seen its own test split; on exactly those rows it is scored by the outputs its model gave before
  that refit (stored in its package), and the report says so.
- **Same metric.** The task's primary metric from the manifest (accuracy, R², ...).
- **Noise.** A paired bootstrap over those rows (both versions on the same resampled rows,
  2,000 rounds, fixed seed): a 95% interval of the change.
- **Decision.** The move is refused, unless forced, when the new version is worse by more than
  ``max_drop`` (default 0.01, in the metric's units) *and* the interval of the change lies wholly
  on the worse side of zero (worse beyond noise). It is also refused when the two versions
  cannot be compared on the same rows, or when the class labels change (the served outputs
  would change shape). Every move, refused, forced or not, is reported as one line
  ``NAME@ALIAS -> version NEW (was version OLD): METRIC old -> new (change, interval) on ROWS``.

:meth:`Registry.set_alias` stays the raw primitive; everything that decides goes through
:func:`promote`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from ..errors import ConstraintError, DataError, FulcrumError, RegistryError
from ._names import format_ref, validate_alias
from ..tasks._metrics import greater_is_better

if TYPE_CHECKING:  # numpy and pandas are imported where used: `fulcrum.artifact` stays quick to import
    import numpy as np
    import pandas as pd

__all__ = ["promote", "compare_versions", "compare_on_rows", "held_out_rows", "DEFAULT_MAX_DROP"]

DEFAULT_MAX_DROP = 0.01
CONFIDENCE = 0.95
BOOTSTRAP_ROUNDS = 2000
BOOTSTRAP_SEED = 0
_CHUNK_CELLS = 4_000_000  # resampled row indices held in memory at once


def _label(v: Any) -> str:
    """Class labels compare as the feedback store spells them: 3, 3.0 and "3" are one label."""
    import numpy as np
    
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    if isinstance(v, np.generic):
        v = v.item()
    return str(v).strip()


def _num(v: Any) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"


# ----------------------------------------------------------------------------- rows


def _split_key(m: dict[str, Any]) -> tuple[Any, ...]:
    cfg, data, task = m.get("config") or {}, m.get("data") or {}, m.get("task") or {}
    return (data.get("fingerprint"), task.get("target"), cfg.get("test_size", 0.2), cfg.get("val_size", 0.2),
            cfg.get("seed", 0))


def held_out_rows(pkg: Any, data: Any = None) -> pd.DataFrame:
    """The held-out test split of ``pkg``, re-drawn from its data source (or ``data``) exactly as at
    training time. Raises DataError saying why when that cannot be done."""
    import pandas as pd
    
    from ..data import check_target, fingerprint, read_table, train_val_test_split

    m = pkg.manifest
    task, recorded, cfg = m.get("task") or {}, m.get("data") or {}, m.get("config") or {}
    target, kind = task.get("target"), task.get("kind")
    source = data if data is not None else recorded.get("source")
    if source is None or (isinstance(source, str) and source == "dataframe"):
        raise DataError(f"{pkg.ref} was trained from an in-memory DataFrame, so its held-out test rows cannot be "
                        "read again")
    where = "the DataFrame passed in" if isinstance(source, pd.DataFrame) else repr(str(source))
    try:
        df = read_table(source)
    except DataError as exc:
        raise DataError(f"the training data of {pkg.ref} cannot be read from {where} ({exc})") from exc
    if target not in df.columns:
        raise DataError(f"the data {where} has no target column {target!r} of {pkg.ref}")
    legacy = cfg.get("task") if cfg.get("task") in ("classification", "regression") else None  # before "kind"
    df, _ = check_target(df, target, cfg.get("kind") or legacy or "auto")
    if recorded.get("fingerprint") and fingerprint(df) != recorded["fingerprint"]:
        raise DataError(f"the data {where} differs from the data {pkg.ref} was trained on (fingerprint mismatch), so "
                        "its held-out test split cannot be re-drawn")
    _, _, test = train_val_test_split(df, target, task=kind or "auto", test_size=float(cfg.get("test_size", 0.2)),
                                      val_size=float(cfg.get("val_size", 0.2)), seed=int(cfg.get("seed", 0)))
    return test


# ----------------------------------------------------------------------------- per-row scores


@dataclass
class _Scored:
    """One version's outputs on the shared rows, in the form the metrics need."""

    kind: str
    correct: np.ndarray | None = None  # (n,) bool
    nll: np.ndarray | None = None  # (n,) -log p(truth)
    truth: np.ndarray | None = None  # (n,) int codes in a label space shared by both versions
    pred: np.ndarray | None = None  # (n,) int codes
    y: np.ndarray | None = None  # (n,) regression truth
    err: np.ndarray | None = None  # (n,) prediction - truth


def pre_refit_outputs(predictor: Any, rows: pd.DataFrame) -> np.ndarray | None:
    """A version refit on every row (refit_full) has seen its own test split. On exactly those rows (same
    values, same order) the outputs its model gave *before* the refit, stored in its package, stand in for
    it, so a comparison on them stays fair; on any other rows: None (score the version itself)."""
    import numpy as np

    package = getattr(predictor, "package", None)
    if getattr(predictor, "variant", None):  # an optimized variant is another model than the one refit
        return None
    m = getattr(package, "manifest", None) or {}
    rec = ((m.get("selection") or {}).get("refit_full") or {}).get("pre_refit_outputs")
    if not rec or rec.get("rows") != len(rows):
        return None
    from ..data import fingerprint

    if fingerprint(rows.reset_index(drop=True)) != rec.get("rows_fingerprint"):
        return None
    from safetensors.numpy import load

    return np.asarray(load(package.read_bytes(rec["file"]))["outputs"])


def _score(predictor: Any, rows: pd.DataFrame, target: str, space: dict[str, int]) -> _Scored:
    import numpy as np
    import pandas as pd
    
    X = rows.drop(columns=[target])
    honest = pre_refit_outputs(predictor, rows)
    out = np.asarray(predictor.predict_output(X) if honest is None else honest)
    if predictor.kind == "classification":
        labels = [_label(lab) for lab in predictor.labels]
        for lab in labels:
            space.setdefault(lab, len(space))
        truth = [_label(v) for v in rows[target]]
        for lab in truth:
            space.setdefault(lab, len(space))
        col = {lab: j for j, lab in enumerate(labels)}
        out = out.reshape(len(rows), -1)
        guess = np.asarray(labels, dtype=object)[out.argmax(axis=1)]
        truth_arr = np.asarray(truth, dtype=object)
        p_true = np.asarray([out[i, col[t]] if t in col else 0.0 for i, t in enumerate(truth)], dtype=np.float64)
        return _Scored(
            "classification",
            correct=guess == truth_arr,
            nll=-np.log(np.clip(p_true, 1e-15, 1.0)),
            truth=np.asarray([space[t] for t in truth], dtype=np.int64),
            pred=np.asarray([space[g] for g in guess], dtype=np.int64),
        )
    y = pd.to_numeric(rows[target], errors="coerce").to_numpy(dtype=np.float64)
    return _Scored("regression", y=y, err=out.reshape(-1).astype(np.float64) - y)


def _per_class(sc: _Scored, idx: np.ndarray, metric: str, classes: np.ndarray, positive: int | None) -> np.ndarray:
    import numpy as np
    
    assert sc.truth is not None and sc.pred is not None
    t, p = sc.truth[idx], sc.pred[idx]
    scores = []
    for c in classes:
        is_t, is_p = t == c, p == c
        tp = (is_t & is_p).sum(axis=1).astype(np.float64)
        n_t = is_t.sum(axis=1).astype(np.float64)
        if metric == "balanced_accuracy":
            scores.append(np.where(n_t > 0, tp / np.where(n_t > 0, n_t, 1.0), np.nan))
        else:
            denom = n_t + is_p.sum(axis=1)  # 2tp + fp + fn
            scores.append(np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1.0), 0.0))
    stacked = np.vstack(scores)
    if metric == "f1" and positive is not None:
        return stacked[list(classes).index(positive)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample with no row of any class (all NaN)
        return np.nanmean(stacked, axis=0)


def _metric(metric: str, sc: _Scored, idx: np.ndarray, classes: np.ndarray, positive: int | None) -> np.ndarray:
    """``metric`` of one version on each row of ``idx`` (rounds, rows) -> (rounds,)."""
    import numpy as np
    
    if metric == "accuracy" and sc.correct is not None:
        return sc.correct[idx].mean(axis=1)
    if metric == "log_loss" and sc.nll is not None:
        return sc.nll[idx].mean(axis=1)
    if metric in ("balanced_accuracy", "f1") and sc.truth is not None:
        return _per_class(sc, idx, metric, classes, positive)
    if sc.err is not None and sc.y is not None:
        if metric == "mae":
            return np.abs(sc.err)[idx].mean(axis=1)
        if metric == "rmse":
            return np.sqrt((sc.err**2)[idx].mean(axis=1))
        if metric == "r2":
            y = sc.y[idx]
            sse = (sc.err**2)[idx].sum(axis=1)
            sst = ((y - y.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
            return np.where(sst > 0, 1.0 - sse / np.where(sst > 0, sst, 1.0), np.nan)
    raise DataError(f"no per-row form of the metric {metric!r} for a {sc.kind} model")


# ----------------------------------------------------------------------------- comparison


def _verdict(delta: float, lo: float, hi: float, greater: bool, max_drop: float) -> tuple[str, bool]:
    """(words, worse beyond noise and beyond the allowed drop)."""
    gain, gain_lo, gain_hi = (delta, lo, hi) if greater else (-delta, -hi, -lo)
    if gain_hi < 0:
        if -gain > max_drop + 1e-12:
            return f"worse beyond noise, by more than the allowed {max_drop:g}", True
        return f"worse beyond noise, within the allowed {max_drop:g}", False
    if gain_lo > 0:
        return "better beyond noise", False
    return "within noise", False


def compare_on_rows(
    old: Any,
    new: Any,
    rows: pd.DataFrame,
    *,
    metric: str | None = None,
    max_drop: float = DEFAULT_MAX_DROP,
    rows_desc: str | None = None,
) -> dict[str, Any]:
    """Score Predictors ``old`` and ``new`` on the same labelled ``rows`` with ``metric`` (default: the
    primary metric of ``old``'s manifest) and a paired-bootstrap interval of the change."""
    import numpy as np
    
    m = old.package.manifest
    target = m["task"]["target"]
    metric = metric or ((m.get("metrics") or {}).get("primary") or {}).get("name") or (
        "accuracy" if old.kind == "classification" else "r2")
    greater = greater_is_better(metric)
    rows = rows[rows[target].notna()].reset_index(drop=True)
    n = len(rows)
    if n == 0:
        raise DataError("no labelled rows to compare the versions on")
    space: dict[str, int] = {}
    sc_old, sc_new = _score(old, rows, target, space), _score(new, rows, target, space)
    pre_refit = [p.package.ref for p in (old, new) if pre_refit_outputs(p, rows) is not None]
    if pre_refit:  # refit_full versions: scored by their pre-refit outputs on the rows they later fitted
        rows_desc = (rows_desc or f"{n} shared rows") + (
            f" ({' and '.join(pre_refit)} refit on every row, these included: scored by the outputs stored from "
            "before that refit)")
    classes = np.arange(0)
    positive = None
    if sc_old.kind == "classification":
        assert sc_old.truth is not None and sc_old.pred is not None and sc_new.pred is not None
        classes = np.unique(np.concatenate([sc_old.truth, sc_old.pred, sc_new.pred]))
        old_labels = [_label(v) for v in old.labels]
        if len(old_labels) == 2 and [_label(v) for v in new.labels] == old_labels:
            positive = space[old_labels[1]]  # binary F1 is the positive class's (as at training time)
    full = np.arange(n)[None, :]
    old_value = float(_metric(metric, sc_old, full, classes, positive)[0])
    new_value = float(_metric(metric, sc_new, full, classes, positive)[0])
    delta = new_value - old_value
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    diffs = []
    step = max(1, _CHUNK_CELLS // n)
    for start in range(0, BOOTSTRAP_ROUNDS, step):
        idx = rng.integers(0, n, size=(min(step, BOOTSTRAP_ROUNDS - start), n))
        diffs.append(_metric(metric, sc_new, idx, classes, positive) - _metric(metric, sc_old, idx, classes, positive))
    d = np.concatenate(diffs)
    d = d[np.isfinite(d)]
    tail = (1 - CONFIDENCE) / 2 * 100
    lo, hi = (float(np.percentile(d, tail)), float(np.percentile(d, 100 - tail))) if d.size else (math.nan, math.nan)
    if not (math.isfinite(old_value) and math.isfinite(new_value) and math.isfinite(lo)):
        raise DataError(f"{metric} is undefined on these {n} rows (e.g. a constant target)")
    words, worse = _verdict(delta, lo, hi, greater, max_drop)
    return {
        "comparable": True,
        "metric": metric,
        "greater_is_better": greater,
        "old_value": old_value,
        "new_value": new_value,
        "delta": delta,
        "interval": [lo, hi],
        "confidence": CONFIDENCE,
        "method": f"paired bootstrap over the shared rows, {BOOTSTRAP_ROUNDS} rounds",
        "rows": n,
        "rows_desc": rows_desc or f"{n} shared rows",
        "verdict": words,
        "worse": worse,
        "max_drop": max_drop,
    }


def _labels_change(old_m: dict[str, Any], new_m: dict[str, Any]) -> dict[str, list[str]] | None:
    old_l, new_l = (old_m.get("task") or {}).get("labels"), (new_m.get("task") or {}).get("labels")
    if old_l is None and new_l is None:
        return None
    a, b = {_label(v) for v in old_l or []}, {_label(v) for v in new_l or []}
    if a == b:
        return None
    return {"added": sorted(b - a), "removed": sorted(a - b)}


def compare_versions(
    registry: Any, old_ref: str, new_ref: str, *, data: Any = None, max_drop: float = DEFAULT_MAX_DROP
) -> dict[str, Any]:
    """Compare two registered versions on the held-out test rows of ``old_ref`` (see the module doc).

    Never raises for an incomparable pair: ``{"comparable": False, "reason": ...}`` says why."""
    from ..runtime import Predictor

    old_pkg, new_pkg = registry.load(old_ref), registry.load(new_ref)
    om, nm = old_pkg.manifest, new_pkg.manifest
    base: dict[str, Any] = {"old_ref": old_pkg.ref, "new_ref": new_pkg.ref, "labels_changed": _labels_change(om, nm),
                            "max_drop": max_drop}
    old_kind, new_kind = (om.get("task") or {}).get("kind"), (nm.get("task") or {}).get("kind")
    old_metric = ((om.get("metrics") or {}).get("primary") or {}).get("name")
    new_metric = ((nm.get("metrics") or {}).get("primary") or {}).get("name")
    target = (om.get("task") or {}).get("target")
    if old_kind != new_kind or target != (nm.get("task") or {}).get("target"):
        return {**base, "comparable": False,
                "reason": f"{old_pkg.ref} is {old_kind} of {target!r} and {new_pkg.ref} is {new_kind} of "
                          f"{(nm.get('task') or {}).get('target')!r}"}
    if old_metric and new_metric and old_metric != new_metric:
        return {**base, "comparable": False,
                "reason": f"their primary metrics differ ({old_metric} vs {new_metric})"}
    same_split = _split_key(om) == _split_key(nm) and _split_key(om)[0] is not None
    held_out_by_new = ((nm.get("data") or {}).get("held_out_of") == old_pkg.ref)
    caveat = None if same_split or held_out_by_new else (
        f"{new_pkg.ref} was trained on other data or another split, so it may have seen some of these rows "
        "(a bias in its favour)")
    try:
        rows = held_out_rows(old_pkg, data)
        result = compare_on_rows(Predictor(old_pkg), Predictor(new_pkg), rows, metric=old_metric, max_drop=max_drop,
                                 rows_desc=f"the {len(rows)} held-out test rows of {old_pkg.ref}")
    except FulcrumError as exc:
        # rows this comparison cannot score (the data is gone, or the task's metric is not per row, e.g. a
        # forecast's backtest MASE): with the same data and split the recorded test metrics are on the same rows,
        # only without an interval
        if not same_split:
            return {**base, "comparable": False, "reason": f"they cannot be scored on the same rows: {exc}"}
        return {**base, **_recorded(om, nm, old_metric, exc, max_drop)}
    return {**base, **result, "caveat": caveat}


def _recorded(om: dict[str, Any], nm: dict[str, Any], metric: str | None, exc: Exception,
              max_drop: float) -> dict[str, Any]:
    """The comparison from the test metrics both manifests recorded on the same split (no interval)."""
    ov = ((om.get("metrics") or {}).get("primary") or {}).get("value")
    nv = ((nm.get("metrics") or {}).get("primary") or {}).get("value")
    if not metric or not isinstance(ov, (int, float)) or not isinstance(nv, (int, float)):
        return {"comparable": False, "reason": f"they cannot be scored on the same rows: {exc}"}
    greater = greater_is_better(metric)
    delta = float(nv) - float(ov)
    drop = -delta if greater else delta
    n = ((om.get("data") or {}).get("rows") or {}).get("test")
    return {"comparable": True, "metric": metric, "greater_is_better": greater, "old_value": float(ov),
            "new_value": float(nv), "delta": delta, "interval": None, "confidence": None,
            "method": f"recorded test metrics (no interval: {exc})", "rows": n,
            "rows_desc": f"the {n} held-out test rows both versions recorded",
            "verdict": "worse (no interval to judge noise)" if drop > 0 else "not worse",
            "worse": drop > max_drop + 1e-12, "caveat": None}


# ----------------------------------------------------------------------------- the move


def _change(c: dict[str, Any]) -> str:
    if not c.get("comparable"):
        return f"not compared: {c.get('reason')}"
    iv = c.get("interval")
    spread = f", {c['confidence']:.0%} CI {iv[0]:+.4f} to {iv[1]:+.4f}" if iv else ", no interval"
    text = (f"{c['metric']} {_num(c['old_value'])} -> {_num(c['new_value'])} ({c['delta']:+.4f}{spread}) "
            f"on {c['rows_desc']}; {c['verdict']}")
    if c.get("caveat"):
        text += f" (note: {c['caveat']})"
    return text


def promote(
    registry: Any,
    ref: str,
    alias: str,
    *,
    force: bool = False,
    max_drop: float = DEFAULT_MAX_DROP,
    data: Any = None,
    allow_label_change: bool = False,
    strict: bool = True,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Point ``alias`` at the version ``ref`` resolves to, if that does not make things worse.

    Compares it with the alias's current target (see the module doc), prints one line through
    ``log`` (old -> new with the metric change) and returns what happened::

        {"name", "alias", "old", "new", "moved", "forced", "refused", "reason", "comparison", "line"}

    A move to a version worse beyond noise and by more than ``max_drop``, one that cannot be
    compared on the same rows, or one whose class labels differ is refused: ConstraintError
    (its ``result`` attribute holds the dict), or with ``strict=False`` the dict with
    ``refused=True``. ``force=True`` moves it anyway and says so. ``data``: the alias target's
    training table, when its recorded data source cannot be read again.
    """
    alias = validate_alias(alias)
    if isinstance(max_drop, bool) or not isinstance(max_drop, (int, float)) or not 0 <= max_drop < math.inf:
        raise ConstraintError(f"max_drop is the largest metric drop allowed (e.g. 0.01), a number >= 0; got {max_drop!r}.")
    say = log or (lambda _msg: None)
    new_pkg = registry.load(ref)  # verified: a tampered version never gets an alias
    name, new = new_pkg.name, int(new_pkg.version)
    aliases = registry.aliases(name)
    old = aliases.get(alias)
    result: dict[str, Any] = {"name": name, "alias": alias, "old": old, "new": new, "moved": False, "forced": False,
                              "refused": False, "reason": None, "comparison": None, "max_drop": max_drop}
    head = f"{name}@{alias}"
    if old == new:
        result["line"] = f"{head} already points at version {new}; nothing to do"
        say(result["line"])
        return result
    if old is None:
        primary = (new_pkg.manifest.get("metrics") or {}).get("primary") or {}
        value = primary.get("value")
        shown = f"{primary.get('name')} {_num(value)} on its held-out test split" if isinstance(value, (int, float)) \
            else "no recorded metric"
        registry.set_alias(new_pkg.ref, alias)
        result.update(moved=True, line=f"{head} -> version {new} (new alias; {shown})")
        say(result["line"])
        return result

    c = compare_versions(registry, format_ref(name, old), new_pkg.ref, data=data, max_drop=max_drop)
    result["comparison"] = c
    problems = []
    if not c.get("comparable"):
        problems.append(f"the versions could not be compared on the same rows ({c.get('reason')})")
    elif c.get("worse"):
        problems.append(f"{c['metric']} is worse beyond noise and by more than the allowed drop of {max_drop:g}")
    if c.get("labels_changed") and not allow_label_change:
        ch = c["labels_changed"]
        parts = [f"adds {', '.join(map(repr, ch['added']))}" if ch["added"] else "",
                 f"drops {', '.join(map(repr, ch['removed']))}" if ch["removed"] else ""]
        problems.append(f"the class labels change (version {new} {' and '.join(p for p in parts if p)})")
    change = _change(c)
    if problems and not force:
        result.update(refused=True, reason="; ".join(problems),
                      line=f"{head} stays at version {old}, not moved to version {new}: {change}")
        say(result["line"])
        if strict:
            exc = ConstraintError(
                f"Refused to move {head} from version {old} to version {new}: {result['reason']}. "
                f"Pass --force (Python: force=True) to move it anyway"
                + ("" if c.get("comparable") else ", or --data FILE (data=) with the training table of "
                   f"{name}@{old} to compare them")
                + "."
            )
            exc.result = result  # type: ignore[attr-defined]
            raise exc
        return result
    current = registry.aliases(name).get(alias)
    if current != old:  # someone moved it while we compared: decide again rather than overwrite blindly
        raise RegistryError(f"{head} moved from version {old} to version {current} while this move was being "
                            "judged; run the command again.")
    registry.set_alias(new_pkg.ref, alias)
    forced = bool(problems)
    line = f"{head} -> version {new} (was version {old}): {change}"
    if forced:
        line += f" -- FORCED although {'; '.join(problems)}"
    result.update(moved=True, forced=forced, reason="; ".join(problems) or None, line=line)
    say(line)
    return result
