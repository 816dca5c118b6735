"""Running the app under uvicorn: the secure-by-default bind check, TLS, workers."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from ..errors import ConfigError, ServeError
from ._spec import ServeSettings, is_loopback

__all__ = ["check_bind", "run", "uvicorn_config"]

log = logging.getLogger("fulcrum.serve")
_ENV = "FULCRUM_SERVE_ARGS"


def check_bind(settings: ServeSettings, registry: Any) -> None:
    """Refuse a non-loopback bind unless API keys exist, or --insecure was given (logged loudly)."""
    if is_loopback(settings.host):
        return
    from ._auth import KeyStore

    store = KeyStore(registry)
    if store.active():
        return
    if settings.insecure and store.ever_keyed():
        log.warning(
            "serving on %s with every API key revoked: the server answers 401 to every request until a key "
            "is created with `fulcrum keys create`.",
            settings.host,
        )
        return
    if settings.insecure:
        log.warning(
            "INSECURE: serving on %s without API keys; anyone who can reach this address can use every model. "
            "Create a key with `fulcrum keys create` and drop --insecure.",
            settings.host,
        )
        return
    raise ServeError(
        f"Refusing to bind {settings.host}: it is reachable from other machines and no active API key exists. "
        "Create one with `fulcrum keys create --scope predict` (clients then send 'Authorization: Bearer KEY'), "
        "or bind 127.0.0.1, or pass --insecure to serve openly anyway.",
        400,
    )


def uvicorn_config(app: Any, settings: ServeSettings, **extra: Any) -> Any:
    """uvicorn's Config for ``app``: Fulcrum's HTTP protocol, with the header/body read bounds
    (``_timeouts``) carried on the Config so that every worker process gets them."""
    import uvicorn

    from ._timeouts import BOUNDS_ATTR, protocol_class

    kwargs: dict[str, Any] = dict(
        host=settings.host,
        port=settings.port,
        http=protocol_class(),
        access_log=False,  # fulcrum writes its own JSON access log with request ids
        log_level=settings.log_level,
        ssl_certfile=settings.ssl_certfile,
        ssl_keyfile=settings.ssl_keyfile,
        timeout_keep_alive=settings.keepalive_timeout_s,
        timeout_graceful_shutdown=max(1, int(settings.batch.timeout_s) + 1),
    )
    kwargs.update(extra)
    config = uvicorn.Config(app, **kwargs)
    setattr(config, BOUNDS_ATTR, (float(settings.header_timeout_s), float(settings.body_timeout_s)))
    return config


def _app_from_env() -> Any:
    """App factory for multi-worker mode: uvicorn imports it in each worker process."""
    from ._app import create_app

    data = json.loads(os.environ[_ENV])
    return create_app(data["refs"], ServeSettings.from_dict(data["settings"]), registry=data["registry"])


def run(refs: list[str], settings: ServeSettings | None = None, *, registry: Any = None) -> None:
    """Serve ``refs`` until interrupted (what ``fulcrum serve`` does)."""
    import uvicorn

    from ..artifact import Registry
    from ._app import configure_logging, create_app

    settings = settings or ServeSettings()
    configure_logging(settings.log_level)
    reg = registry if isinstance(registry, Registry) else Registry(registry if registry is not None else settings.registry)
    check_bind(settings, reg)
    if not refs:
        refs = [_default_ref(reg, n) for n in reg.names()]
        if not refs:
            raise ConfigError(f"Registry {reg.root} holds no model to serve; train one with `fulcrum train` first.")
    for ref in refs:  # fail fast on a typo; later alias changes are followed at run time
        reg.resolve(ref)  # (and on a model that does not load: preload below, before binding)
    for path in (settings.ssl_certfile, settings.ssl_keyfile):
        if path and not os.path.isfile(path):
            raise ConfigError(f"TLS file {path!r} does not exist; pass PEM files to --ssl-certfile/--ssl-keyfile.")
    scheme = "https" if settings.ssl_certfile else "http"
    if settings.workers > 1:
        from uvicorn.supervisors import Multiprocess

        from ._models import ModelSet

        # fail fast: every model loads, verifies and warms up here before any worker starts
        ModelSet(reg, refs, settings).preload(keep=False)
        log.info("serving %s on %s://%s:%d", ", ".join(refs), scheme, settings.host, settings.port)
        os.environ[_ENV] = json.dumps({"refs": refs, "settings": settings.to_dict(), "registry": str(reg.root)})
        config = uvicorn_config("fulcrum.serve._server:_app_from_env", settings, factory=True, workers=settings.workers,
                                timeout_worker_healthcheck=30)  # a worker imports torch & co. before it answers
        # uvicorn.Server runs one process whatever `workers` says; the supervisor binds the socket
        # once and starts (and restarts) the worker processes, each unpickling this config.
        Multiprocess(config, sockets=[config.bind_socket()]).run()
    else:
        app = create_app(refs, settings, registry=reg)
        app.state.fulcrum.models.preload()  # fail fast, before binding; the server then serves these very models
        log.info("serving %s on %s://%s:%d", ", ".join(refs), scheme, settings.host, settings.port)
        uvicorn.Server(uvicorn_config(app, settings)).run()


def _default_ref(reg: Any, name: str) -> str:
    try:
        reg.resolve(f"{name}@production")
        return f"{name}@production"
    except Exception:  # noqa: BLE001 - no production alias: the latest version
        return name
