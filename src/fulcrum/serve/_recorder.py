"""Records served predictions for ground-truth feedback, off the request path.

Handlers ``put`` (model, request id, columns, outputs); one background thread turns them into
rows and writes them through :class:`FeedbackStore`. The queue is bounded: when the writer
falls behind, new records are dropped and counted (``dropped``) rather than slowing serving.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

import numpy as np

__all__ = ["Recorder"]

log = logging.getLogger("fulcrum.serve")
_STOP = object()


class Recorder:
    def __init__(self, registry: Any, *, max_pending: int = 10_000) -> None:
        from ._feedback import FeedbackStore

        self.store = FeedbackStore(registry)
        self.dropped = 0
        self._queue: queue.Queue[Any] = queue.Queue(max_pending)
        self._thread = threading.Thread(target=self._run, name="fulcrum-feedback", daemon=True)
        self._thread.start()

    def put(self, model: Any, request_id: str, cols: dict[str, list[Any]], n: int, result: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait((model, request_id, cols, n, result))
        except queue.Full:
            self.dropped += 1

    def drain(self) -> None:
        """Block until everything queued so far is written (feedback may refer to it)."""
        self._queue.join()

    def _run(self) -> None:
        while True:
            items = [self._queue.get()]
            while len(items) < 512:  # take what else is waiting: one store call for all of it
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(item is _STOP for item in items)
            try:
                self._write([item for item in items if item is not _STOP])
            except Exception:  # noqa: BLE001 - recording must never break serving
                log.exception("could not record %d prediction(s) for feedback", len(items))
            finally:
                for _ in items:
                    self._queue.task_done()
            if stop:
                return

    def _write(self, items: list[tuple[Any, str, dict[str, list[Any]], int, dict[str, Any]]]) -> None:
        records = []
        for model, request_id, cols, n, result in items:
            names = list(cols)
            values = [cols[c] for c in names]
            inputs = [{c: _plain(v[i]) for c, v in zip(names, values)} for i in range(n)]
            if "probabilities" in result:
                labels = model.labels
                outputs: list[Any] = [labels[b] for b in np.asarray(result["probabilities"]).argmax(axis=1).tolist()]
            else:
                outputs = [_plain(float(v)) for v in np.asarray(result["value"]).tolist()]
            records.append((model.name, model.version, request_id, inputs, outputs))
        bulk = getattr(self.store, "record_many", None)
        if bulk is not None:
            bulk(records)  # one transaction for the lot
            return
        for rec in records:
            self.store.record(*rec)

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=30)
        self.store.close()


def _plain(v: Any) -> Any:
    if isinstance(v, float) and v != v:  # NaN stands for a missing value
        return None
    return v
