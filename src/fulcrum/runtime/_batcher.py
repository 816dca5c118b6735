"""A generic adaptive batcher: concurrent requests in, one computation per batch, answers out.

The second serving layer; it knows nothing about HTTP or models. ``submit`` queues a payload
and awaits its result; a worker task takes what is queued (up to ``max_batch_size`` rows),
runs ``run_batch(payloads) -> results`` in a thread, and answers each request on its own.

Adaptive: when the worker is free it does not sleep ``max_latency_ms`` hoping for company. It
keeps yielding to the event loop only while new requests keep arriving, at most until the
oldest has waited ``max_latency_ms``. An idle server therefore adds no delay, and a busy one
fills its batches from the requests that arrived while the previous batch computed.

Cheap models skip the thread: once the measured compute time of a batch (timed inside the call,
an exponential average) is below ``inline_below_s`` (100 us by default), batches run inline on
the event loop, where a hop to the worker thread and back would cost more than the computation.
A batch that then measures slower moves the average back up and the next batches return to the
thread, so a slow model never blocks the loop for long.

Overload is refused at the door, never paid for later. The batcher measures how long one batch
cycle takes while it is busy (from one answered batch to the next: computing, and everything
else the event loop does meanwhile, HTTP included) and admits a request only if the batches
ahead of it (queued rows / ``max_batch_size``) would be done within half its deadline, and
fewer than ``max_queue`` requests wait. Anything else is 503 with Retry-After
at once (:meth:`admit` can be asked before a request is even parsed), so the queue never holds
more than can be answered in time and admitted work keeps the full throughput.

Deadlines: a request not answered by its deadline gets 504 then; if its batch had not started,
it is never computed (checked again when the batch is formed). A caller that went away (its
task cancelled, or ``alive()`` says no) is dropped when its batch is formed, and never computed.
``alive`` is a plain function (say, a flag the HTTP server sets when the client disconnects),
asked once per request when its batch forms, so asking costs no event-loop turn.
"""

from __future__ import annotations

import asyncio
import collections
import math
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Generic, Sequence, TypeVar

import dataclasses

from ..config import config_from_dict
from ..errors import ConfigError, ServeError

__all__ = ["Batcher", "BatchStats"]

P = TypeVar("P")
R = TypeVar("R")

# Event-loop turns without a new arrival after which a gathering batch stops waiting. A request
# needs a few turns from its bytes arriving to reaching submit(); three is enough on uvicorn.
_QUIET_TURNS = 3
# A request is admitted only if, at the measured batch cycle, it would be computed within this
# share of its deadline (the rest is margin for HTTP, estimation error and bursts).
ADMIT_SHARE = 0.5
_CYCLE_ALPHA = 0.2  # weight of the newest batch-cycle sample


@dataclasses.dataclass
class BatchSpec:
    """How one model's requests are gathered into batches.

    max_batch_size  most rows computed together (1 turns batching off)
    max_latency_ms  longest a request waits for others to join its batch; the batcher only waits
                    while requests keep arriving, so an idle server adds no delay
    max_queue       most requests waiting per model; beyond it, 503 with Retry-After at once (so is
                    a request that would wait past half its deadline at the measured batch cycle)
    timeout_s       request deadline: a request not answered by then gets 504 (and is not computed
                    if it had not started)
    concurrency     batches computed at the same time for this model (threads)
    """

    max_batch_size: int = 64
    max_latency_ms: float = 5.0
    max_queue: int = 1024
    timeout_s: float = 10.0
    concurrency: int = 1

    def __post_init__(self) -> None:
        for key in ("max_batch_size", "max_queue", "concurrency"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"BatchSpec.{key} must be an integer >= 1, got {value!r}.")
        for key in ("max_latency_ms", "timeout_s"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"BatchSpec.{key} must be a number >= 0, got {value!r}.")
        if self.timeout_s == 0:
            raise ConfigError("BatchSpec.timeout_s must be > 0 (seconds before a request is answered 504).")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BatchSpec:
        return config_from_dict(cls, data)


class BatchStats:
    """Running totals a batcher keeps (read by metrics and the usage ledger)."""

    __slots__ = ("batches", "rows", "requests", "compute_s", "expired", "dropped", "rejected", "ewma_batch_s",
                 "ewma_compute_s", "inline", "cycle_s")

    def __init__(self) -> None:
        self.batches = self.rows = self.requests = self.expired = self.dropped = self.rejected = 0
        self.inline = 0  # batches run on the event loop (cheap model)
        self.compute_s = 0.0
        self.ewma_batch_s = 0.0  # submit-to-results time per batch (thread hop included)
        self.ewma_compute_s = -1.0  # the batch function alone, per batch; -1 until measured
        self.cycle_s = 0.0  # seconds from one answered batch to the next while busy (EWMA); 0 until measured


class _Item:
    __slots__ = ("payload", "rows", "future", "timer", "alive", "enqueued", "deadline")

    def __init__(self, payload: Any, rows: int, future: asyncio.Future[Any], alive: Any, enqueued: float,
                 deadline: float) -> None:
        self.payload = payload
        self.rows = rows
        self.future = future
        self.alive = alive
        self.enqueued = enqueued
        self.deadline = deadline
        self.timer: asyncio.TimerHandle | None = None


class Batcher(Generic[P, R]):
    """Gathers concurrent ``submit`` calls into batches for ``run_batch``.

    >>> batcher = Batcher(lambda xs: [x * 2 for x in xs], BatchSpec(max_batch_size=32))
    >>> await batcher.start(); await batcher.submit(21)
    42

    ``on_batch(n_requests, n_rows, compute_seconds)`` is called on the event loop after each
    batch; ``run_batch`` runs in a worker thread (inline on the loop once it measures cheaper than
    ``inline_below_s``; 0 turns that off) and must return one result per payload.
    """

    def __init__(
        self,
        run_batch: Callable[[list[P]], Sequence[R]],
        spec: BatchSpec | None = None,
        *,
        name: str = "batcher",
        on_batch: Callable[[int, int, float], None] | None = None,
        inline_below_s: float = 100e-6,
    ) -> None:
        self.run_batch = run_batch
        self.inline_below_s = inline_below_s
        self.spec = spec or BatchSpec()
        self.name = name
        self.on_batch = on_batch
        self.stats = BatchStats()
        self._queue: collections.deque[_Item] = collections.deque()
        self._wakeup: asyncio.Future[None] | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queued_rows = 0  # rows of the requests in _queue
        self._inflight_rows = 0  # rows of the batches computing now

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(self.spec.concurrency, thread_name_prefix=f"batch-{self.name}")
        self._workers = [asyncio.create_task(self._work(), name=f"batcher-{self.name}") for _ in range(self.spec.concurrency)]

    async def stop(self, *, drain: bool = True) -> None:
        """Stop accepting; answer what is queued (``drain``) or fail it with 503; end the workers."""
        self._closing = True
        if not drain:
            while self._queue:
                item = self._queue.popleft()
                self._queued_rows -= item.rows
                self._finish(item, error=ServeError(f"Model {self.name} is shutting down; retry.", 503, {"Retry-After": "1"}))
        self._wake()
        if self._workers:
            await asyncio.gather(*self._workers, return_exceptions=True)
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    @property
    def depth(self) -> int:
        """Requests waiting (not yet in a computing batch)."""
        return len(self._queue)

    @property
    def closed(self) -> bool:
        return self._closing

    # -- submitting ----------------------------------------------------------

    def _waiting_rows(self) -> int:
        return self._queued_rows + self._inflight_rows

    def _wait_s(self, rows: int = 0) -> float:
        """Seconds until ``rows`` more rows, queued now, would be answered: the batches ahead of
        them (all workers together) times the measured cycle; 0 until a cycle was measured."""
        batches = math.ceil((self._waiting_rows() + rows) / (self.spec.max_batch_size * self.spec.concurrency))
        return batches * self.stats.cycle_s

    def retry_after(self) -> int:
        """Whole seconds after which the queue has likely drained (HTTP Retry-After, at least 1)."""
        if self.stats.cycle_s > 0:
            return max(1, math.ceil(self._wait_s()))
        per_batch = self.stats.ewma_batch_s or 0.01
        batches = self._waiting_rows() / max(1, self.spec.max_batch_size) / max(1, self.spec.concurrency)
        return max(1, math.ceil(batches * per_batch))

    def admit(self, rows: int = 1, timeout: float | None = None) -> None:
        """Raise ServeError 503 (with Retry-After) if ``rows`` more rows would not be admitted now:
        the batcher is stopping, ``max_queue`` requests wait, or at the measured batch cycle they
        would wait past half of ``timeout`` (the spec's deadline by default). Costs a few
        comparisons: ask it before parsing a request, so refusing one is cheap."""
        if self._closing or self._loop is None:
            raise ServeError(f"Model {self.name} is not accepting requests; retry.", 503, {"Retry-After": "1"})
        queued = len(self._queue)
        if queued >= self.spec.max_queue:
            self._refuse(f"{queued} requests queued")
        if not self._waiting_rows():
            return  # nothing ahead: an idle worker starts it at once (and measures the cycle anew)
        wait = self._wait_s(rows)
        if wait > (self.spec.timeout_s if timeout is None else timeout) * ADMIT_SHARE:
            self._refuse(f"{self._waiting_rows()} rows ahead, about {wait:.2g} s at {self.stats.cycle_s * 1e3:.3g} ms "
                         "per batch")

    def _refuse(self, why: str) -> None:
        self.stats.rejected += 1
        raise ServeError(
            f"Model {self.name} is overloaded ({why}); retry later.", 503, {"Retry-After": str(self.retry_after())}
        )

    async def submit(
        self,
        payload: P,
        rows: int = 1,
        *,
        timeout: float | None = None,
        alive: Callable[[], bool] | None = None,
    ) -> R:
        """Queue ``payload`` (``rows`` rows) and await its result, within ``timeout`` seconds (the
        spec's ``timeout_s`` by default). ``alive``: a plain function that says whether the caller
        still wants the answer, asked once when the batch is formed.

        Raises ServeError 503 (not admitted, see :meth:`admit`), 504 (deadline passed), 499 (the
        caller went away) or whatever ``run_batch`` raised for the batch this payload was in.
        """
        self.admit(rows, timeout)
        loop = self._loop
        assert loop is not None
        now = loop.time()
        future: asyncio.Future[R] = loop.create_future()
        deadline = now + (self.spec.timeout_s if timeout is None else timeout)
        item = _Item(payload, rows, future, alive, now, deadline)
        item.timer = loop.call_at(deadline, self._expire, item)
        self._queue.append(item)
        self._queued_rows += rows
        self._wake()
        try:
            return await future
        finally:
            item.timer.cancel()

    def _expire(self, item: _Item) -> None:
        if not item.future.done():
            self.stats.expired += 1
            item.future.set_exception(
                ServeError(
                    f"Model {self.name}: request deadline of {item.deadline - item.enqueued:.3g} s passed before an "
                    "answer; retry, or send fewer rows.",
                    504,
                )
            )

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    # -- working -------------------------------------------------------------

    async def _gather(self) -> None:
        """Wait (yielding to the loop) while requests keep arriving, up to max_latency_ms."""
        assert self._loop is not None
        limit = self._queue[0].enqueued + self.spec.max_latency_ms / 1000.0
        quiet = 0
        while quiet < _QUIET_TURNS and self._loop.time() < limit:
            if self._queued_rows >= self.spec.max_batch_size:
                return
            seen = len(self._queue)
            await asyncio.sleep(0)
            quiet = quiet + 1 if len(self._queue) == seen else 0

    def _take(self, now: float) -> list[_Item]:
        """The next batch, oldest first. On the way, requests already answered (expired,
        cancelled), past their deadline, or whose caller went away are removed, never computed."""
        batch: list[_Item] = []
        rows = 0
        queue = self._queue
        st = self.stats
        while queue:
            item = queue[0]
            if batch and rows + item.rows > self.spec.max_batch_size and not item.future.done():
                break
            queue.popleft()
            self._queued_rows -= item.rows
            if item.future.done():  # expired or cancelled while waiting
                if item.future.cancelled():
                    st.dropped += 1
                continue
            if item.deadline <= now:  # its timer has not run yet: the loop is busy
                self._expire(item)
                continue
            if item.alive is not None and not self._alive(item):
                st.dropped += 1
                item.future.set_exception(ServeError("Client disconnected before its answer.", 499))
                continue
            batch.append(item)
            rows += item.rows
        return batch

    @staticmethod
    def _alive(item: _Item) -> bool:
        try:
            return bool(item.alive())
        except Exception:  # noqa: BLE001 - cannot tell: compute it
            return True

    async def _work(self) -> None:
        assert self._loop is not None and self._executor is not None
        loop = self._loop
        st = self.stats
        last_end = 0.0  # when this worker last answered a batch
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup = loop.create_future()
                await self._wakeup
                continue
            if self.spec.max_batch_size > 1 and self.spec.max_latency_ms > 0:
                await self._gather()
            batch = self._take(loop.time())
            if not batch:
                continue
            payloads = [item.payload for item in batch]
            rows = sum(item.rows for item in batch)
            self._inflight_rows += rows
            start = time.perf_counter()
            try:
                if 0.0 <= st.ewma_compute_s < self.inline_below_s:
                    st.inline += 1
                    results, compute = self._call(payloads)
                else:
                    results, compute = await loop.run_in_executor(self._executor, self._call, payloads)
            except Exception as exc:  # noqa: BLE001 - every request in the batch gets the batch's error
                for item in batch:
                    self._finish(item, error=exc)
                results = None
                compute = time.perf_counter() - start
            finally:
                self._inflight_rows -= rows
            elapsed = time.perf_counter() - start
            if results is not None:
                for item, result in zip(batch, results):
                    self._finish(item, result=result)
            # the batch cycle: from this worker's previous answer (or, if it was idle since, from
            # the arrival of this batch's oldest request) to this answer, everything on the loop
            # included; what admission multiplies by the batches ahead of a newcomer
            end = loop.time()
            cycle = end - max(last_end, batch[0].enqueued)
            last_end = end
            st.cycle_s = cycle if st.cycle_s == 0 else (1 - _CYCLE_ALPHA) * st.cycle_s + _CYCLE_ALPHA * cycle
            st.batches += 1
            st.rows += rows
            st.requests += len(batch)
            st.compute_s += compute
            st.ewma_batch_s = elapsed if st.ewma_batch_s == 0 else 0.8 * st.ewma_batch_s + 0.2 * elapsed
            st.ewma_compute_s = compute if st.ewma_compute_s < 0 else 0.8 * st.ewma_compute_s + 0.2 * compute
            if self.on_batch is not None:
                try:
                    self.on_batch(len(batch), rows, compute)
                except Exception:  # noqa: BLE001 - metrics must never break serving
                    pass

    def _call(self, payloads: list[P]) -> tuple[Sequence[R], float]:
        start = time.perf_counter()
        results = self.run_batch(payloads)
        if len(results) != len(payloads):
            raise ServeError(f"Batch function of {self.name} returned {len(results)} results for {len(payloads)} inputs.")
        return results, time.perf_counter() - start

    @staticmethod
    def _finish(item: _Item, *, result: Any = None, error: BaseException | None = None) -> None:
        if item.future.done():
            return
        if error is not None:
            item.future.set_exception(error)
        else:
            item.future.set_result(result)
