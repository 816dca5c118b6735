"""Typed, validated configuration objects.

Every config is a frozen-ish dataclass built through :func:`from_dict` (or
``from_file``), which rejects unknown keys with a close-match suggestion and
checks each value, so a typo in a config file fails loudly instead of being
silently ignored.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import typing
from pathlib import Path
from typing import Any, Literal, Mapping, TypeVar

from .errors import ConfigError

__all__ = ["TrainConfig", "load_config_file", "config_from_dict"]

T = TypeVar("T")

TaskKind = Literal["auto", "classification", "regression"]
ModelKind = Literal["auto", "mlp", "linear", "lightgbm"]


@dataclasses.dataclass
class TrainConfig:
    """Everything a training run needs besides the data: the tabular task's config, and the keys every
    task shares (``target``, ``task``, ``kind``, ``seed``, splits, ``device``, ...).

    ``task`` names the workload (``auto``: the first registered task that recognises the table, else
    ``tabular``; see ``fulcrum tasks``); ``kind`` is the prediction kind (``auto`` | ``classification`` |
    ``regression``). The old spelling ``task="classification"`` / ``"regression"`` still works: it sets
    ``kind``. Other tasks have their own config class with their own keys (e.g. the text task's
    ``fine_tune``); ``fulcrum.train`` builds the one the task declares. Hyperparameters are keywords with
    defaults that work on ordinary tables.
    """

    target: str | None = None
    task: str = "auto"
    kind: TaskKind = "auto"
    model: ModelKind = "auto"
    seed: int = 0
    # splits
    test_size: float = 0.2
    val_size: float = 0.2
    # preparation (fitted on the training split only)
    clip_outliers: float | None = None  # e.g. 0.01 clips to the 1st/99th percentile
    balance: Literal["none", "class_weight", "oversample"] = "none"
    max_categories: int = 50
    # gradient descent (mlp)
    epochs: int = 100
    batch_size: int = 64
    lr: float = 1e-3
    # warmup_cosine: per optimizer step, lr rises linearly over warmup_steps then follows a cosine to 0 over
    # epochs x steps per epoch (the others change lr once per epoch)
    lr_schedule: Literal["constant", "cosine", "step", "plateau", "warmup_cosine"] = "cosine"
    warmup_steps: int = 0
    grad_clip: float | None = None  # the largest global gradient norm per step (None: not clipped)
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    hidden_sizes: tuple[int, ...] = (128, 64)
    dropout: float = 0.1
    early_stopping: bool = True
    patience: int = 10
    min_delta: float = 0.0
    # linear models: L2 strength; None = model default (ridge strength by leave-one-out CV for
    # regression, C=1 for logistic); 0 = plain least squares
    l2: float | None = None
    # gradient-boosted trees
    n_estimators: int = 500
    num_leaves: int = 31
    gbm_learning_rate: float = 0.05
    min_data_in_leaf: int | None = None  # None: min(20, max(2, rows // 20))
    feature_fraction: float = 1.0
    bagging_fraction: float = 1.0
    lambda_l2: float = 0.0
    gbm_threads: int = 0  # LightGBM threads; 0 = auto (one below 20,000 rows, else every core)
    # evaluation and model selection
    cv_folds: int = 0
    # how --model auto ranks candidates: k-fold CV on train+validation for small tables
    # (steadier than one small validation split), the validation split for large ones
    selection: Literal["auto", "cv", "validation"] = "auto"
    # after selection, retrain the chosen model on train+validation with the epochs/trees found
    refit: bool = True
    # --model auto as a time-bounded search (tasks/tabular/_select.py, PRESETS): which candidates, how many
    # folds and search trials, whether to ensemble and to refit on every row. Each None below = the preset's.
    preset: Literal["fast", "balanced", "best"] = "balanced"
    # seconds for the whole run (selection, refits, export, the inference measurement); None = the
    # preset's default for the table's size (tasks/tabular/_select.default_time_limit)
    time_limit: float | None = None
    # per-row latency limit in milliseconds at batch 1, measured on this machine on each candidate's
    # ONNX graph; slower candidates and ensembles are excluded. None = no limit (nothing measured)
    infer_limit: float | None = None
    # after selection and the honest test score, refit the chosen model on every row (train, validation
    # and test), as AutoGluon's refit_full; the pre-refit test score stays in the package
    refit_full: bool | None = None
    ensemble: Literal["auto", "off", "always"] = "auto"  # auto: when it beats the best single model beyond noise
    search_trials: int | None = None  # LightGBM hyperparameter trials (Optuna TPE) after the defaults
    n_jobs: int = 0  # folds fitted side by side; 0 = one per core
    # where and how
    device: Literal["auto", "cpu", "cuda"] = "auto"
    backend: Literal["local", "ray"] = "local"
    # backend="ray" (the MLP through Ray Train, fulcrum.training._ray): data-parallel workers, GPUs per
    # worker, the cluster (None: a local one on this machine; "auto": the one `ray start` runs here; or
    # HOST:PORT / ray://HOST:10001) and how many worker failures a run survives (resumed from its checkpoint)
    workers: int = 2
    gpus_per_worker: float = 0.0
    ray_address: str | None = None
    max_failures: int = 3
    checkpoint_dir: str | None = None
    resume: bool = False
    progress: bool = True
    # measure what one prediction costs on this machine after training (stored in the package)
    measure_inference: bool = True

    def __post_init__(self) -> None:
        _coerce_and_check(self)
        if self.task in ("classification", "regression"):  # the old meaning of ``task``: the prediction kind
            if self.kind not in ("auto", self.task):
                raise ConfigError(f"task={self.task!r} (the old spelling of kind) contradicts kind={self.kind!r}; "
                                  "pass only kind=...")
            self.task, self.kind = "auto", self.task
        _check_task_name(self.task)
        _positive(self, "epochs", "batch_size", "patience", "n_estimators", "num_leaves", "max_categories")
        _in_open_unit(self, "test_size", "val_size")
        if self.test_size + self.val_size >= 0.9:
            raise ConfigError(
                f"test_size + val_size = {self.test_size + self.val_size:g} leaves too little to train on; "
                "keep their sum below 0.9."
            )
        for key in ("lr", "gbm_learning_rate"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"{key} must be > 0, got {getattr(self, key)!r}.")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout!r}.")
        if self.warmup_steps < 0 or (self.grad_clip is not None and not self.grad_clip > 0):
            raise ConfigError(f"warmup_steps must be >= 0 and grad_clip > 0 (or None); got {self.warmup_steps!r} "
                              f"and {self.grad_clip!r}.")
        if self.weight_decay < 0 or (self.l2 is not None and self.l2 < 0):
            raise ConfigError("weight_decay and l2 must be >= 0.")
        if self.clip_outliers is not None and not 0 < self.clip_outliers < 0.5:
            raise ConfigError(f"clip_outliers is a tail quantile in (0, 0.5), e.g. 0.01; got {self.clip_outliers!r}.")
        if self.cv_folds == 1 or self.cv_folds < 0:
            raise ConfigError(f"cv_folds must be 0 (off) or >= 2, got {self.cv_folds!r}.")
        for key in ("time_limit", "infer_limit"):
            v = getattr(self, key)
            unit = "seconds for the whole run, e.g. 60" if key == "time_limit" else "milliseconds per row, e.g. 1.5"
            if v is not None and not (math.isfinite(v) and v > 0):
                raise ConfigError(f"{key} must be a positive number of {unit}; got {v!r}.")
        if not (0 < self.feature_fraction <= 1 and 0 < self.bagging_fraction <= 1):
            raise ConfigError("feature_fraction and bagging_fraction must be fractions in (0, 1].")
        if self.lambda_l2 < 0 or (self.min_data_in_leaf is not None and self.min_data_in_leaf < 1):
            raise ConfigError("lambda_l2 must be >= 0 and min_data_in_leaf >= 1.")
        if self.gbm_threads < 0 or self.n_jobs < 0 or (self.search_trials is not None and self.search_trials < 0):
            raise ConfigError("gbm_threads, n_jobs and search_trials must be >= 0 (0 = auto / none).")
        if self.workers < 1 or self.max_failures < 0 or not (math.isfinite(self.gpus_per_worker) and self.gpus_per_worker >= 0):
            raise ConfigError(f"workers must be >= 1, max_failures >= 0 and gpus_per_worker >= 0; got workers="
                              f"{self.workers!r}, max_failures={self.max_failures!r}, gpus_per_worker={self.gpus_per_worker!r}.")
        if not self.hidden_sizes or any(h <= 0 for h in self.hidden_sizes):
            raise ConfigError(f"hidden_sizes must be positive integers, got {self.hidden_sizes!r}.")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden_sizes"] = list(self.hidden_sizes)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        return config_from_dict(cls, data)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> "TrainConfig":
        return config_from_dict(cls, load_config_file(path))

    def replace(self, **changes: Any) -> "TrainConfig":
        return config_from_dict(type(self), {**self.to_dict(), **changes})


# --------------------------------------------------------------------------- helpers


def load_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a JSON, TOML or YAML file into a dict (no code is executed)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"Config file {str(p)!r} does not exist; check the path.")
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix == ".json":
            data = json.loads(text)
        elif p.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif p.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            raise ConfigError(f"Config file {p.name!r}: unknown format; use .json, .toml, .yaml or .yml.")
    except ConfigError:
        raise
    except Exception as exc:  # parse errors from three parsers
        raise ConfigError(f"Config file {p.name!r} does not parse: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"Config file {p.name!r} must hold a mapping of keys to values, got {type(data).__name__}.")
    return data


def config_from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build config ``cls`` from ``data``, rejecting unknown keys."""
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = [k for k in data if k not in fields]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, sorted(fields), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"Unknown config key {key!r} for {cls.__name__}.{hint} "
            f"Known keys: {', '.join(sorted(fields))}."
        )
    return cls(**data)


class TaskConfig:
    """What every task's config dataclass shares besides its fields: ``to_dict``, ``replace`` and ``coerce``.

    A subclass sets ``MODELS`` (the ``model`` values it trains), ``WRONG_MODEL`` (the refusal for another
    task's model, formatted with ``model``) and ``WRONG_TYPE`` (formatted with ``type``)."""

    MODELS: tuple[str, ...] = ("auto",)
    WRONG_MODEL = "model={model!r} is not a model of this task; choose one of {models}."
    WRONG_TYPE = "A task config is one of its config class, a TrainConfig or a dict, not {type}."

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def replace(self: T, **changes: Any) -> T:
        return config_from_dict(type(self), {**self.to_dict(), **changes})  # type: ignore[attr-defined]

    @classmethod
    def coerce(cls: type[T], config: Any, **extra: Any) -> T:
        """This config from one of its own, None, a mapping (unknown keys refused) or a TrainConfig / another
        dataclass (the keys they share; a ``model`` of another task is refused)."""
        if isinstance(config, cls):
            return config.replace(**extra) if extra else config  # type: ignore[attr-defined]
        if config is None:
            return config_from_dict(cls, dict(extra))
        if isinstance(config, Mapping):
            return config_from_dict(cls, {**config, **extra})
        if isinstance(config, TrainConfig) or dataclasses.is_dataclass(config):
            own = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
            data = {k: v for k, v in dataclasses.asdict(config).items() if k in own}  # type: ignore[call-overload]
            model = data.get("model", "auto")
            if model not in cls.MODELS:  # type: ignore[attr-defined]
                raise ConfigError(cls.WRONG_MODEL.format(model=model, models=", ".join(cls.MODELS)))  # type: ignore[attr-defined]
            return config_from_dict(cls, {**data, **extra})
        raise ConfigError(cls.WRONG_TYPE.format(type=type(config).__name__))  # type: ignore[attr-defined]


class NetTaskConfig(TaskConfig):
    """A task config whose network trains through the shared Trainer (AdamW, cosine schedule, early stopping) and
    that has the fields ``seed``, ``epochs``, ``batch_size`` (None: 64), ``lr``, ``weight_decay``, ``patience``,
    ``device``, ``progress``, ``test_size`` and ``val_size``."""

    def check(self, *positive: str) -> None:
        """Every field against its annotation, the ``positive`` fields and ``batch_size`` (when set) > 0, ``lr`` > 0,
        ``weight_decay`` >= 0, and the split fractions."""
        _coerce_and_check(self)
        _positive(self, *positive)
        if getattr(self, "batch_size", None) is not None:
            _positive(self, "batch_size")
        if not (0 < self.test_size < 1 and 0 < self.val_size < 1) or self.test_size + self.val_size >= 0.9:  # type: ignore[attr-defined]
            raise ConfigError("test_size and val_size are fractions whose sum stays below 0.9, e.g. 0.2 and 0.2.")
        if not self.lr > 0 or self.weight_decay < 0:  # type: ignore[attr-defined]
            raise ConfigError(f"lr must be > 0 and weight_decay >= 0; got {self.lr!r} and {self.weight_decay!r}.")  # type: ignore[attr-defined]

    def train_config(self, **changes: Any) -> TrainConfig:
        c: Any = self
        base = dict(seed=c.seed, epochs=c.epochs, batch_size=c.batch_size or 64, lr=c.lr, weight_decay=c.weight_decay,
                    lr_schedule="cosine", optimizer="adamw", early_stopping=True, patience=c.patience, device=c.device,
                    progress=c.progress)
        return TrainConfig(**{**base, **changes})


def _coerce_and_check(obj: Any) -> None:
    """Check every field against its annotation; coerce lists to tuples and ints to floats."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        new = _check_value(f.name, value, hints[f.name], type(obj).__name__)
        if new is not value:
            setattr(obj, f.name, new)


def _check_value(name: str, value: Any, hint: Any, owner: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Literal:
        if value not in args:
            raise ConfigError(
                f"Invalid value {value!r} for {name!r} in {owner}; choose one of {', '.join(map(repr, args))}."
            )
        return value
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _check_value(name, value, inner[0], owner)
    if origin is tuple:
        if isinstance(value, (list, tuple)):
            return tuple(_check_value(name, v, args[0], owner) for v in value)
        if isinstance(value, str):  # "128,64" from the command line
            try:
                return tuple(int(v) for v in value.split(",") if v.strip())
            except ValueError:
                pass
        raise ConfigError(f"{name!r} in {owner} must be a list, e.g. [128, 64]; got {value!r}.")
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{name!r} in {owner} must be true or false, got {value!r}.")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{name!r} in {owner} must be an integer, got {value!r}.")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{name!r} in {owner} must be a number, got {value!r}.")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{name!r} in {owner} must be a string, got {value!r}.")
    return value


def _check_task_name(name: str) -> None:
    """``auto`` or a registered task name; an unknown one is refused with the list (``fulcrum tasks``)."""
    if name == "auto":
        return
    from .tasks._registry import task_names

    names = task_names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"Unknown task {name!r}.{hint} Choose auto, classification, regression (the kind) or a "
                          f"registered task: {', '.join(names)} (see `fulcrum tasks`).")


def _positive(obj: Any, *names: str) -> None:
    for n in names:
        if getattr(obj, n) <= 0:
            raise ConfigError(f"{n} must be > 0, got {getattr(obj, n)!r}.")


def _in_open_unit(obj: Any, *names: str) -> None:
    for n in names:
        v = getattr(obj, n)
        if not 0 < v < 1:
            raise ConfigError(f"{n} must be a fraction in (0, 1), got {v!r}.")
