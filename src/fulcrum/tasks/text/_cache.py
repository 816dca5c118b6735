"""Frozen-encoder embeddings, computed once per text and cached on disk by content hash.

Layout: ``$FULCRUM_HOME/cache/text-embeddings/<sha of encoder id>/<shard>.safetensors`` (or under
``$FULCRUM_CACHE_DIR`` when set), each shard holding ``keys`` (n, 16) uint8 — the first 16 bytes of
sha256(encoder id, NUL, text) — and ``emb`` (n, 384) float32. Shards are written atomically
(temporary file + rename) and read with safetensors, never pickle; a shard that cannot be read is
skipped (its texts are embedded again). Keys are raw bytes, not numpy ``S16`` (which drops trailing
NUL bytes).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

__all__ = ["EmbeddingCache", "cache_root"]


def cache_root() -> Path:
    """``$FULCRUM_CACHE_DIR`` or ``$FULCRUM_HOME/cache`` (``~/.fulcrum/cache``)."""
    explicit = os.environ.get("FULCRUM_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    return Path(os.environ.get("FULCRUM_HOME") or "~/.fulcrum").expanduser() / "cache"


def _key(prefix: bytes, text: str) -> bytes:
    return hashlib.sha256(prefix + text.encode("utf-8", "surrogatepass")).digest()[:16]


class EmbeddingCache:
    """``get(texts)`` returns their embeddings, computing (with ``compute``) only the texts not cached.

    ``compute(texts) -> (n, dim) float32`` runs only for new texts; ``last_new_`` and ``last_seconds_``
    tell how many were computed by the last call and how long it took.
    """

    def __init__(self, encoder_id: str, compute: Callable[[list[str]], np.ndarray], *, dim: int = 384,
                 root: str | os.PathLike[str] | None = None) -> None:
        self.encoder_id = encoder_id
        self.compute = compute
        self.dim = dim
        self.dir = Path(root) if root is not None else cache_root() / "text-embeddings" / hashlib.sha256(
            encoder_id.encode()).hexdigest()[:16]
        self._prefix = encoder_id.encode() + b"\0"
        self._rows: dict[bytes, np.ndarray] = {}
        self._seen: set[str] = set()
        self.last_new_ = 0
        self.last_seconds_ = 0.0

    def _load_shards(self) -> None:
        from safetensors.numpy import load_file

        if not self.dir.is_dir():
            return
        for shard in sorted(self.dir.glob("*.safetensors")):
            if shard.name in self._seen:
                continue
            self._seen.add(shard.name)
            try:
                data = load_file(str(shard))
                keys, emb = data["keys"], data["emb"]
                if keys.ndim != 2 or keys.shape[1] != 16 or emb.shape != (keys.shape[0], self.dim):
                    continue
            except Exception:  # a torn or foreign file: those texts are embedded again
                continue
            for k, row in zip(keys, emb):
                self._rows[k.tobytes()] = row

    def missing(self, texts: Sequence[str]) -> list[str]:
        """The distinct texts of ``texts`` that are not cached yet."""
        self._load_shards()
        out: dict[bytes, str] = {}
        for t in texts:
            k = _key(self._prefix, t)
            if k not in self._rows:
                out.setdefault(k, t)
        return list(out.values())

    def get(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        t0 = time.perf_counter()
        todo = self.missing(texts)
        if todo:
            emb = np.asarray(self.compute(todo), dtype=np.float32)
            keys = np.frombuffer(b"".join(_key(self._prefix, t) for t in todo), dtype=np.uint8).reshape(-1, 16)
            self._write(keys, emb)
            for k, row in zip(keys, emb):
                self._rows[k.tobytes()] = row
        self.last_new_ = len(todo)
        self.last_seconds_ = time.perf_counter() - t0
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._rows[_key(self._prefix, t)] for t in texts])

    def _write(self, keys: np.ndarray, emb: np.ndarray) -> None:
        from safetensors.numpy import save_file

        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"{int(time.time() * 1000):013d}-{uuid.uuid4().hex[:8]}.safetensors"
        fd, tmp = tempfile.mkstemp(prefix=".shard-", dir=self.dir)
        os.close(fd)
        try:
            save_file({"keys": np.ascontiguousarray(keys), "emb": np.ascontiguousarray(emb)}, tmp,
                      metadata={"encoder": self.encoder_id})
            os.replace(tmp, self.dir / name)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        self._seen.add(name)
