"""A weighted ensemble of fitted models, and the weights: greedy selection on out-of-fold predictions.

``caruana_weights`` is ensemble selection (Caruana, Niculescu-Mizil, Crew & Ksikes, 2004) as AutoGluon's
WeightedEnsemble runs it: start empty; each round, add (with replacement) the model whose addition gives
the best score of the averaged predictions; after ``rounds`` rounds keep the prefix with the best score;
a model's weight is how often it was added over the prefix length. Differences from AutoGluon: ties are
broken deterministically (by log loss for classification metrics other than log loss, then toward a model
already chosen, then toward the earlier model in the given order) instead of at random, and the log loss
also decides between prefixes of equal score.

``EnsembleAdapter`` predicts ``sum_i w_i * member_i(X)`` (probabilities or values); it is built from fitted
members by model selection, never fitted directly, and stores every member's files under its own prefix.
Its ONNX graph (``fulcrum.tasks.tabular._export``) is the members' graphs side by side on the one
``features`` input, combined with the same constant weights.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable, Mapping

import numpy as np

from ..config import TrainConfig
from ..errors import ConfigError, DataError, FormatError, NotFittedError
from ._base import ModelAdapter, ReadFile, TaskSpec

__all__ = ["caruana_weights", "EnsembleAdapter", "ENSEMBLE_METRICS"]

_EPS = 1e-15  # probability clip for log loss (sklearn's)
_TIE = 1e-9  # scores this close (absolute, or relative to their size) are a tie


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, _EPS, 1.0)
    p = p / p.sum(axis=1, keepdims=True)
    return float(-np.mean(np.log(p[np.arange(len(y)), y])))


def _accuracy(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(p.argmax(axis=1) == y))


def _balanced_accuracy(y: np.ndarray, p: np.ndarray) -> float:
    pred = p.argmax(axis=1)
    present = np.unique(y)
    return float(np.mean([np.mean(pred[y == c] == c) for c in present]))


def _f1(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    k = p.shape[1]
    return float(f1_score(y, p.argmax(axis=1), average="binary" if k == 2 else "macro",
                          labels=list(range(k)) if k > 2 else None, zero_division=0))


def _roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    k = p.shape[1]
    if len(np.unique(y)) < (2 if k == 2 else k):
        return float("nan")  # undefined: every candidate scores as non-finite
    if k == 2:
        return float(roc_auc_score(y, p[:, 1]))
    q = np.clip(p, _EPS, 1.0)
    return float(roc_auc_score(y, q / q.sum(axis=1, keepdims=True), multi_class="ovr", average="macro",
                               labels=list(range(k))))


def _r2(y: np.ndarray, v: np.ndarray) -> float:
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    sse = float(np.sum((v - y) ** 2))
    return 1.0 - sse / ss_tot if ss_tot > 0 else -sse  # constant target: r2 undefined, rank by error


def _rmse(y: np.ndarray, v: np.ndarray) -> float:
    return math.sqrt(float(np.mean((v - y) ** 2)))


def _mae(y: np.ndarray, v: np.ndarray) -> float:
    return float(np.mean(np.abs(v - y)))


#: metric name (fulcrum.tasks._metrics) -> (task kind, score function, greater is better)
ENSEMBLE_METRICS: dict[str, tuple[str, Callable[[np.ndarray, np.ndarray], float], bool]] = {
    "accuracy": ("classification", _accuracy, True),
    "balanced_accuracy": ("classification", _balanced_accuracy, True),
    "f1": ("classification", _f1, True),
    "roc_auc": ("classification", _roc_auc, True),
    "log_loss": ("classification", _log_loss, False),
    "r2": ("regression", _r2, True),
    "rmse": ("regression", _rmse, False),
    "mae": ("regression", _mae, False),
}


def _tied(a: float, b: float) -> bool:
    return abs(a - b) <= _TIE * max(1.0, abs(a), abs(b))


def caruana_weights(oof: Mapping[str, np.ndarray], y: np.ndarray, kind: str, metric: str, *, rounds: int = 25,
                    n_classes: int = 0) -> dict[str, float]:
    """Ensemble weights from out-of-fold predictions: ``{name: weight}``, weights > 0 summing to 1.

    ``oof``: per candidate, its out-of-fold outputs on the same N rows, in the order to prefer on ties
    (simplest first): (N, K) class probabilities for classification, (N,) values for regression.
    ``y``: the N true targets (class indices 0..K-1, or numbers). ``metric``: the score to optimize, a
    name from ``fulcrum.tasks._metrics`` (accuracy, balanced_accuracy, f1, roc_auc, log_loss; r2, rmse,
    mae). A candidate with a non-finite output is never chosen. Deterministic.
    """
    if kind not in ("classification", "regression"):
        raise ConfigError(f"kind must be 'classification' or 'regression'; got {kind!r}.")
    if metric not in ENSEMBLE_METRICS or ENSEMBLE_METRICS[metric][0] != kind:
        names = [m for m, (k, _, _) in ENSEMBLE_METRICS.items() if k == kind]
        raise ConfigError(f"Cannot build a {kind} ensemble for metric {metric!r}; choose one of {', '.join(names)}.")
    if isinstance(rounds, bool) or not isinstance(rounds, (int, np.integer)) or rounds < 1:
        raise ConfigError(f"rounds must be a positive integer (the number of greedy selection steps); got {rounds!r}.")
    if not oof:
        raise DataError("There are no out-of-fold predictions to build an ensemble from; pass at least one candidate.")
    y = np.asarray(y)
    n = len(y)
    classify = kind == "classification"
    if classify:
        y = y.astype(np.int64)
    else:
        y = y.astype(np.float64)
    preds: dict[str, np.ndarray] = {}
    width: int | None = int(n_classes) or None
    for name, p in oof.items():
        p = np.asarray(p, dtype=np.float64)
        if len(p) != n:
            raise DataError(f"Candidate {name!r} has out-of-fold predictions for {len(p)} rows; the target has {n} rows.")
        if classify:
            if p.ndim != 2 or (width is not None and p.shape[1] != width):
                raise DataError(f"Candidate {name!r} has out-of-fold predictions of shape {p.shape}; a classifier's "
                                f"are (rows, classes) = ({n}, {width or 'K'}) probabilities.")
            width = p.shape[1]
        elif p.ndim != 1:
            raise DataError(f"Candidate {name!r} has out-of-fold predictions of shape {p.shape}; a regressor's are "
                            f"(rows,) = ({n},) values.")
        preds[name] = p
    if classify and (y.min(initial=0) < 0 or y.max(initial=0) >= (width or 0)):
        raise DataError(f"Class indices in y must lie in 0..{(width or 0) - 1} (the probability columns).")
    usable = [k for k, p in preds.items() if np.isfinite(p).all()]
    if not usable:
        raise DataError(f"Every candidate's out-of-fold predictions hold non-finite values ({', '.join(preds)}); "
                        "no ensemble can be built from them.")

    _, score_fn, greater = ENSEMBLE_METRICS[metric]
    secondary = classify and metric != "log_loss"  # log loss breaks ties of coarse metrics (accuracy)

    def regret(p: np.ndarray) -> float:
        s = score_fn(y, p)
        s = -s if greater else s
        return s if math.isfinite(s) else math.inf

    P = [preds[k] for k in usable]
    total = np.zeros_like(P[0])
    chosen: list[int] = []
    trajectory: list[tuple[float, float]] = []  # (regret, log loss or 0) after each round
    for _ in range(int(rounds)):
        s = len(chosen)
        cands = [(total + p) / (s + 1) for p in P]
        scores = [regret(c) for c in cands]
        best = min(scores)
        if not math.isfinite(best):
            raise DataError(f"The metric {metric!r} is undefined on these rows for every candidate (e.g. roc_auc "
                            "with one class present); build the ensemble for another metric.")
        tied = [j for j, sc in enumerate(scores) if _tied(sc, best)]
        second = {j: (_log_loss(y, cands[j]) if secondary else 0.0) for j in tied}
        if len(tied) > 1 and secondary:
            low = min(second.values())
            tied = [j for j in tied if _tied(second[j], low)]
        if len(tied) > 1 and any(j in chosen for j in tied):  # keep the ensemble small
            tied = [j for j in tied if j in chosen]
        pick = tied[0]  # earliest in the given order (the simplest)
        chosen.append(pick)
        total += P[pick]
        trajectory.append((scores[pick], second[pick]))
        if len(P) == 1:
            break
    # the best prefix: lowest regret, then lowest log loss, then the shortest
    low = min(r for r, _ in trajectory)
    prefixes = [i for i, (r, _) in enumerate(trajectory) if _tied(r, low)]
    low2 = min(trajectory[i][1] for i in prefixes)
    size = next(i for i in prefixes if _tied(trajectory[i][1], low2)) + 1
    counts = np.bincount(chosen[:size], minlength=len(P))
    return {usable[j]: float(counts[j]) / size for j in range(len(P)) if counts[j] > 0}


# ----------------------------------------------------------------------------- the adapter

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def member_input(family: str, X: np.ndarray) -> np.ndarray:
    """Features as a member of ``family`` takes them (the rule of ``tasks.tabular._fit._x``): float64 for
    linear models, which compute in double precision, float32 for the others (the ONNX graph's type)."""
    return X if family == "linear" else np.asarray(X).astype(np.float32, copy=False)


class EnsembleAdapter(ModelAdapter):
    """``sum_i w_i * member_i(X)`` over fitted member adapters (weights > 0, summing to 1).

    Built by :meth:`from_members` (model selection, ``--model auto``), not by :meth:`fit`. Members keep
    their own input types (:func:`member_input`), so pass float64 features to keep linear members exact.
    """

    family = "ensemble"
    flops_method = "sum of the members' training FLOPs (each by its own family's method)"

    def __init__(self, task: TaskSpec, config: TrainConfig) -> None:
        super().__init__(task, config)
        self.members_: list[tuple[str, ModelAdapter, float]] | None = None

    @classmethod
    def from_members(cls, task: TaskSpec, config: TrainConfig, members: Mapping[str, ModelAdapter],
                     weights: Mapping[str, float]) -> "EnsembleAdapter":
        """An ensemble of the fitted ``members`` named in ``weights`` (e.g. ``caruana_weights``' answer), in
        the weights' order. Zero weights are dropped; the rest are normalized to sum to 1."""
        chosen: list[tuple[str, ModelAdapter, float]] = []
        for name, w in weights.items():
            if name not in members:
                raise ConfigError(f"The ensemble weights name {name!r}, which is not among the fitted members "
                                  f"({', '.join(members)}).")
            if not isinstance(name, str) or not _NAME.match(name):
                raise ConfigError(f"Ensemble member name {name!r} is not usable in file names; use letters, digits, "
                                  "'_', '-' or '.', starting with a letter or digit.")
            w = float(w)
            if not math.isfinite(w) or w < 0:
                raise ConfigError(f"Ensemble weight of {name!r} is {w}; weights must be finite and not negative.")
            member = members[name]
            if member.family == cls.family:
                raise ConfigError(f"Member {name!r} is itself an ensemble; an ensemble's members are single models.")
            if w > 0:
                chosen.append((name, member, w))
        total = sum(w for _, _, w in chosen)
        if not chosen or total <= 0:
            raise ConfigError("An ensemble needs at least one member with a positive weight.")
        self = cls(task, config)
        self.members_ = [(name, m, w / total) for name, m, w in chosen]
        self.training_flops_ = int(sum(m.training_flops_ for _, m, _ in self.members_))
        return self

    def fit(self, X: Any, y: Any, X_val: Any = None, y_val: Any = None, **_: Any) -> "EnsembleAdapter":
        raise ConfigError("An ensemble is not fitted directly: model selection (--model auto) builds it from its "
                          "fitted candidates and their out-of-fold predictions (EnsembleAdapter.from_members).")

    @property
    def members(self) -> list[tuple[str, ModelAdapter, float]]:
        """(name, fitted adapter, weight) per member, in order."""
        if not self.members_:
            raise NotFittedError("This EnsembleAdapter has no members yet; build it from fitted models with "
                                 "EnsembleAdapter.from_members(task, config, members, weights).")
        return list(self.members_)

    def predict_output(self, X: np.ndarray) -> np.ndarray:
        out: np.ndarray | None = None
        for _, member, w in self.members:
            part = w * np.asarray(member.predict_output(member_input(member.family, X)), dtype=np.float64)
            out = part if out is None else out + part
        assert out is not None
        return out

    def to_files(self) -> tuple[dict[str, Any], dict[str, bytes]]:
        entries: list[dict[str, Any]] = []
        files: dict[str, bytes] = {}
        for i, (name, member, w) in enumerate(self.members):
            prefix = f"ens{i}_{name}_"  # "ens<i>_" never begins another member's prefix: no file collides
            own_meta, own = member.to_files()
            meta = dict(own_meta)
            for key, value in list(meta.items()):  # file references -> the prefixed names
                if isinstance(value, str) and value in own:
                    meta[key] = prefix + value
            files.update({prefix + rel: data for rel, data in own.items()})
            entry: dict[str, Any] = {"name": name, "family": member.family, "weight": w, "prefix": prefix, "meta": meta,
                                     "describe": member.describe()}
            if member.family == "lightgbm":  # for FLOPs per prediction: the trees' largest leaf count
                entry["num_leaves"] = _max_leaves(own.get(str(own_meta.get("model_file")), b""))
            entries.append(entry)
        return {"family": self.family, "members": entries}, files

    @classmethod
    def from_files(cls, task: TaskSpec, meta: dict[str, Any], read: ReadFile) -> "EnsembleAdapter":
        from . import adapter_class

        entries = meta.get("members")
        if not isinstance(entries, list) or not entries:
            raise FormatError("The ensemble's manifest section has no 'members' list; the package is damaged: re-train "
                              "the model or restore the package from a backup.")
        members: list[tuple[str, ModelAdapter, float]] = []
        for e in entries:
            try:
                name, family, weight, member_meta = str(e["name"]), str(e["family"]), float(e["weight"]), e["meta"]
            except (KeyError, TypeError, ValueError) as exc:
                raise FormatError(f"An ensemble member's manifest entry is malformed ({exc!r}); re-train the model or "
                                  "restore the package from a backup.") from None
            if family == cls.family:
                raise FormatError(f"Ensemble member {name!r} is listed as an ensemble itself; members are single "
                                  "models: the package is damaged.")
            member = adapter_class(family).from_files(task, member_meta, read)
            members.append((name, member, weight))
        self = cls(task, TrainConfig())
        self.members_ = members
        return self

    def describe(self) -> dict[str, Any]:
        return {"members": [{"name": n, "family": m.family, "weight": w, "describe": m.describe()}
                            for n, m, w in (self.members_ or [])]}


def _max_leaves(model_text: bytes) -> int | None:
    found = [int(v) for v in re.findall(rb"^num_leaves=(\d+)", model_text, flags=re.M)]
    return max(found) if found else None
