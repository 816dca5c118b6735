"""TextTask: text classification from raw strings, behind the task contract (tasks/_base.py)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Sequence

import pandas as pd

from .._base import InputCodec, InputField, ReadJson, Task, Trained, VariantKind
from ._codec import TextCodec
from ._config import TextConfig
from ._data import DEFAULT_MAX_CHARS, text_columns

__all__ = ["TextTask"]

MAX_OTHER_COLUMNS = 3  # a table with a text column and at most this many other inputs is a text table


class TextTask(Task):
    """Text classification: a free-text column and a label -> label, class probabilities, OOD score.

    Models: ``ngram`` (n-gram TF-IDF + logistic regression, from scratch), ``minilm`` (all-MiniLM-L6-v2,
    frozen embeddings + head, or fine-tuned end to end), ``ensemble`` (both, one graph). The package's
    ``model.onnx`` takes ``text`` (N, 1) strings and holds the tokenizer; it runs with onnxruntime +
    onnxruntime-extensions.
    """

    name: ClassVar[str] = "text"
    summary: ClassVar[str] = ("text classification from raw strings: n-gram TF-IDF + logistic regression, MiniLM "
                              "(frozen or fine-tuned) or both in one graph")
    kinds: ClassVar[tuple[str, ...]] = ("classification",)
    config_class: ClassVar[type | None] = TextConfig

    def example(self) -> Any:
        """200 BBC News articles (40 per topic) and the n-gram model: trains in a few seconds."""
        from .._base import TaskExample
        from ...data import load_builtin

        frame = load_builtin("bbc_news")
        frame = pd.concat([g.sample(40, random_state=0) for _, g in frame.groupby("label")])
        return TaskExample(frame.sample(frac=1.0, random_state=0).reset_index(drop=True), "label", {"model": "ngram"},
                           "builtin:bbc_news (200 articles), n-gram model")

    # ------------------------------------------------------------------ training side

    def detect(self, frame: pd.DataFrame, target: str | None) -> str | None:
        found = text_columns(frame, target)
        if not found:
            return None
        others = [c for c in frame.columns if c != target and c != found[0].name]
        if len(others) > MAX_OTHER_COLUMNS:
            return None  # a table with a comment column: the tabular task's bag of words serves it
        return found[0].reason()

    def fit(self, frame: pd.DataFrame, config: Any, *, source: str = "dataframe", callbacks: Sequence[Any] = (),
            checkpoint_dir: str | Path | None = None, log: Callable[[str], None] | None = None) -> Trained:
        from ._fit import fit_text

        return fit_text(frame, config, source=source, callbacks=callbacks, checkpoint_dir=checkpoint_dir, log=log)

    def splits(self, package: Any, data: Any = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        from ._variants import recreate_splits

        return recreate_splits(package, data)

    # ------------------------------------------------------------------ inference side

    def input_codec(self, manifest: Mapping[str, Any], read_json: ReadJson) -> InputCodec:
        return TextCodec(_max_chars(manifest), manifest["task"].get("text_column"))

    def request_schema(self, manifest: Mapping[str, Any]) -> list[InputField]:
        column = manifest["task"].get("text_column")
        other = column if column and column != "text" else None
        alias = f" (records may name it {other!r}, the training table's column, too)" if other else ""
        limits: dict[str, Any] = {"max_chars": _max_chars(manifest)}
        if other:
            limits["aliases"] = [other]  # the server's record schema accepts either name, as the codec does
        return [InputField("text", "text", ("BYTES",), description=(
            f"the text to classify: a non-empty UTF-8 string without NUL, at most {_max_chars(manifest)} characters{alias}"),
            limits=limits)]

    def shorthand(self, manifest: Mapping[str, Any]) -> tuple[str, str] | None:
        return ("texts", "text")

    def variant_kinds(self, manifest: Mapping[str, Any]) -> tuple[list[VariantKind], dict[str, str]]:
        from ._variants import variant_kinds

        return variant_kinds(manifest)

    def build_variant(self, kind: str, params: Mapping[str, Any], package: Any, context: Any) -> tuple[bytes, dict[str, bytes], dict[str, Any]]:
        from ._variants import build_variant

        return build_variant(kind, params, package, context)

    def has_native_engine(self, manifest: Mapping[str, Any]) -> bool:
        return (manifest.get("model") or {}).get("family") == "minilm"

    def native_predictor(self, package: Any) -> Any:
        from ._native import native_predictor

        return native_predictor(package)

    def flops_per_prediction(self, manifest: Mapping[str, Any]) -> tuple[int, str]:
        m = manifest["model"]
        k = len(manifest["task"]["labels"])
        total, how = 0, []
        if m["family"] != "ngram":
            enc = m.get("encoder") or {}
            tokens = int(round(enc.get("mean_tokens") or m.get("max_length") or 128))
            tokens = min(tokens, int(m.get("max_length") or tokens))
            total += _encoder_flops(int(enc.get("layers", 6)), tokens) + 2 * 384 * k
            how.append(f"torch FlopCounterMode on the {enc.get('layers', 6)}-layer encoder at the mean training length "
                       f"({tokens} tokens) + head")
        if m["family"] != "minilm":
            ng = m.get("ngram") or {}
            total += 2 * (int(ng.get("word_features", 0)) + int(ng.get("char_features", 0))) * (k + 1)
            how.append("n-gram MatMul 2 x features x (classes + 1)")
        return int(total), "; ".join(how)


def _max_chars(manifest: Mapping[str, Any]) -> int:
    for item in manifest.get("inputs") or []:
        limit = (item.get("limits") or {}).get("max_chars")
        if limit:
            return int(limit)
    return DEFAULT_MAX_CHARS


@lru_cache(maxsize=16)
def _encoder_flops(layers: int, tokens: int) -> int:
    from ._fit import encoder_flops
    from ._minilm import MiniLM, model_config

    return encoder_flops(MiniLM(model_config(layers)), tokens)
