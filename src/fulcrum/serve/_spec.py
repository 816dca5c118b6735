"""What a server is asked to do: the per-model batching spec and the server's settings.

The first of the three serving layers (spec, batcher, HTTP app). Both objects validate
themselves on construction and reject unknown keys, like every Fulcrum config.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

from ..config import config_from_dict
from ..errors import ConfigError
from ..runtime import BatchSpec

__all__ = ["BatchSpec", "ServeSettings", "is_loopback"]


@dataclasses.dataclass
class ServeSettings:
    """Everything ``fulcrum serve`` takes besides the model references.

    Limits: ``max_body_bytes`` (413), ``max_rows`` rows per request (413), ``rate_limit``
    requests per second per API key (or per client address when no keys exist; 0 = off) with
    bursts of ``rate_burst`` (429). Output hardening: ``top_k`` labels only, probabilities
    rounded to ``round_decimals``.

    Slow clients (see ``_timeouts``): a request's headers must arrive within
    ``header_timeout_s`` (else the connection closes), its body within ``body_timeout_s`` of
    the headers (else 408 and the connection closes), and an idle keep-alive connection is
    closed after ``keepalive_timeout_s``.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    registry: str | None = None
    enable_admin: bool = False
    insecure: bool = False
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    batch: BatchSpec = dataclasses.field(default_factory=BatchSpec)
    model_batch: dict[str, BatchSpec] = dataclasses.field(default_factory=dict)
    max_body_bytes: int = 1 << 20
    max_rows: int = 1024
    rate_limit: float = 0.0
    rate_burst: int | None = None
    top_k: int | None = None
    round_decimals: int | None = None
    poll_interval_s: float = 1.0
    usage_flush_s: float = 10.0
    access_log: bool = True
    log_level: str = "info"
    monitor: bool = True
    feedback: bool = True  # False: record nothing (same as record="none")
    ood_threshold: float | None = None
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    keepalive_timeout_s: float = 5.0
    records_db: str | None = None  # serving records; default <registry>.serving.sqlite (see serve/_records.py)
    record: str = "all"  # what is recorded of each request: "all", "sample:RATE" or "none"
    record_max_rows: int = 1_000_000
    record_max_mb: float = 256.0

    def __post_init__(self) -> None:
        if isinstance(self.batch, dict):
            self.batch = BatchSpec.from_dict(self.batch)
        self.model_batch = {
            k: (BatchSpec.from_dict(v) if isinstance(v, dict) else v) for k, v in dict(self.model_batch).items()
        }
        from ._records import RecordPolicy

        RecordPolicy(self.record, max_rows=self.record_max_rows, max_mb=self.record_max_mb)  # ConfigError if bad
        if not 0 <= int(self.port) <= 65535:
            raise ConfigError(f"port must be in 0..65535, got {self.port!r}.")
        for key in ("workers", "max_body_bytes", "max_rows"):
            if int(getattr(self, key)) < 1:
                raise ConfigError(f"{key} must be >= 1, got {getattr(self, key)!r}.")
        if self.rate_limit < 0:
            raise ConfigError(f"rate_limit is requests per second per key (0 = off), got {self.rate_limit!r}.")
        if self.rate_burst is not None and self.rate_burst < 1:
            raise ConfigError(f"rate_burst must be >= 1, got {self.rate_burst!r}.")
        if self.top_k is not None and self.top_k < 1:
            raise ConfigError(f"top_k must be >= 1, got {self.top_k!r}.")
        if self.round_decimals is not None and not 0 <= self.round_decimals <= 15:
            raise ConfigError(f"round_decimals must be in 0..15, got {self.round_decimals!r}.")
        if self.poll_interval_s <= 0 or self.usage_flush_s <= 0:
            raise ConfigError("poll_interval_s and usage_flush_s must be > 0 seconds.")
        for key in ("header_timeout_s", "body_timeout_s", "keepalive_timeout_s"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 3600:
                raise ConfigError(f"{key} must be a number of seconds in (0, 3600], got {value!r}.")
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise ConfigError("TLS needs both ssl_certfile and ssl_keyfile (PEM files); pass both or neither.")

    def spec_for(self, name: str) -> BatchSpec:
        return self.model_batch.get(name, self.batch)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServeSettings:
        return config_from_dict(cls, data)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; False for 0.0.0.0, :: and every other address."""
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost: may resolve anywhere
