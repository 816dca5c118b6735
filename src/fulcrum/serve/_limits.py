"""Request limits that are not about one model: per-key rate (token bucket) and body size."""

from __future__ import annotations

import collections
import math
import time

from ..errors import ServeError

__all__ = ["RateLimiter"]


class RateLimiter:
    """A token bucket per identity (API key id, or client address on an open server).

    ``rate`` tokens per second refill each bucket up to ``burst``; a request takes one token.
    An empty bucket answers 429 with Retry-After (whole seconds until the next token).
    At most ``max_buckets`` identities are remembered (least recently seen forgotten first),
    so a flood of addresses cannot grow memory without bound.
    """

    def __init__(self, rate: float, burst: int | None = None, *, max_buckets: int = 10_000) -> None:
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1, math.ceil(rate)))
        self.max_buckets = max_buckets
        self._buckets: collections.OrderedDict[str, tuple[float, float]] = collections.OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, identity: str, now: float | None = None) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(identity, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[identity] = (tokens, now)
            wait = math.ceil((1.0 - tokens) / self.rate)
            raise ServeError(
                f"Rate limit of {self.rate:g} requests/s exceeded; retry after {wait} s.",
                429,
                {"Retry-After": str(max(1, wait))},
            )
        self._buckets[identity] = (tokens - 1.0, now)
        while len(self._buckets) > self.max_buckets:
            self._buckets.popitem(last=False)
