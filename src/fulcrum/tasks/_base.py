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

The whole inference graph (``model.onnx``) goes from raw inputs to outputs, so the runtime
needs from a task only how to turn user values into that graph's feeds (an :class:`InputCodec`).

Outputs follow one convention so the runtime, server and CLI format them without knowing
the task: the manifest's ``outputs`` list names them and gives each a ``kind``:

``label``          (N,) class names               ``probabilities``  (N, K) class probabilities
``value``          (N,) or (N, H) numbers         ``ood_score``      (N,) out-of-scope score (optional)
``items``/``scores`` (N, k) top-k ids and scores  ``text``           (N,) strings (transcription)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Protocol, Sequence

import numpy as np
import pandas as pd

__all__ = ["Task", "Trained", "InputField", "InputCodec", "VariantKind"]

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


class Task(ABC):
    """One workload. Subclasses set ``name`` and ``summary`` and implement the abstract methods."""

    name: ClassVar[str]
    summary: ClassVar[str]
    #: prediction kinds this task trains (the manifest's task.kind)
    kinds: ClassVar[tuple[str, ...]] = ("classification", "regression")

    # ------------------------------------------------------------------ training side

    def detect(self, frame: pd.DataFrame, target: str | None) -> str | None:
        """Why this table is this task's kind of data (a sentence for the log), or None.

        ``fulcrum train`` asks every task but the fallback (tabular) in order; the first that
        answers wins, unless ``--task NAME`` forces one."""
        return None

    def read(self, source: Any, *, log: Callable[[str], None] | None = None) -> pd.DataFrame:
        """Read ``source`` (path, ``builtin:NAME`` or DataFrame) into a table; folders of files
        (images, audio) become a table of paths and labels here."""
        from ..data import read_table

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

    @abstractmethod
    def variant_kinds(self, manifest: Mapping[str, Any]) -> tuple[list[VariantKind], dict[str, str]]:
        """(the optimizations that apply, {kind: why not} for the ones that do not)."""

    def build_variant(self, kind: str, params: Mapping[str, Any], package: Any, context: Any) -> tuple[bytes, dict[str, bytes], dict[str, Any]]:
        """Build a task-specific variant: (model.onnx bytes, extra files, manifest notes)."""
        raise NotImplementedError(f"task {self.name!r} builds no variant {kind!r} itself")

    @abstractmethod
    def flops_per_prediction(self, manifest: Mapping[str, Any]) -> tuple[int, str]:
        """(FLOPs for one prediction, how they were counted) for the cost ledger."""
