"""``fulcrum retrain REF``: a new version from the original data plus the feedback rows, compared with
the current one on the current one's held-out test rows, and (with --alias) moved there only through
the promotion policy (:func:`fulcrum.artifact.promote`): never to a version worse beyond noise.

The current version's held-out test split is re-drawn exactly as at training time (same data, seed
and split sizes) and kept out of the new version's training data, so both versions are compared on
rows neither has seen, with the task's primary metric and a paired-bootstrap 95% interval of the
change. Feedback is checked before it is used: a classification truth that is not one of the
model's labels (say "Emperor" for a penguins model of Adelie, Chinstrap and Gentoo) is skipped and
counted unless --allow-new-classes, and a regression truth must be a finite number. A change of the
label set (from feedback or from a changed data source) is refused unless --allow-new-classes.
The feedback rows are scored too, but the new version trained on them, so that comparison only
informs; it never decides.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import numpy as np
import pandas as pd

from ._common import add_registry_option, fmt, note, print_json, registry_from

ROW_ID = "__fulcrum_row__"
_SHOW = {"classification": ("accuracy", "balanced_accuracy", "f1", "log_loss"), "regression": ("r2", "mae", "rmse")}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "retrain",
        help="train a new version on the original data plus ground-truth feedback, and compare",
        description="Reads the original training data (the manifest's data source) and the feedback rows, trains a "
        "new version with the stored config, and compares it with REF on REF's held-out test split (primary metric, "
        "95% interval) and on the feedback rows. Feedback whose truth is not one of REF's labels is skipped.",
    )
    p.add_argument("ref", help="model reference: name, name@3 or name@alias (the current version)")
    p.add_argument("--alias", metavar="A",
                   help="point alias A at the new version unless it is worse than A's current target beyond noise "
                        "(the promotion policy of `fulcrum promote`)")
    p.add_argument("--force", action="store_true", help="retrain even when there are no usable feedback rows")
    p.add_argument("--allow-new-classes", action="store_true",
                   help="train on feedback whose truth is a label the model does not know, and accept a changed "
                        "label set (otherwise such rows are skipped and a label-set change is refused)")
    p.add_argument("--max-drop", type=float, default=None, metavar="X",
                   help="with --alias: largest metric drop allowed (default 0.01)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_registry_option(p)
    p.set_defaults(func=run)


def _read_source(ref: str, name: str, source: Any) -> pd.DataFrame:
    from ..data import read_table
    from ..errors import DataError

    if not source or source == "dataframe":
        raise DataError(
            f"{ref} was trained from an in-memory DataFrame, so there is no data source to read again; "
            f"train a new version from a file with `fulcrum train FILE --name {name}`."
        )
    try:
        return read_table(source)
    except DataError as exc:
        raise DataError(
            f"Cannot read the original training data of {ref} from {source!r}: {exc} "
            f"Restore the data at that path (retraining reads it from where it was trained), "
            f"or train afresh on new data with `fulcrum train NEW_DATA --name {name}`."
        ) from exc


def _label(v: Any) -> str:
    from ..artifact._promotion import _label as label

    return label(v)


def _usable(v: Any) -> bool:
    """A regression truth: a finite number (not a boolean, not a string)."""
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)) \
        and math.isfinite(float(v))


def _check_feedback(feedback: pd.DataFrame, target: str, kind: str, labels: list[Any] | None,
                    allow_new: bool) -> tuple[pd.DataFrame, dict[str, Any]]:
    """(rows to train on, what was skipped): truths that are not a known label / not a finite number."""
    skipped: dict[str, Any] = {"rows": 0, "values": {}, "reason": None}
    if feedback.empty:
        return feedback, skipped
    truth = feedback[target].tolist()
    if kind == "classification":
        known = {_label(v) for v in labels or []}
        bad = [t is None or _label(t) not in known for t in truth]
        reason = f"not one of the model's labels ({', '.join(sorted(known))})"
        if allow_new:
            bad = [t is None for t in truth]
    else:
        bad = [not _usable(t) for t in truth]
        reason = "not a finite number"
    values: dict[str, int] = {}
    for t, b in zip(truth, bad):
        if b:
            values[_label(t) if t is not None else "null"] = values.get(_label(t) if t is not None else "null", 0) + 1
    if any(bad):
        skipped = {"rows": int(sum(bad)), "values": values, "reason": reason}
    keep = ~np.asarray(bad, dtype=bool)
    return feedback.loc[keep].reset_index(drop=True), skipped


def _merge(original: pd.DataFrame, feedback: pd.DataFrame, target: str) -> pd.DataFrame:
    """Original rows then feedback rows, with the original's columns (extra request keys dropped)
    and the feedback coerced to the original column types (numbers stay numbers)."""
    columns = {}
    n_fb = len(feedback)
    for col in original.columns:
        orig = original[col]
        fb = feedback[col] if col in feedback.columns else pd.Series([None] * n_fb, dtype=object)
        if pd.api.types.is_numeric_dtype(orig.dtype) and not pd.api.types.is_bool_dtype(orig.dtype):
            values = np.concatenate([orig.to_numpy(dtype=np.float64, na_value=np.nan),
                                     pd.to_numeric(fb, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)])
            if pd.api.types.is_integer_dtype(orig.dtype) and not np.isnan(values).any() and np.all(values % 1 == 0):
                columns[col] = values.astype(orig.dtype)
            else:
                columns[col] = values
        else:
            fb_values = [_label(v) if col == target and v is not None else v for v in fb.tolist()]
            columns[col] = pd.Series(orig.tolist() + fb_values, dtype=object)
    return pd.DataFrame(columns)


def _score(pred: Any, frame: pd.DataFrame, target: str) -> dict[str, Any]:
    """Metrics of a Predictor on labelled rows (for display), as its task computes them; truth labels the
    model never saw count as wrong."""
    from ..artifact._promotion import pre_refit_outputs

    frame = frame[frame[target].notna()]
    if frame.empty:
        return {"n": 0}
    # a version refit on every row (refit_full) saw its own test rows: there, its pre-refit outputs
    honest = pre_refit_outputs(pred, frame)
    out = pred.predict_output(frame.drop(columns=[target])) if honest is None else honest
    if pred.kind == "classification":
        labels = [_label(lab) for lab in pred.labels]
        index = {lab: i for i, lab in enumerate(labels)}
        truth = [_label(v) for v in frame[target]]
        codes = [index.get(t) for t in truth]
        if all(c is not None for c in codes):
            m = pred.task.evaluate(pred.manifest, [pred.labels[c] for c in codes], {"probabilities": out})
            return {k: m.get(k) for k in ("n", *_SHOW["classification"])}
        hits = np.asarray(labels, dtype=object)[out.argmax(axis=1)] == np.asarray(truth, dtype=object)
        unseen = sum(c is None for c in codes)
        return {"n": len(truth), "accuracy": float(hits.mean()), "unseen_labels": unseen}
    m = pred.task.evaluate(pred.manifest, frame[target].to_numpy(dtype=np.float64), {"value": out})
    return {k: m.get(k) for k in ("n", *_SHOW["regression"])}


def _label_change(before: list[Any] | None, frame: pd.DataFrame, target: str) -> dict[str, list[str]] | None:
    a = {_label(v) for v in before or []}
    b = {_label(v) for v in frame[target].dropna().tolist()}
    if a == b:
        return None
    return {"added": sorted(b - a), "removed": sorted(a - b)}


def retrain(reg: Any, ref: str, *, alias: str | None = None, force: bool = False, allow_new_classes: bool = False,
            max_drop: float | None = None) -> dict[str, Any]:
    """Do the work of ``fulcrum retrain`` and return the report (also the ``--json`` output)."""
    from ..artifact import DEFAULT_MAX_DROP, promote
    from .._api import task_config
    from ..artifact._promotion import compare_on_rows
    from ..data import check_target, fingerprint, train_val_test_split
    from ..errors import ConfigError, DataError
    from ..runtime import Predictor
    from ..serve import FeedbackStore
    from ..tasks import get_task

    max_drop = DEFAULT_MAX_DROP if max_drop is None else max_drop
    if not 0 <= max_drop < math.inf:  # checked before anything is trained or written
        raise ConfigError(f"--max-drop is the largest metric drop allowed (e.g. 0.01), a number >= 0; got {max_drop!r}.")
    pkg = reg.load(ref)
    name, m = pkg.name, pkg.manifest
    target, kind = m["task"]["target"], m["task"]["kind"]
    labels = m["task"].get("labels")
    source = (m.get("data") or {}).get("source")
    with FeedbackStore(reg) as store:
        all_feedback = store.feedback_frame(name, target=target)
    feedback, skipped = _check_feedback(all_feedback, target, kind, labels, allow_new_classes)
    if feedback.empty and not force:
        if skipped["rows"]:
            raise _NothingToLearn(
                f"Nothing new to learn from: all {skipped['rows']} feedback row(s) for {name!r} were skipped, their "
                f"truth ({_values(skipped)}) being {skipped['reason']}. Pass --allow-new-classes to train on them as "
                f"new classes, or --force to retrain on the original data alone."
            )
        raise _NothingToLearn(
            f"Nothing new to learn from: no feedback rows for {name!r} (send ground truth for served predictions "
            f"by request id first). Pass --force to retrain on the original data alone."
        )
    original = _read_source(pkg.ref, name, source)
    task = get_task(m)
    cfg = task_config(task, {**m["config"], "progress": False, "resume": False, "checkpoint_dir": None})
    original, _ = check_target(original, target, getattr(cfg, "kind", kind))
    same_data = fingerprint(original) == (m.get("data") or {}).get("fingerprint")
    if not same_data:
        note(f"note: {source} changed since {pkg.ref} was trained; its held-out test split is re-drawn from the current data")
    numbered = original.assign(**{ROW_ID: np.arange(len(original))})
    _, _, test = train_val_test_split(numbered, target, task=kind, test_size=cfg.test_size, val_size=cfg.val_size,
                                      seed=cfg.seed)
    held_out = set(test[ROW_ID].tolist())
    keep = ~numbered[ROW_ID].isin(held_out).to_numpy()
    train_rows = original.loc[keep].reset_index(drop=True)
    test = test.drop(columns=[ROW_ID])
    combined = train_rows if feedback.empty else _merge(train_rows, feedback, target)
    if len(combined) < 5:
        raise DataError(f"Only {len(combined)} row(s) to retrain {name!r} on; add data.")
    change = _label_change(labels, combined, target) if kind == "classification" else None
    if change and not allow_new_classes:
        parts = [f"adds {', '.join(map(repr, change['added']))}" if change["added"] else "",
                 f"drops {', '.join(map(repr, change['removed']))}" if change["removed"] else ""]
        raise DataError(
            f"Retraining {pkg.ref} would change its classes: the data {' and '.join(p for p in parts if p)} "
            f"(its classes are {', '.join(_label(v) for v in labels or [])}). Pass --allow-new-classes to train "
            f"a model with the new label set, or fix the data at {source}."
        )

    trained = task.fit(combined, cfg, source=source, log=note)
    trained.manifest["data"]["source"] = source  # the next retrain reads the same source (+ all feedback)
    trained.manifest["data"]["feedback_rows"] = int(len(feedback))
    trained.manifest["data"]["held_out_rows"] = int(len(test))
    trained.manifest["data"]["held_out_of"] = pkg.ref  # the rows it never trained on: pkg's test split
    trained.manifest["lineage"] = {"parent": pkg.ref, "data_source": source, "feedback_rows": int(len(feedback)),
                                   "reason": "retrain"}
    new_pkg = reg.register(name, trained.manifest, trained.files)

    current, new = Predictor(pkg), Predictor(new_pkg)
    rows_desc = f"the {len(test)} held-out test rows of {pkg.ref}" + ("" if same_data else " (re-drawn from the current data)")
    decision = compare_on_rows(current, new, test, max_drop=max_drop, rows_desc=rows_desc)
    comparison: dict[str, Any] = {
        "test": {"rows": int(len(test)), "current": _score(current, test, target), "new": _score(new, test, target)},
    }
    if not feedback.empty:
        fb = _merge(original.iloc[:0], feedback, target)
        comparison["feedback"] = {"rows": int(len(fb)), "current": _score(current, fb, target),
                                  "new": _score(new, fb, target), "note": "the new version trained on these rows"}
    report: dict[str, Any] = {
        "current": pkg.ref,
        "new": new_pkg.ref,
        "source": source,
        "source_unchanged": same_data,
        "feedback_rows": int(len(feedback)),
        "skipped_feedback": skipped,
        "labels_changed": change,
        "train_rows": int(len(combined)),
        "metric": decision["metric"],
        "decision": decision,
        "comparison": comparison,
        "not_worse": {"test": not decision["worse"]},
        "alias": None,
        "new_metrics": {"test": {k: v for k, v in trained.manifest["metrics"]["test"].items() if k != "confusion_matrix"}},
    }
    if alias:
        moved = promote(reg, new_pkg.ref, alias, max_drop=max_drop, allow_label_change=allow_new_classes,
                        strict=False, log=None)
        report["alias"] = {**moved, "version": moved["new"] if moved["moved"] else reg.aliases(name).get(alias)}
    return report


def _values(skipped: dict[str, Any]) -> str:
    items = sorted(skipped["values"].items(), key=lambda kv: -kv[1])
    shown = ", ".join(f"{v!r} x{n}" for v, n in items[:5])
    return shown + (f", and {len(items) - 5} more" if len(items) > 5 else "")


class _NothingToLearn(Exception):
    pass


def run(args: argparse.Namespace) -> int:
    import sys

    reg = registry_from(args)
    try:
        report = retrain(reg, args.ref, alias=args.alias, force=args.force, allow_new_classes=args.allow_new_classes,
                         max_drop=args.max_drop)
    except _NothingToLearn as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print_json(report)
        return 0
    cur, new = report["current"], report["new"]
    print(f"retrained {cur} -> {new}: {report['train_rows']} row(s) = {report['source']} without {cur}'s held-out "
          f"test split + {report['feedback_rows']} feedback row(s)")
    sk = report["skipped_feedback"]
    if sk["rows"]:
        print(f"skipped {sk['rows']} feedback row(s) whose truth is {sk['reason']}: {_values(sk)}"
              + (" (--allow-new-classes trains on them)" if "labels" in (sk["reason"] or "") else ""))
    if report["labels_changed"]:
        ch = report["labels_changed"]
        print(f"classes change (--allow-new-classes): added {', '.join(ch['added']) or '-'}; "
              f"removed {', '.join(ch['removed']) or '-'}")
    kind = "classification" if report["metric"] in _SHOW["classification"] else "regression"
    width = max(len(cur), len(new), 10)
    print(f"\n  {'':<20} {cur:>{width}} {new:>{width}}")
    titles = {"test": f"held-out test split of {cur}", "feedback": "feedback rows (the new version trained on them)"}
    for part, comp in report["comparison"].items():
        print(f"  {titles[part]} ({comp['rows']} rows)")
        for k in _SHOW[kind]:
            a, b = comp["current"].get(k), comp["new"].get(k)
            if a is None and b is None:
                continue
            mark = "  <- decides" if k == report["metric"] and part == "test" else ""
            print(f"    {k:<18} {fmt(a):>{width}} {fmt(b):>{width}}{mark}")
        if comp["current"].get("unseen_labels") or comp["new"].get("unseen_labels"):
            print("    (rows with labels a version never saw count as wrong for it)")
    d = report["decision"]
    lo, hi = d["interval"]
    print(f"\n{new} vs {cur}: {d['metric']} {d['old_value']:.4f} -> {d['new_value']:.4f} ({d['delta']:+.4f}, "
          f"{d['confidence']:.0%} CI {lo:+.4f} to {hi:+.4f}) on {d['rows_desc']}; {d['verdict']}")
    a = report["alias"]
    if a is not None:
        print(a["line"])
        if a["refused"]:
            print(f"alias {a['alias']!r} not moved: {a['reason']}. To move it anyway after checking: "
                  f"fulcrum promote {new} --alias {a['alias']} --force")
    return 0
