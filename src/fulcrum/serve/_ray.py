"""``fulcrum serve --backend ray``: the same app (``create_app``) in Ray Serve replicas.

Each replica builds the very app the single-process server runs (``serve.ingress`` with the app built at
replica start), so the protocol, API keys, limits (body size, rows, queue depth, rate, deadline),
adaptive batching, Prometheus ``/metrics``, monitors and serving records are the same code. Ray Serve adds
replicas (``--replicas N``, or autoscaling between ``--min-replicas`` and ``--max-replicas``), a health
check per replica (every model loaded and warmed up, else Ray replaces the replica) and its HTTP proxy,
which binds ``--host`` (127.0.0.1 by default; a non-loopback host needs an API key, as locally).

What differs from the single-process server: TLS is not terminated by Ray's proxy (put a TLS proxy in
front), and the slow-client bounds (header/body/keep-alive timeouts) are the proxy's own. Replicas read the
registry and the records database by path: on a multi-node cluster put them on shared storage.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ..errors import ConfigError
from ._spec import ServeSettings

__all__ = ["deploy", "run_ray"]

log = logging.getLogger("fulcrum.serve")
APP_NAME = "fulcrum"


def _replica_class() -> Any:
    from ray import serve

    @serve.ingress()
    class FulcrumReplica:
        """One replica: the single-process app, built and preloaded when Ray starts the replica."""

        def __init__(self, refs: list[str], settings: dict[str, Any], registry: str) -> None:
            self._refs, self._settings, self._registry = refs, settings, registry
            self._app: Any = None

        def __serve_build_asgi_app__(self) -> Any:
            from ._app import configure_logging, create_app

            settings = ServeSettings.from_dict(self._settings)
            configure_logging(settings.log_level)
            self._app = create_app(self._refs, settings, registry=self._registry)
            self._app.state.fulcrum.models.preload()  # load, verify and warm up before taking traffic
            return self._app

        def check_health(self) -> None:  # Ray Serve calls it periodically; raising replaces the replica
            if self._app is not None and not self._app.state.fulcrum.models.ready:
                raise RuntimeError("a served model is not loaded")

    return FulcrumReplica


def deploy(refs: list[str], settings: ServeSettings, *, registry: Any, replicas: int = 2,
           min_replicas: int | None = None, max_replicas: int | None = None, address: str | None = None,
           cpus_per_replica: float = 1.0) -> str:
    """Start Ray Serve on ``settings.host:settings.port`` with the app in ``replicas`` replicas (or autoscaled
    between ``min_replicas`` and ``max_replicas``); returns the base URL. Does not block."""
    from .._ray import connect
    from ..artifact import Registry
    from ._server import _default_ref, check_bind

    if settings.ssl_certfile or settings.ssl_keyfile:
        raise ConfigError("--backend ray does not terminate TLS (Ray Serve's proxy speaks HTTP); drop "
                          "--ssl-certfile/--ssl-keyfile and put a TLS proxy in front, or use --backend local.")
    if replicas < 1 or (min_replicas is not None and min_replicas < 1) or (
            max_replicas is not None and max_replicas < (min_replicas or 1)):
        raise ConfigError(f"replicas must be >= 1 and min_replicas <= max_replicas; got replicas={replicas}, "
                          f"min_replicas={min_replicas}, max_replicas={max_replicas}.")
    reg = registry if isinstance(registry, Registry) else Registry(registry if registry is not None else settings.registry)
    check_bind(settings, reg)
    if not refs:
        refs = [_default_ref(reg, n) for n in reg.names()]
        if not refs:
            raise ConfigError(f"Registry {reg.root} holds no model to serve; train one with `fulcrum train` first.")
    for ref in refs:
        reg.resolve(ref)  # fail fast on a typo, before Ray starts anything
    connect(address, log=log.info)
    from ray import serve

    serve.start(http_options={"host": settings.host, "port": int(settings.port)})
    scale: dict[str, Any] = {"num_replicas": int(replicas)}
    if min_replicas is not None or max_replicas is not None:
        lo = int(min_replicas or 1)
        scale = {"autoscaling_config": {"min_replicas": lo, "max_replicas": int(max_replicas or max(lo, replicas)),
                                        "target_ongoing_requests": 32}}
    dep = serve.deployment(_replica_class(), name="fulcrum", health_check_period_s=5,
                           health_check_timeout_s=30, max_ongoing_requests=max(64, settings.batch.max_queue),
                           ray_actor_options={"num_cpus": float(cpus_per_replica)}, **scale)
    serve.run(dep.bind(list(refs), settings.to_dict(), str(reg.root)), name=APP_NAME, route_prefix="/",
              blocking=False)
    url = f"http://{settings.host}:{settings.port}"
    log.info("serving %s through Ray Serve (%s) on %s", ", ".join(refs),
             scale.get("num_replicas") and f"{replicas} replica(s)" or "autoscaled replicas", url)
    return url


def run_ray(refs: list[str], settings: ServeSettings, *, registry: Any, **options: Any) -> None:
    """``deploy`` and block until interrupted, then take the application down."""
    from ray import serve

    from ._app import configure_logging

    import signal

    import ray

    def stop(signum: int, frame: Any) -> None:  # SIGTERM ends the server as Ctrl-C does: cleanly
        raise SystemExit(0)

    configure_logging(settings.log_level)
    deploy(refs, settings, registry=registry, **options)
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        while True:
            time.sleep(1.0)
    finally:
        signal.signal(signal.SIGTERM, previous)
        serve.delete(APP_NAME)
        ray.shutdown()  # a local cluster this process started stops with it; a remote one is left running
