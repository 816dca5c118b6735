"""The task contract: what every workload (tabular, text, image, audio, recommend, forecast) answers.

A task is a plug-in. Training asks it to read, split, fit and evaluate; everything on the
inference side (Predictor, server, monitor, optimizer, cost ledger, CLI) asks it only through
the package's manifest (``manifest["task"]["workload"]`` names the task), never by name::

    task = get_task(manifest)                       # or detect_task(frame, target) at training time
    trained = task.fit(frame, cfg, ...)             # -> Trained: manifest pieces + package files
    codec = task.input_codec(manifest, read_json)   # raw records / columns -> ONNX feeds
    task.request_schema(manifest)                   # inputs the server accepts (JSON and v2 tensors)
    task.variant_kinds(manifest)                    # which optimizations apply, and why not the others
    task.flops_per_prediction(manifest)             # for the cost ledger
    task.example()                                  # a small dataset for tests and docs

The whole inference graph (``model.onnx``) goes from raw inputs to outputs, so the runtime
needs from a task only how to turn user values into that graph's feeds (an :class:`InputCodec`).

Outputs follow one convention so the runtime, server and CLI format them without knowing
the task: the manifest's ``outputs`` list names them and gives each a ``kind``:

``label``          (N,) class names               ``probabilities``  (N, K) class probabilities
``value``          (N,) or (N, H) numbers         ``ood_score``      (N,) out-of-scope score (optional)
``items``/``scores`` (N, k) top-k ids and scores  ``text``           (N,) strings (transcription)
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Protocol, Sequence

import numpy as np
import pandas as pd

__all__ = ["Task", "Trained", "InputField", "InputCodec", "VariantKind", "TaskExample", "VariantContext"]

ReadJson = Callable[[str], Any]


@dataclass
class Trained:
    """A training run's result, ready to become a model package.

    ``manifest`` holds at least ``task`` (``workload``, ``kind``, ``target``, ``labels``), ``inputs``,
    ``outputs``, ``model``, ``onnx``, ``config``, ``data``, ``metrics`` (with ``primary``) and
    ``lineage``; ``files`` at least ``model.onnx``. ``test_frame`` holds the held-out rows (raw, with
    the target) for measuring inference cost and for comparing versions on the same rows.
    """

    manifest: dict[str, Any]
    files: dict[str, bytes]
    test_frame: pd.DataFrame | None = None
    training_flops: int = 0  # every fit of the run: CV folds, candidates, refit
    flops_methods: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # task-private objects (adapters, preprocessors)


@dataclass(frozen=True)
class InputField:
    """One input of a model as the server and the docs describe it.

    ``kind``: numeric | boolean | categorical | datetime | text | image | audio | id | series.
    ``v2``: accepted Open Inference Protocol datatypes, the graph's own first.
    ``limits``: e.g. ``{"max_chars": 10000}`` for text, ``{"max_bytes": ..., "max_pixels": ...}`` for images.
    """

    name: str
    kind: str
    v2: tuple[str, ...]
    required: bool = True
    description: str = ""
    limits: Mapping[str, Any] = field(default_factory=dict)
    #: a valid value (the server's warm-up request sends it; None: a typical value of the kind)
    example: Any = None


class InputCodec(Protocol):
    """Turns raw user values into the ONNX graph's feeds, with the same rules on every path.

    Errors are :class:`fulcrum.errors.SchemaError` / ``DataError`` naming the column, the value and the fix.
    ``last_extra_`` / ``last_unknown_`` carry notices of the last call (ignored columns, unseen categories).
    """

    input_names: list[str]
    last_extra_: list[str] | None
    last_unknown_: dict[str, list[str]] | None

    def encode_frame(self, df: pd.DataFrame, on_unknown: str = "ignore") -> dict[str, np.ndarray]: ...
    def encode_columns(self, cols: Mapping[str, Any], on_unknown: str = "ignore") -> dict[str, np.ndarray]: ...
    def encode_row(self, row: Mapping[str, Any], on_unknown: str = "ignore") -> dict[str, np.ndarray]: ...
    def dummy(self) -> dict[str, np.ndarray]: ...


@dataclass(frozen=True)
class VariantKind:
    """An optimization that applies to a package: ``kind`` is an id known to ``fulcrum.optimize``
    (graph-to-graph: onnx-fp32, int8-dynamic, int8-static) or one the task builds itself
    (retraining: pruned, distilled, trees, shallow, ...) through :meth:`Task.build_variant`."""

    kind: str
    builder: str = "graph"  # "graph": fulcrum.optimize transforms the graph; "task": Task.build_variant
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskExample:
    """A small labelled dataset a task trains on in seconds (tests, docs, ``fulcrum tasks``).

    ``data``: a DataFrame or a source (``builtin:NAME``, a path); ``options``: config keys that keep the
    run small and fast (e.g. ``{"model": "ngram"}``), merged under the caller's own."""

    data: Any
    target: str
    options: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    #: rows to predict with the example's model, when they are not the example's own rows without the target
    #: (a forecaster is asked about the times after its history); None: ``data``'s first rows
    requests: Any = None


@dataclass
class VariantContext:
    """What :meth:`Task.build_variant` gets besides the package: the run's re-created splits (raw tables with
    the target), the table the user passed (``data``, or None for the package's recorded source), the
    optimizer's options, the variant's id (its files go under ``variants/<id>/``) and a logger."""

    data: Any = None
    train: pd.DataFrame | None = None
    val: pd.DataFrame | None = None
    test: pd.DataFrame | None = None
    options: Any = None
    vid: str = ""
    log: Callable[[str], None] | None = None


class Task(ABC):
    """One workload. Subclasses set ``name`` and ``summary`` and implement the abstract methods.

    Optional answers have defaults: ``config_class`` / :meth:`make_config` (the task's own options, unknown
    keys refused), :meth:`example`, :meth:`splits`, :meth:`calibration_feeds`, :meth:`native_predictor`,
    :meth:`variant_ids` / :meth:`variant_from_id`.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    #: prediction kinds this task trains (the manifest's task.kind)
    kinds: ClassVar[tuple[str, ...]] = ("classification", "regression")
    #: the task's typed config (a dataclass built through ``fulcrum.config.config_from_dict``, so unknown keys
    #: are refused with a suggestion); None: :class:`fulcrum.config.TrainConfig`
    config_class: ClassVar[type | None] = None
    #: programs :meth:`example` needs on the PATH (e.g. ``("espeak-ng",)`` to synthesize speech); tests skip without
    example_programs: ClassVar[tuple[str, ...]] = ()

    # ------------------------------------------------------------------ configuration

    def make_config(self, options: Mapping[str, Any]) -> Any:
        """The task's config from plain options (a config file, ``--set KEY=VALUE``, keyword overrides);
        an unknown key is a :class:`~fulcrum.errors.ConfigError` naming the closest known one."""
        from ..errors import ConfigError

        try:
            return self._config(options)
        except ConfigError:
            hint = self._other_task_hint(options) if isinstance(options, Mapping) else None
            if hint is None:
                raise
            raise ConfigError(hint) from None

    def _config(self, options: Mapping[str, Any]) -> Any:
        from ..config import TrainConfig, config_from_dict

        cls = self.config_class or TrainConfig
        coerce = getattr(cls, "coerce", None)
        if callable(coerce):
            return coerce(dict(options))
        return config_from_dict(cls, dict(options))

    def _models(self) -> str:
        """This task's model choices (its config's ``model`` field), for messages."""
        import typing

        from ..config import TrainConfig

        hints = typing.get_type_hints(self.config_class or TrainConfig)
        return ", ".join(map(str, typing.get_args(hints.get("model")))) or "-"

    def _other_task_hint(self, options: Mapping[str, Any]) -> str | None:
        """When ``options`` ask for another task's model or option (``model='ngram'`` or ``fine_tune`` given to
        the tabular task), the error that names that task and ``--task``; else None."""
        import dataclasses

        from ..config import TrainConfig
        from ..errors import FulcrumError
        from ._registry import list_tasks

        others = [t for t in list_tasks() if t.name != self.name]
        force = "force the {0} task with --task {0} (Python: task={0!r})"
        model = options.get("model")
        if isinstance(model, str):
            for other in others:
                try:
                    other._config({"model": model})
                except (FulcrumError, TypeError, ValueError):
                    continue
                return (f"model={model!r} is a {other.name} task model, but this data goes to the {self.name} task, "
                        f"whose models are {self._models()}; {force.format(other.name)}, or choose one of the "
                        f"{self.name} models.")
        own = {f.name for f in dataclasses.fields(self.config_class or TrainConfig)} | {"task", "kind"}
        for key in (k for k in options if k not in own):
            for other in others:
                if key in {f.name for f in dataclasses.fields(other.config_class or TrainConfig)}:
                    return (f"{key!r} is an option of the {other.name} task, but this data goes to the {self.name} "
                            f"task; {force.format(other.name)}, or leave the option out.")
        return None

    def example(self) -> TaskExample:
        """A small labelled dataset for this task: by default the first built-in dataset whose workload is
        this task, cut to 300 rows (stratified when the target is a label)."""
        from ..data import builtin_info, list_builtin, load_builtin
        from ..errors import NotFoundError

        for info in list_builtin():
            if getattr(info, "workload", "tabular") == self.name:
                frame = load_builtin(info.name)
                if len(frame) > 300:
                    if info.task == "classification":
                        share = 300 / len(frame)
                        parts = [g.sample(max(2, int(round(share * len(g)))), random_state=0)
                                 for _, g in frame.groupby(info.target)]
                        frame = pd.concat(parts).sample(frac=1.0, random_state=0)
                    else:
                        frame = frame.sample(300, random_state=0)
                    frame = frame.reset_index(drop=True)
                return TaskExample(frame, builtin_info(info.name).target, {}, f"builtin:{info.name} (300 rows)")
        raise NotFoundError(f"Task {self.name!r} has no example dataset; it should override Task.example().")

    # ------------------------------------------------------------------ training side

    def detect(self, frame: pd.DataFrame, target: str | None) -> str | None:
        """Why this table is this task's kind of data (a sentence for the log), or None.

        ``fulcrum train`` asks every task but the fallback (tabular) in order; the first that
        answers wins, unless ``--task NAME`` forces one."""
        return None

    def claims(self, source: Any) -> str | None:
        """Why this task reads ``source`` itself (a sentence), or None: e.g. a folder of class subfolders of
        images. Any task's default :meth:`read` hands such a source to the task that claims it."""
        return None

    def read(self, source: Any, *, log: Callable[[str], None] | None = None) -> pd.DataFrame:
        """Read ``source`` (path, ``builtin:NAME`` or DataFrame) into a table; folders of files
        (images, audio) become a table of paths and labels here: the default hands a source another task
        :meth:`claims` (a folder) to that task's ``read``."""
        from ..data import read_table
        from ._registry import list_tasks

        if isinstance(source, (str, os.PathLike)) and not str(source).startswith("builtin:") and Path(source).is_dir():
            for task in list_tasks():
                if task is not self and type(task).read is not Task.read and task.claims(source):
                    return task.read(source, log=log)
        return read_table(source, log=log)

    @abstractmethod
    def fit(self, frame: pd.DataFrame, config: Any, *, source: str = "dataframe", callbacks: Sequence[Any] = (),
            checkpoint_dir: str | Path | None = None, log: Callable[[str], None] | None = None) -> Trained:
        """Split, prepare, train (through the shared Trainer where there is gradient descent), pick,
        score on the held-out split, export one ONNX graph from raw inputs to outputs."""

    def evaluate(self, manifest: Mapping[str, Any], truth: Sequence[Any], outputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """Metrics of ``outputs`` (the graph's outputs by name) against ``truth``; the primary metric
        is ``manifest["metrics"]["primary"]["name"]``."""
        from ._metrics import classification_metrics, regression_metrics

        kind = manifest["task"]["kind"]
        if kind == "classification":
            labels = list(manifest["task"]["labels"])
            index = {str(lab): i for i, lab in enumerate(labels)}
            y = np.asarray([index[str(t)] for t in truth], dtype=np.int64)
            return classification_metrics(y, outputs["probabilities"], len(labels))
        value = next(o["name"] for o in manifest["outputs"] if o.get("kind") == "value")
        return regression_metrics(np.asarray(truth, dtype=np.float64), outputs[value])

    def table_metrics(self, predictor: Any, frame: pd.DataFrame) -> dict[str, Any]:
        """Metrics that need more of the evaluated table than the target column and the graph's outputs (a
        recommender's RMSE on its ratings column), merged into ``fulcrum evaluate``'s result; none by default."""
        return {}

    def splits(self, package: Any, data: Any = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """The run's (train, validation, test) tables, re-created from ``data`` or the package's recorded
        source with the stored seed and split sizes, and checked against the stored data fingerprint.

        The default reads the table, drops rows without a target and splits as ``fulcrum.data`` does;
        a task that cleans or reshapes its rows before splitting overrides it."""
        from .. import data as D
        from ..errors import DataError

        m = package.manifest
        task, cfg = m["task"], m.get("config") or {}
        target, kind = task["target"], task["kind"]
        frame, source = read_source(m, data)
        if target not in frame.columns:
            raise DataError(f"The data {source!r} has no target column {target!r}; pass the table the model was trained on.")
        df, _ = D.check_target(frame, target, kind)
        stored = (m.get("data") or {}).get("fingerprint")
        if stored and stored not in (D.fingerprint(df), D.fingerprint(frame.reset_index(drop=True))):
            raise DataError(
                f"The data {source!r} differs from the data {package.ref} was trained on (fingerprint mismatch), so its "
                f"held-out test split cannot be re-created; pass the original training table with --data FILE."
            )
        return D.train_val_test_split(df, target, task=kind, test_size=float(cfg.get("test_size", 0.2)),
                                      val_size=float(cfg.get("val_size", 0.2)), seed=int(cfg.get("seed", 0)))

    def calibration_feeds(self, package: Any, train: pd.DataFrame, rows: int, seed: int) -> dict[str, np.ndarray]:
        """Graph feeds of up to ``rows`` training rows (sampled with ``seed``) for static quantization."""
        rng = np.random.default_rng(int(seed))
        n = min(len(train), int(rows))
        picked = train.iloc[np.sort(rng.choice(len(train), n, replace=False))].reset_index(drop=True)
        codec = self.input_codec(package.manifest, package.read_json)
        return codec.encode_frame(picked)

    # ------------------------------------------------------------------ inference side (manifest only)

    @abstractmethod
    def input_codec(self, manifest: Mapping[str, Any], read_json: ReadJson) -> InputCodec:
        """The codec for this package's graph (``read_json`` reads a package file, e.g. preprocess.json)."""

    @abstractmethod
    def request_schema(self, manifest: Mapping[str, Any]) -> list[InputField]:
        """The inputs the server accepts, one field per graph input."""

    def shorthand(self, manifest: Mapping[str, Any]) -> tuple[str, str] | None:
        """An optional friendly-route shorthand ``(json_key, input_name)``: e.g. ``("texts", "text")``
        lets ``{"texts": ["a", "b"]}`` stand for ``{"records": [{"text": "a"}, {"text": "b"}]}``."""
        return None

    def expand_request(self, manifest: Mapping[str, Any], body: Mapping[str, Any]) -> tuple[dict[str, list[Any]], int] | None:
        """An optional friendly-route request form of the task's own (e.g. a forecaster's ``{"history": [...],
        "horizon": H}``): ``body`` (the parsed JSON object) -> (column value lists, rows), or None when ``body`` is
        not that form (then ``records`` and :meth:`shorthand` apply). The lists hold every input of
        :meth:`request_schema` and may hold more (extra columns the task's codec reads, e.g. the history).
        Bad values: :class:`~fulcrum.errors.SchemaError` / ``DataError`` naming the key and the fix (422)."""
        return None

    @abstractmethod
    def variant_kinds(self, manifest: Mapping[str, Any]) -> tuple[list[VariantKind], dict[str, str]]:
        """(the optimizations that apply, {kind: why not} for the ones that do not)."""

    def variant_ids(self, kind: VariantKind, options: Any) -> list[tuple[str, dict[str, Any]]]:
        """The variant ids (and their params) one kind expands to with the optimizer's ``options``, e.g.
        ``pruned`` -> ``pruned-50``, ``pruned-80``. Default: one variant named after the kind."""
        return [(kind.kind, dict(kind.params))]

    def variant_from_id(self, vid: str, kinds: Sequence[VariantKind]) -> tuple[str, dict[str, Any]] | None:
        """(kind, params) for an id the user typed that no default id covers (``pruned-65``), or None."""
        return None

    def build_variant(self, kind: str, params: Mapping[str, Any], package: Any, context: Any) -> tuple[bytes, dict[str, bytes], dict[str, Any]]:
        """Build a task-specific variant: (model.onnx bytes, extra files, manifest notes).

        ``context`` is a :class:`VariantContext`. Files are relative to ``variants/<id>/``. Notes are kept in
        the variant's entry; two keys have a meaning: ``params`` (what the variant is, recorded as its
        params) and ``model`` (a native model section for the variant's own weights, used when the
        variant is promoted to a version of its own)."""
        raise NotImplementedError(f"task {self.name!r} builds no variant {kind!r} itself")

    def has_native_engine(self, manifest: Mapping[str, Any]) -> bool:
        """Whether :meth:`native_predictor` can load this package (the optimizer checks its weights first)."""
        return type(self).native_predictor is not Task.native_predictor

    def native_predictor(self, package: Any) -> Any:
        """The reference engine (the trained model itself, not its graph): an object with
        ``output(frame, on_unknown) -> primary output`` and ``last_extra_`` / ``last_unknown_`` notices.
        Tasks without one raise a :class:`~fulcrum.errors.ConfigError` saying so."""
        from ..errors import ConfigError

        raise ConfigError(f"{self.name} models have no native engine in this Fulcrum; load them with engine='onnx' "
                          "(the default).")

    @abstractmethod
    def flops_per_prediction(self, manifest: Mapping[str, Any]) -> tuple[int, str]:
        """(FLOPs for one prediction, how they were counted) for the cost ledger."""


def read_source(manifest: Mapping[str, Any], data: Any = None) -> tuple[pd.DataFrame, str]:
    """(table, its name) from ``data`` or the package's recorded data source, with one clear error when
    neither can be read again."""
    from ..data import read_table
    from ..errors import DataError

    if isinstance(data, pd.DataFrame):
        return data, "the given table"
    source = data if data is not None else (manifest.get("data") or {}).get("source")
    if source is None or (isinstance(source, str) and source in ("dataframe", "estimator")):
        raise DataError(
            "This model was trained from an in-memory DataFrame, so its training data cannot be re-read; pass the "
            "same table (Python: data=frame; CLI: --data FILE) to calibrate, fine-tune and score variants."
        )
    if isinstance(source, str) and not source.startswith("builtin:") and not Path(source).exists():
        raise DataError(
            f"The training data {source!r} recorded in the package no longer exists; pass the same table with "
            f"--data FILE (Python: data=...) to calibrate, fine-tune and score variants."
        )
    return read_table(source), str(source)
