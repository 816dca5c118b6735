"""``fulcrum retrain REF``: a new version from the original data plus the feedback rows, compared
with the current one side by side, and (with --alias) promoted only if it is not worse.

The current version's held-out test split is re-drawn exactly as at training time (same data,
seed and split sizes) and kept out of the new version's training data, so both versions are
compared on rows neither has seen. The feedback rows are also scored, but the new version trains
on them, so that comparison favours it; the decision needs "not worse" on both.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import pandas as pd

from ._common import add_registry_option, fmt, note, print_json, registry_from

ROW_ID = "__fulcrum_row__"
TOLERANCE = 1e-9  # float noise; "not worse" is otherwise exact


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "retrain",
        help="train a new version on the original data plus ground-truth feedback, and compare",
        description="Reads the original training data (the manifest's data source) and the feedback rows, trains a "
        "new version with the stored config, and compares it with REF on REF's held-out test split and on the "
        "feedback rows.",
    )
    p.add_argument("ref", help="model reference: name, name@3 or name@alias (the current version)")
    p.add_argument("--alias", metavar="A", help="point alias A at the new version if it is not worse than REF")
    p.add_argument("--force", action="store_true", help="retrain even when there are no feedback rows")
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
    from ..serve._feedback import _label as label

    return label(v)


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
    """Metrics of a Predictor on labelled rows; truth labels the model never saw count as wrong."""
    from ..tasks import evaluate_outputs

    frame = frame[frame[target].notna()]
    if frame.empty:
        return {"n": 0}
    out = pred.predict_output(frame.drop(columns=[target]))
    if pred.kind == "classification":
        labels = [_label(lab) for lab in pred.labels]
        index = {lab: i for i, lab in enumerate(labels)}
        truth = [_label(v) for v in frame[target]]
        codes = [index.get(t) for t in truth]
        if all(c is not None for c in codes):
            m = evaluate_outputs("classification", np.asarray(codes), out, len(labels))
            return {k: m.get(k) for k in ("n", "accuracy", "balanced_accuracy", "f1", "log_loss")}
        hits = np.asarray(labels, dtype=object)[out.argmax(axis=1)] == np.asarray(truth, dtype=object)
        unseen = sum(c is None for c in codes)
        return {"n": len(truth), "accuracy": float(hits.mean()), "unseen_labels": unseen}
    m = evaluate_outputs("regression", frame[target].to_numpy(dtype=np.float64), out, 0)
    return {k: m.get(k) for k in ("n", "mae", "rmse", "r2")}


def _not_worse(current: dict[str, Any], new: dict[str, Any], metric: str) -> bool | None:
    a, b = current.get(metric), new.get(metric)
    if a is None or b is None:
        return None
    return bool(b >= a - TOLERANCE) if metric == "accuracy" else bool(b <= a + TOLERANCE)


def retrain(reg: Any, ref: str, *, alias: str | None = None, force: bool = False) -> dict[str, Any]:
    """Do the work of ``fulcrum retrain`` and return the report (also the ``--json`` output)."""
    from ..config import TrainConfig
    from ..data import check_target, fingerprint, train_val_test_split
    from ..errors import DataError
    from ..runtime import Predictor
    from ..serve import FeedbackStore
    from ..tasks import fit_tabular

    pkg = reg.load(ref)
    name, version, m = pkg.name, pkg.version, pkg.manifest
    target, kind = m["task"]["target"], m["task"]["kind"]
    source = (m.get("data") or {}).get("source")
    with FeedbackStore(reg) as store:
        feedback = store.feedback_frame(name, target=target)
    if feedback.empty and not force:
        raise _NothingToLearn(
            f"Nothing new to learn from: no feedback rows for {name!r} (send ground truth for served predictions "
            f"by request id first). Pass --force to retrain on the original data alone."
        )
    original = _read_source(pkg.ref, name, source)
    cfg = TrainConfig.from_dict({**m["config"], "progress": False, "resume": False, "checkpoint_dir": None})
    original, _ = check_target(original, target, cfg.task)
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

    trained = fit_tabular(combined, cfg, source=source, log=note)
    trained.manifest["data"]["source"] = source  # the next retrain reads the same source (+ all feedback)
    trained.manifest["data"]["feedback_rows"] = int(len(feedback))
    trained.manifest["data"]["held_out_rows"] = int(len(test))
    trained.manifest["lineage"] = {"parent": pkg.ref, "data_source": source, "feedback_rows": int(len(feedback)),
                                   "reason": "retrain"}
    new_pkg = reg.register(name, trained.manifest, trained.files)

    current, new = Predictor(pkg), Predictor(new_pkg)
    metric = "accuracy" if kind == "classification" else "mae"
    comparison: dict[str, Any] = {
        "test": {"rows": int(len(test)), "current": _score(current, test, target), "new": _score(new, test, target)},
    }
    if not feedback.empty:
        fb = _merge(original.iloc[:0], feedback, target)
        comparison["feedback"] = {"rows": int(len(fb)), "current": _score(current, fb, target),
                                  "new": _score(new, fb, target), "note": "the new version trained on these rows"}
    verdicts = {k: _not_worse(v["current"], v["new"], metric) for k, v in comparison.items()}
    not_worse = all(v is not False for v in verdicts.values())
    moved = None
    if alias:
        if not_worse:
            reg.set_alias(new_pkg.ref, alias)
            moved = True
        else:
            moved = False
    return {
        "current": pkg.ref,
        "new": new_pkg.ref,
        "source": source,
        "source_unchanged": same_data,
        "feedback_rows": int(len(feedback)),
        "train_rows": int(len(combined)),
        "metric": metric,
        "comparison": comparison,
        "not_worse": {**verdicts, "all": not_worse},
        "alias": None if alias is None else {"alias": alias, "moved": moved,
                                             "version": new_pkg.version if moved else reg.aliases(name).get(alias)},
        "new_metrics": {"test": {k: v for k, v in trained.manifest["metrics"]["test"].items() if k != "confusion_matrix"}},
    }


class _NothingToLearn(Exception):
    pass


def run(args: argparse.Namespace) -> int:
    import sys

    reg = registry_from(args)
    try:
        report = retrain(reg, args.ref, alias=args.alias, force=args.force)
    except _NothingToLearn as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print_json(report)
        return 0
    cur, new = report["current"], report["new"]
    print(f"retrained {cur} -> {new}: {report['train_rows']} row(s) = {report['source']} without {cur}'s held-out "
          f"test split + {report['feedback_rows']} feedback row(s)")
    keys = ("accuracy", "balanced_accuracy", "f1", "log_loss") if report["metric"] == "accuracy" else ("mae", "rmse", "r2")
    width = max(len(cur), len(new), 10)
    print(f"\n  {'':<20} {cur:>{width}} {new:>{width}}")
    titles = {"test": f"held-out test split of {cur}", "feedback": "feedback rows (the new version trained on them)"}
    for part, comp in report["comparison"].items():
        print(f"  {titles[part]} ({comp['rows']} rows)")
        for k in keys:
            a, b = comp["current"].get(k), comp["new"].get(k)
            if a is None and b is None:
                continue
            mark = "  <- decides" if k == report["metric"] else ""
            print(f"    {k:<18} {fmt(a):>{width}} {fmt(b):>{width}}{mark}")
        if comp["current"].get("unseen_labels") or comp["new"].get("unseen_labels"):
            print("    (rows with labels a version never saw count as wrong for it)")
    nw = report["not_worse"]
    worse_on = [k for k, v in nw.items() if k != "all" and v is False]
    verdict = "not worse" if nw["all"] else f"worse on the {' and '.join(worse_on)} rows"
    print(f"\n{new} is {verdict} than {cur} by {report['metric']}")
    a = report["alias"]
    if a is not None:
        if a["moved"]:
            print(f"{new.split('@')[0]}@{a['alias']} -> version {a['version']}")
        else:
            where = f"version {a['version']}" if a["version"] is not None else "unset"
            print(f"alias {a['alias']!r} not moved (stays {where}): the new version is worse")
    return 0
