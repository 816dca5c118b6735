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

    def put(self, model: Any, request_id: str, cols: dict[str, np.ndarray], n: int, result: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait((model, request_id, cols, n, result))
        except queue.Full:
            self.dropped += 1

    def drain(self) -> None:
        """Block until everything queued so far is written (feedback may refer to it)."""
        self._queue.join()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                self._write(*item)
            except Exception:  # noqa: BLE001 - recording must never break serving
                log.exception("could not record a prediction for feedback")
            finally:
                self._queue.task_done()

    def _write(self, model: Any, request_id: str, cols: dict[str, np.ndarray], n: int, result: dict[str, Any]) -> None:
        names = list(cols)
        values = [cols[c].tolist() for c in names]
        inputs = [{c: _plain(v[i]) for c, v in zip(names, values)} for i in range(n)]
        if "probabilities" in result:
            probs = np.asarray(result["probabilities"], dtype=np.float64)
            best = probs.argmax(axis=1).tolist()
            outputs: list[Any] = [
                {model.label_output: model.labels[b], **{f"proba_{lab}": float(p) for lab, p in zip(model.labels, row)}}
                for b, row in zip(best, probs.tolist())
            ]
        else:
            outputs = [{model.output_names[0]: float(v)} for v in np.asarray(result["value"]).tolist()]
        self.store.record(model.name, model.version, request_id, inputs, outputs)

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=30)
        self.store.close()


def _plain(v: Any) -> Any:
    if isinstance(v, float) and v != v:  # NaN stands for a missing value
        return None
    return v
