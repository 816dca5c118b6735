"""How long a client may take: bounds on reading request headers and bodies.

uvicorn bounds only the idle time between requests on a keep-alive connection
(``timeout_keep_alive``). A connection that sends nothing, a request whose headers never end
(a slowloris) and a body that stalls after its headers would otherwise hold a connection —
and, for the body, an ASGI task — for as long as the client likes, with no API key needed.

:class:`BoundedHttpToolsProtocol` is uvicorn's httptools protocol with two timers more, passed
to uvicorn as ``Config(http=...)`` (see ``_server.uvicorn_config``); the bounds travel on the
Config object, so they reach every worker process of ``--workers N`` (the Config is pickled
into each). Per connection one timer at a time:

* headers: from the connection's start, or from the first byte of a later request on a
  keep-alive connection, to the end of its headers, at most ``header_timeout_s``. On expiry
  the connection is closed; a 408 (``Connection: close``) goes first when part of a request
  had arrived, nothing when the client never started one (an unsolicited 408 on an idle
  connection would be read as the answer to the client's next request).
* body: from the end of the headers to the end of the body, at most ``body_timeout_s``. On
  expiry a request not yet answered gets 408 with ``Connection: close``, the handler waiting
  for the body sees the client gone, and the connection closes; one already answered (e.g.
  refused with 401 before its body arrived) is just closed.
* between requests: uvicorn's own keep-alive timer, ``keepalive_timeout_s``.

Each connection closed by a bound is counted in the app's Prometheus metrics
(``fulcrum_connections_timed_out_total{phase="idle|headers|body"}``): the app puts a callback
under :data:`TIMEOUT_HOOK` in its lifespan state, which uvicorn hands to every protocol instance.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

__all__ = ["BOUNDS_ATTR", "TIMEOUT_HOOK", "protocol_class", "BoundedHttpToolsProtocol"]

log = logging.getLogger("fulcrum.serve")

#: The attribute of uvicorn's Config that carries ``(header_timeout_s, body_timeout_s)``.
BOUNDS_ATTR = "fulcrum_read_bounds"
_DEFAULT_BOUNDS = (10.0, 30.0)
#: The key of the app's lifespan state holding ``on_timeout(phase)`` ("idle", "headers" or "body").
TIMEOUT_HOOK = "fulcrum.on_connection_timeout"


def _timeout_response(default_headers: list[tuple[bytes, bytes]], message: str) -> bytes:
    body = json.dumps({"error": message}).encode()
    lines = [b"HTTP/1.1 408 Request Timeout\r\n"]
    lines.extend(name + b": " + value + b"\r\n" for name, value in default_headers)
    lines.append(b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body))
    lines.append(body)
    return b"".join(lines)


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools is a Fulcrum dependency
    HttpToolsProtocol = None  # type: ignore[assignment,misc]


if HttpToolsProtocol is not None:

    class BoundedHttpToolsProtocol(HttpToolsProtocol):  # type: ignore[misc,valid-type]
        """uvicorn's httptools protocol with header- and body-read time bounds (see the module doc)."""

        def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any],
                     _loop: asyncio.AbstractEventLoop | None = None) -> None:
            super().__init__(config, server_state, app_state, _loop)
            self.header_timeout, self.body_timeout = getattr(config, BOUNDS_ATTR, None) or _DEFAULT_BOUNDS
            self._read_timer: asyncio.TimerHandle | None = None
            self._phase: str | None = None  # "idle" (no request byte yet), "headers", "body" or None
            self._last_client: Any = None

        # -- timers -----------------------------------------------------------------------

        def _arm(self, phase: str, seconds: float) -> None:
            self._disarm()
            self._phase = phase
            self._read_timer = self.loop.call_later(seconds, self._expired)

        def _disarm(self) -> None:
            if self._read_timer is not None:
                self._read_timer.cancel()
                self._read_timer = None
            self._phase = None

        def _expired(self) -> None:
            phase, self._phase, self._read_timer = self._phase, None, None
            transport = self.transport
            if transport is None or transport.is_closing():
                return
            client = "%s:%d" % self.client if self.client else "-"
            hook = self.app_state.get(TIMEOUT_HOOK)
            if hook is not None and phase is not None:
                try:
                    hook(phase)
                except Exception:  # noqa: BLE001 - counting never keeps a slow connection open
                    log.exception("could not count a timed-out connection")
            if phase == "body":
                cycle = self.cycle
                if cycle is not None and not cycle.response_started:
                    transport.write(_timeout_response(
                        self.server_state.default_headers,
                        f"Request body not received within {self.body_timeout:g} s; send it at once, "
                        "or raise the server's --body-timeout.",
                    ))
                    cycle.response_started = cycle.response_complete = True  # the handler can send nothing more
                    cycle.keep_alive = False
                if cycle is not None:
                    cycle.disconnected = True  # a handler waiting for the body sees the client gone
                    cycle.message_event.set()
                log.info("closed %s: request body not received within %g s", client, self.body_timeout)
            elif phase == "headers":
                transport.write(_timeout_response(
                    self.server_state.default_headers,
                    f"Request headers not received within {self.header_timeout:g} s.",
                ))
                log.info("closed %s: request headers not received within %g s", client, self.header_timeout)
            transport.close()

        # -- connection and parser callbacks ----------------------------------------------

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm("idle", self.header_timeout)  # the first request's headers, from the connection's start

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._phase == "idle":
                self._phase = "headers"  # same deadline: it counts from the connection's start
            elif self._phase is None:
                self._arm("headers", self.header_timeout)  # a later request on a kept-alive connection

        def on_headers_complete(self) -> None:
            self._arm("body", self.body_timeout)
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._disarm()
            super().on_message_complete()

else:  # pragma: no cover
    BoundedHttpToolsProtocol = None  # type: ignore[assignment,misc]


def protocol_class() -> str:
    """uvicorn's ``http`` setting: the bounded protocol as an import string (a worker process
    imports it when its server starts, not while unpickling its Config, which must be quick
    for the supervisor's health check), or uvicorn's own choice without httptools."""
    if BoundedHttpToolsProtocol is None:  # pragma: no cover
        log.warning("httptools is not installed: request header and body read times are not bounded. "
                    "Install it (pip install httptools) to bound them.")
        return "auto"
    return f"{__name__}:BoundedHttpToolsProtocol"
