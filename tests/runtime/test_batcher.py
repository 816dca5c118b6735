"""The generic batcher on its own: batches form, results route back, limits hold."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from fulcrum.errors import ServeError
from fulcrum.runtime import Batcher, BatchSpec
from fulcrum.serve import RateLimiter


def _run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_share_batches_and_get_their_own_answers():
    sizes: list[int] = []

    def double(xs):
        time.sleep(0.01)
        sizes.append(len(xs))
        return [x * 2 for x in xs]

    async def go():
        b = Batcher(double, BatchSpec(max_batch_size=16, max_latency_ms=20))
        await b.start()
        out = await asyncio.gather(*(b.submit(i) for i in range(50)))
        await b.stop()
        return out, b.stats

    out, stats = _run(go())
    assert out == [2 * i for i in range(50)]
    assert max(sizes) == 16 and len(sizes) < 10 and stats.rows == 50 and stats.batches == len(sizes)


def test_rows_bound_the_batch_and_a_large_request_runs_alone():
    seen: list[int] = []

    def run(xs):
        seen.append(sum(xs))
        return xs

    async def go():
        b = Batcher(run, BatchSpec(max_batch_size=4, max_latency_ms=10))
        await b.start()
        await asyncio.gather(b.submit(3, rows=3), b.submit(3, rows=3), b.submit(10, rows=10))
        await b.stop()

    _run(go())
    assert sorted(seen) == [3, 3, 10]


def test_errors_reach_every_request_of_the_batch():
    def boom(xs):
        raise ValueError("bad batch")

    async def go():
        b = Batcher(boom, BatchSpec())
        await b.start()
        results = await asyncio.gather(b.submit(1), b.submit(2), return_exceptions=True)
        await b.stop()
        return results

    assert all(isinstance(r, ValueError) for r in _run(go()))


class Gate:
    """A batch function that records what it computed and blocks while the gate is closed, so a
    test orders events (computing, waiting, expiring) without sleeping and guessing."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.started = threading.Event()
        self.computed: list[int] = []

    def __call__(self, xs):
        self.started.set()
        assert self.open.wait(30), "the test never opened the gate"
        self.computed.extend(xs)
        return xs


async def _started(gate: Gate) -> None:
    assert await asyncio.to_thread(gate.started.wait, 30)


def _status(r) -> int:
    return r.http_status if isinstance(r, ServeError) else 200


def test_a_full_queue_is_503_at_once_and_never_computed():
    gate = Gate()

    async def go():
        b = Batcher(gate, BatchSpec(max_batch_size=1, max_queue=3, timeout_s=60))
        await b.start()
        first = asyncio.create_task(b.submit(0))
        await _started(gate)  # 0 is computing; the queue is empty
        queued = [asyncio.create_task(b.submit(i)) for i in (1, 2, 3)]
        await asyncio.sleep(0)
        refused = await asyncio.gather(*(b.submit(i) for i in (4, 5, 6)), return_exceptions=True)
        assert not gate.open.is_set()  # answered while the queue was still blocked
        gate.open.set()
        results = await asyncio.gather(first, *queued, return_exceptions=True)
        await b.stop()
        return refused, results, b.stats

    refused, results, stats = _run(go())
    assert [_status(r) for r in refused] == [503, 503, 503]
    assert all(int(r.headers["Retry-After"]) >= 1 for r in refused)
    assert results == [0, 1, 2, 3] and sorted(gate.computed) == [0, 1, 2, 3] and stats.rejected == 3


def test_deadline_is_504_and_an_expired_item_is_never_computed():
    gate = Gate()

    async def go():
        b = Batcher(gate, BatchSpec(max_batch_size=1, max_queue=50, timeout_s=60))
        await b.start()
        first = asyncio.create_task(b.submit(0))
        await _started(gate)
        # 1 and 2 wait behind the blocked batch until their deadlines pass: answered 504 then,
        # while the batch they waited for is still computing
        expired = await asyncio.gather(b.submit(1, timeout=0.05), b.submit(2, timeout=0.05), return_exceptions=True)
        assert not gate.open.is_set()
        gate.open.set()
        after = await b.submit(3)
        out = await first
        await b.stop()
        return expired, out, after, b.stats

    expired, out, after, stats = _run(go())
    assert [_status(r) for r in expired] == [504, 504] and out == 0 and after == 3
    assert gate.computed == [0, 3] and stats.expired == 2  # 1 and 2 were never computed


def test_a_cancelled_caller_is_dropped_before_computing():
    gate = Gate()

    async def go():
        b = Batcher(gate, BatchSpec(max_batch_size=1, timeout_s=60))
        await b.start()
        first = asyncio.create_task(b.submit(100))
        await _started(gate)
        second = asyncio.create_task(b.submit(101))
        await asyncio.sleep(0)
        second.cancel()  # the caller went away while waiting
        await asyncio.gather(second, return_exceptions=True)
        gate.open.set()
        await first
        await b.submit(102)
        await b.stop()
        return b.stats

    stats = _run(go())
    assert gate.computed == [100, 102] and stats.dropped == 1
    with pytest.raises(ServeError) as info:
        _run(_closed())
    assert info.value.http_status == 503


async def _closed():
    b = Batcher(lambda xs: xs, BatchSpec())
    await b.start()
    await b.stop()
    await b.submit(1)


def test_disconnected_callers_are_dropped_when_their_batch_forms():
    gate = Gate()
    asked: dict[int, int] = {}

    def alive(i: int, answer: bool):
        def check() -> bool:  # a plain function: asking costs no event-loop turn
            asked[i] = asked.get(i, 0) + 1
            return answer
        return check

    async def go():
        b = Batcher(gate, BatchSpec(max_batch_size=4, max_latency_ms=0, timeout_s=60))
        await b.start()
        first = asyncio.create_task(b.submit(0))
        await _started(gate)
        waiting = [asyncio.create_task(b.submit(i, alive=alive(i, i % 2 == 0))) for i in range(1, 5)]
        for _ in range(20):
            await asyncio.sleep(0)  # many loop turns while they wait: no checks then
        assert asked == {}
        gate.open.set()
        await first
        results = await asyncio.gather(*waiting, return_exceptions=True)
        await b.stop()
        return results, b.stats

    results, stats = _run(go())
    assert [_status(r) for r in results] == [499, 200, 499, 200]
    assert gate.computed == [0, 2, 4] and stats.dropped == 2
    assert asked == {1: 1, 2: 1, 3: 1, 4: 1}  # asked once each, when the batch was formed


def test_admission_follows_the_measured_service_rate():
    # Requests that would wait past half their deadline at the rate the batcher measures are
    # refused at once (503), so that every admitted request is answered before its deadline.
    computed: list[int] = []

    def slow(xs):
        time.sleep(0.02)  # at most 50 rows/s: admission measures it
        computed.extend(xs)
        return xs

    async def go():
        b = Batcher(slow, BatchSpec(max_batch_size=1, max_queue=100_000, timeout_s=4.0))
        await b.start()
        for i in range(5):
            await b.submit(-i - 1)  # measured, one at a time
        results = await asyncio.gather(*(b.submit(i) for i in range(400)), return_exceptions=True)
        await b.stop()
        return results, b.stats

    results, stats = _run(go())
    statuses = [_status(r) for r in results]
    assert statuses.count(504) == 0  # nothing admitted was left to expire
    assert statuses.count(503) > 0 and statuses.count(200) >= 20
    assert sorted(i for i in computed if i >= 0) == [i for i, s in enumerate(statuses) if s == 200]
    assert stats.rejected == statuses.count(503)


def test_rate_limiter_token_bucket():
    lim = RateLimiter(2, burst=2)
    lim.take("k", now=0.0)
    lim.take("k", now=0.0)
    with pytest.raises(ServeError) as info:
        lim.take("k", now=0.1)
    assert info.value.http_status == 429 and info.value.headers["Retry-After"] == "1"
    lim.take("k", now=0.6)  # refilled one token
    lim.take("other", now=0.6)  # buckets are per identity
    assert not RateLimiter(0).enabled


def test_cheap_batches_run_inline_and_slow_ones_in_the_thread():
    def run(fn, inline_below_s):
        async def go():
            b = Batcher(fn, BatchSpec(max_batch_size=4, max_latency_ms=1), inline_below_s=inline_below_s)
            await b.start()
            for i in range(20):
                assert await b.submit(i) == 2 * i
            await b.stop()
            return b.stats

        return _run(go())

    loop_thread = threading.get_ident()
    threads: list[int] = []

    def cheap(xs):
        threads.append(threading.get_ident())
        return [x * 2 for x in xs]

    def slow(xs):
        time.sleep(0.002)  # always longer than the 1 ms threshold below
        return [x * 2 for x in xs]

    st = run(cheap, inline_below_s=10.0)  # anything measured under 10 s counts as cheap
    assert threads[0] != loop_thread  # measured first, in the worker thread
    assert st.inline == 19 and threads[-1] == loop_thread
    st = run(slow, inline_below_s=0.001)
    assert st.inline == 0
