"""The generic batcher on its own: batches form, results route back, limits hold."""

from __future__ import annotations

import asyncio
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


def test_queue_bound_deadline_and_cancellation():
    computed: list[int] = []

    def slow(xs):
        time.sleep(0.2)
        computed.extend(xs)
        return xs

    async def go():
        b = Batcher(slow, BatchSpec(max_batch_size=1, max_queue=3, timeout_s=0.3))
        await b.start()
        tasks = [asyncio.create_task(b.submit(i)) for i in range(6)]
        await asyncio.sleep(0)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await b.stop()
        return results, b.stats

    results, stats = _run(go())
    statuses = [r.http_status if isinstance(r, ServeError) else 200 for r in results]
    assert statuses.count(503) == 3  # 3 queued, the rest refused at once
    assert 504 in statuses and statuses.count(200) >= 1
    assert 1 not in computed or 2 not in computed  # those that waited past the deadline never ran

    async def cancel_while_waiting():
        b = Batcher(slow, BatchSpec(max_batch_size=1, timeout_s=5))
        await b.start()
        first = asyncio.create_task(b.submit(100))
        await asyncio.sleep(0.05)  # computing now
        second = asyncio.create_task(b.submit(101))
        await asyncio.sleep(0.01)
        second.cancel()  # the caller went away while waiting
        await asyncio.gather(first, second, return_exceptions=True)
        await b.stop()
        return b.stats

    stats = _run(cancel_while_waiting())
    assert 100 in computed and 101 not in computed and stats.dropped == 1
    with pytest.raises(ServeError) as info:
        _run(_closed())
    assert info.value.http_status == 503


async def _closed():
    b = Batcher(lambda xs: xs, BatchSpec())
    await b.start()
    await b.stop()
    await b.submit(1)


def test_disconnected_items_are_dropped_before_computing(monkeypatch):
    monkeypatch.setattr("fulcrum.runtime._batcher._ALIVE_AFTER_S", 0.0)
    computed: list[int] = []

    def run(xs):
        computed.extend(xs)
        return xs

    async def gone() -> bool:
        return False

    async def go():
        b = Batcher(run, BatchSpec())
        await b.start()
        r = await asyncio.gather(b.submit(1, alive=gone), b.submit(2), return_exceptions=True)
        await b.stop()
        return r, b.stats

    (first, second), stats = _run(go())
    assert isinstance(first, asyncio.CancelledError) and second == 2 and computed == [2] and stats.dropped == 1


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
    import threading

    def run(fn):
        async def go():
            b = Batcher(fn, BatchSpec(max_batch_size=4, max_latency_ms=1))
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
        time.sleep(0.002)
        return [x * 2 for x in xs]

    st = run(cheap)
    assert threads[0] != loop_thread  # measured first, in the worker thread
    assert st.inline >= 18 and threads[-1] == loop_thread and 0 <= st.ewma_compute_s < 100e-6
    st = run(slow)
    assert st.inline == 0 and st.ewma_compute_s >= 0.002
