"""Records served predictions for ground-truth feedback, off the request path.

Handlers ``put`` (model, request id, columns, outputs); one background thread turns them into
rows and writes them through :class:`FeedbackStore` into the serving-records database, in
batches (one transaction each), within the store's row and byte bounds. What is recorded
follows the :class:`RecordPolicy` (all, a random sample, or nothing). The queue is bounded in
requests and bytes: when the writer falls behind, new records are dropped and counted
(``dropped``) rather than slowing serving or growing memory.
"""

from __future__ import annotations

import collections
import logging
import random
import threading
from typing import Any

import numpy as np

from ._records import RecordPolicy

__all__ = ["Recorder"]

log = logging.getLogger("fulcrum.serve")

MAX_PENDING_BYTES = 64 << 20  # request bodies waiting to be written
MAX_WRITE_BYTES = 4 << 20  # per write transaction (keeps the write-ahead log small)


class Recorder:
    """``put`` appends to a deque (no lock, no thread wake-up per request); the writer thread wakes
    every ``interval_s`` or when ``batch`` records wait, and writes them in one store call."""

    def __init__(
        self,
        path: Any,
        *,
        registry: Any = None,
        policy: RecordPolicy | None = None,
        max_pending: int = 10_000,
        max_pending_bytes: int = MAX_PENDING_BYTES,
        interval_s: float = 0.05,
        batch: int = 512,
    ) -> None:
        from ._feedback import FeedbackStore

        self.policy = policy or RecordPolicy()
        self.store = FeedbackStore(path, registry=registry, max_rows=self.policy.max_rows,
                                   max_mb=self.policy.max_bytes / 1e6)
        self.dropped = 0
        self.max_pending = max_pending
        self.max_pending_bytes = max_pending_bytes
        self.interval_s = interval_s
        self.batch = batch
        self._rate = self.policy.rate
        self._random = random.Random()
        self._pending: collections.deque[Any] = collections.deque()
        self._bytes_in = 0  # bytes queued (written by the loop's thread only)
        self._bytes_out = 0  # bytes taken by the writer (written by the writer only)
        self._put = 0  # records accepted (only the event loop's thread puts)
        self._done = 0  # records written (or given up on) by the writer
        self._wake = threading.Event()
        self._written = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="fulcrum-feedback", daemon=True)
        self._thread.start()

    def put(self, model: Any, request_id: str, cols: dict[str, list[Any]], n: int, result: dict[str, Any],
            nbytes: int = 0) -> None:
        """Queue one answered request for recording (or skip it: sampled out, or the queue is full)."""
        if self._rate < 1.0 and self._random.random() >= self._rate:
            return
        pending = self._pending
        if len(pending) >= self.max_pending or self._bytes_in - self._bytes_out + nbytes > self.max_pending_bytes:
            self.dropped += 1
            return
        pending.append((model, request_id, cols, n, result, nbytes))
        self._bytes_in += nbytes
        self._put += 1
        if len(pending) == self.batch:
            self._wake.set()

    def drain(self) -> None:
        """Block until everything queued so far is written (feedback may refer to it)."""
        target = self._put
        with self._written:
            if self._done >= target:
                return
            self._wake.set()
            while self._done < target and self._thread.is_alive():
                self._written.wait(0.5)

    def _run(self) -> None:
        pending = self._pending
        while True:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            stop = self._stop
            while pending:
                items = []
                size = 0
                while pending and len(items) < self.batch and size < MAX_WRITE_BYTES:  # popleft is thread-safe
                    item = pending.popleft()
                    size += item[5]
                    items.append(item)
                self._bytes_out += size
                try:
                    self._write(items)
                except Exception:  # noqa: BLE001 - recording must never break serving
                    log.exception("could not record %d prediction(s) for feedback", len(items))
                finally:
                    with self._written:
                        self._done += len(items)
                        self._written.notify_all()
            if stop:
                return

    def _write(self, items: list[tuple[Any, str, dict[str, list[Any]], int, dict[str, Any], int]]) -> None:
        records = []
        for model, request_id, cols, n, result, _ in items:
            names = list(cols)
            values = [cols[c] for c in names]
            inputs = [{c: _plain(v[i]) for c, v in zip(names, values)} for i in range(n)]
            if "probabilities" in result:
                labels = model.labels
                outputs: list[Any] = [labels[b] for b in np.asarray(result["probabilities"]).argmax(axis=1).tolist()]
            elif "items" in result:  # a recommender: the row's top-k ids
                from ..runtime._predictor import top_lists

                outputs = top_lists(result["items"], result["scores"])[0]
            elif "text" in result:  # a transcriber: the row's text
                outputs = [t.decode("utf-8", errors="replace") if isinstance(t, bytes) else str(t)
                           for t in np.asarray(result["text"], dtype=object).reshape(-1).tolist()]
            else:
                outputs = [_plain(float(v)) for v in np.asarray(result["value"]).tolist()]
            records.append((model.name, model.version, request_id, inputs, outputs))
        self.store.record_many(records)  # one transaction for the lot

    def close(self) -> None:
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=30)
        self.store.close()


def _plain(v: Any) -> Any:
    if isinstance(v, float) and v != v:  # NaN stands for a missing value
        return None
    return v
