"""Serving: the HTTP app, adaptive batching, auth, limits, metrics, monitors and feedback.

Three layers (as BentoML separates them): a per-model :class:`BatchSpec`, a generic adaptive
:class:`Batcher`, and a thin HTTP app (:func:`create_app`, KServe v2 + a friendly JSON route).

    >>> from fulcrum.serve import create_app, ServeSettings
    >>> app = create_app(["iris@production"], ServeSettings(max_rows=256))   # any ASGI server
    >>> fulcrum.serve.run(["iris@production"])                                # uvicorn, what `fulcrum serve` does
"""

from __future__ import annotations

from ._app import ServerState, create_app
from ._auth import Authenticator, KeyStore
from ..runtime import Batcher
from ._feedback import DEFAULT_THRESHOLDS, FeedbackStore, recommend
from ._limits import RateLimiter
from ._model import ServedModel
from ._monitor import Monitor, load_latest_snapshot, save_snapshot
from ._server import check_bind, run
from ._spec import BatchSpec, ServeSettings, is_loopback
from ._usage import UsageCounter, read_usage

__all__ = [
    "Authenticator",
    "BatchSpec",
    "Batcher",
    "DEFAULT_THRESHOLDS",
    "FeedbackStore",
    "KeyStore",
    "Monitor",
    "RateLimiter",
    "ServeSettings",
    "ServedModel",
    "ServerState",
    "UsageCounter",
    "check_bind",
    "create_app",
    "is_loopback",
    "load_latest_snapshot",
    "read_usage",
    "recommend",
    "run",
    "save_snapshot",
]
