"""TabularTask: classification and regression on a table of columns, behind the task contract.

The fallback task: ``fulcrum train`` gives it every table no other task claims. Its package graph
takes one input per raw column (``[N, 1]``, typed by column kind: see ``_export``) and outputs
``probabilities`` (and ``label``, the class index) or ``value``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np
import pandas as pd

from ...config import TrainConfig
from .._base import InputCodec, InputField, ReadJson, Task, TaskExample, Trained, VariantKind

__all__ = ["TabularTask", "column_datatypes"]

_NUMERIC_V2 = ("FP32", "FP64", "FP16", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
_DESCRIBE = {
    "numeric": "a number (null or a blank string = missing, imputed by the model)",
    "boolean": "true/false (or 0/1, yes/no); null = missing",
    "categorical": "a category (string, number or boolean); null = missing, unseen categories are encoded as unknown",
    "text": "free text (bag of words); null = missing",
    "datetime": "a date or date-time as an ISO 8601 string; null = missing",
}


def column_datatypes(kind: str) -> tuple[str, ...]:
    """v2 datatypes accepted for a column of ``kind`` (the first is what the server advertises)."""
    if kind == "numeric":
        return _NUMERIC_V2
    if kind == "boolean":
        return ("BOOL",)
    return ("BYTES",)


class TabularTask(Task):
    """Tables: numeric, boolean, categorical, datetime and short-text columns -> a label or a number.

    Models: ``linear``, ``lightgbm``, ``mlp`` (``auto``: every one, the simplest within noise of the best).
    """

    name: ClassVar[str] = "tabular"
    summary: ClassVar[str] = ("classification and regression on a table of columns: linear, LightGBM or an MLP "
                              "(auto picks by cross-validation), preprocessing in the graph")
    kinds: ClassVar[tuple[str, ...]] = ("classification", "regression")

    config_class: ClassVar[type | None] = TrainConfig

    # ------------------------------------------------------------------ training side

    def detect(self, frame: pd.DataFrame, target: str | None) -> str | None:
        return "a table of columns"  # the fallback: asked last, takes every table

    def fit(self, frame: pd.DataFrame, config: Any, *, source: str = "dataframe", callbacks: Sequence[Any] = (),
            checkpoint_dir: str | Path | None = None, log: Callable[[str], None] | None = None) -> Trained:
        from ._fit import fit_tabular

        cfg = config if not isinstance(config, Mapping) else self.make_config(config)
        return fit_tabular(frame, cfg, source=source, callbacks=callbacks, checkpoint_dir=checkpoint_dir, log=log)

    def example(self) -> TaskExample:
        return TaskExample("builtin:iris", "target", {"model": "linear"}, "builtin:iris (150 rows, 3 classes)")

    def evaluate(self, manifest: Mapping[str, Any], truth: Sequence[Any], outputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        from ...data import LabelCodec
        from ._fit import evaluate_outputs

        kind = manifest["task"]["kind"]
        if kind == "classification":
            labels = list(manifest["task"]["labels"])
            y = LabelCodec().fit(labels).encode(list(truth))
            return evaluate_outputs(kind, y, _output(manifest, outputs, "probabilities"), len(labels))
        return evaluate_outputs(kind, np.asarray(truth, dtype=np.float64), _output(manifest, outputs, "value"), 0)

    def splits(self, package: Any, data: Any = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        import json

        from ...data import LabelCodec
        from ...errors import DataError

        train, val, test = super().splits(package, data)
        task = package.manifest["task"]
        if task["kind"] == "classification":
            frame = pd.concat([train, val, test], ignore_index=True)
            classes = LabelCodec().fit(frame[task["target"]]).classes_
            if json.loads(json.dumps(classes)) != task["labels"]:
                raise DataError(f"The data's classes {classes} differ from the model's {task['labels']}; pass the "
                                "training table.")
        return train, val, test

    # ------------------------------------------------------------------ inference side

    def input_codec(self, manifest: Mapping[str, Any], read_json: ReadJson) -> InputCodec:
        from ._codec import InputEncoder

        return InputEncoder(read_json("preprocess.json"))

    def request_schema(self, manifest: Mapping[str, Any]) -> list[InputField]:
        schema_cols = (manifest.get("schema") or {}).get("columns") or []
        tokens = {str(c["name"]): [str(t) for t in c["na_tokens"]] for c in schema_cols
                  if isinstance(c, dict) and c.get("na_tokens")}
        fields = []
        for c in manifest["inputs"]:
            name, kind = str(c["name"]), str(c.get("kind", "numeric"))
            limits = {"na_tokens": tokens[name]} if kind == "numeric" and name in tokens else {}
            fields.append(InputField(name, kind, column_datatypes(kind), required=True,
                                     description=_DESCRIBE.get(kind, ""), limits=limits))
        return fields

    def native_predictor(self, package: Any) -> Any:
        from ._native import TabularNative

        return TabularNative(package)

    def variant_kinds(self, manifest: Mapping[str, Any]) -> tuple[list[VariantKind], dict[str, str]]:
        from ._variants import variant_kinds

        return variant_kinds(manifest)

    def variant_ids(self, kind: VariantKind, options: Any) -> list[tuple[str, dict[str, Any]]]:
        from ._variants import variant_ids

        return variant_ids(kind, options)

    def variant_from_id(self, vid: str, kinds: Sequence[VariantKind]) -> tuple[str, dict[str, Any]] | None:
        from ._variants import variant_from_id

        return variant_from_id(vid, kinds)

    def build_variant(self, kind: str, params: Mapping[str, Any], package: Any, context: Any) -> tuple[bytes, dict[str, bytes], dict[str, Any]]:
        from ._variants import build_variant

        return build_variant(kind, params, package, context)

    def flops_per_prediction(self, manifest: Mapping[str, Any]) -> tuple[int, str]:
        from ._flops import tabular_flops

        return tabular_flops(manifest)  # type: ignore[return-value]


def _output(manifest: Mapping[str, Any], outputs: Mapping[str, np.ndarray], kind: str) -> np.ndarray:
    """The output of ``kind``, whether keyed by the graph's name or the manifest's."""
    if kind in outputs:
        return outputs[kind]
    for o in manifest.get("outputs") or []:
        if o.get("kind") == kind and o.get("name") in outputs:
            return outputs[o["name"]]
    return outputs[f"output:{kind}"]
