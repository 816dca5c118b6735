"""The one way Fulcrum reaches a Ray cluster (``backend="ray"`` of train, tune, predict and serve).

``connect(address)`` reuses a Ray session this process already has; otherwise it starts a local
cluster on this machine (``address`` None or ``"local"``) or joins an existing one (``"auto"``: the
cluster ``ray start --head`` runs here; ``HOST:PORT``; ``ray://HOST:10001``). A local cluster keeps
its dashboard and job API off (they would listen on 127.0.0.1 only); the cluster's own token
authentication is Ray's default and is left on. Ray is imported only here and only when asked for,
so ``import fulcrum`` stays fast.
"""

from __future__ import annotations

from typing import Any, Callable

from .errors import ConfigError

__all__ = ["connect", "require_ray"]


def require_ray(what: str = "backend='ray'") -> Any:
    """The ``ray`` module, or one ConfigError saying how to install it."""
    try:
        import ray
    except ImportError:  # pragma: no cover - ray is a dependency; a trimmed install may lack it
        raise ConfigError(f"{what} needs Ray: pip install 'ray[train,tune,data,serve]>=2.40' (or use "
                          "--backend local).") from None
    return ray


def connect(address: str | None = None, *, log: Callable[[str], None] | None = None) -> Any:
    """A connected ``ray`` module (see the module docstring for ``address``)."""
    ray = require_ray()
    if ray.is_initialized():
        return ray
    try:
        if address in (None, "", "local"):
            if log:
                log("starting a local Ray cluster on this machine (dashboard and job API off)")
            ray.init(include_dashboard=False, dashboard_host="127.0.0.1", logging_level="warning",
                     configure_logging=True)
        else:
            if log:
                log(f"joining the Ray cluster at {address}")
            ray.init(address=address, logging_level="warning")
    except (ConnectionError, TimeoutError, ValueError, RuntimeError) as exc:
        text = " ".join(str(exc).split())[:300]
        raise ConfigError(f"Cannot reach a Ray cluster at {address!r} ({text}); start one with `ray start --head` "
                          "and pass --address auto (or HOST:PORT), or leave --address out for a local "
                          "cluster.") from None
    return ray
