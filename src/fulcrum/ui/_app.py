"""The dashboard's HTTP layer: read-only JSON endpoints and the pages that draw them.

Routes, all GET (any other method is 405)::

    /ui/                       models page           /ui/api/models?q=&sort=&order=&limit=&offset=
    /ui/version?ref=NAME@V     one version           /ui/api/models/{ref}
    /ui/variants?ref=          Pareto of variants    /ui/api/models/{ref}/variants?batch=
    /ui/costs?ref=             cumulative cost       /ui/api/models/{ref}/costs?rate=&horizon=
    /ui/live?ref=              the running server    /ui/api/live?ref=
    /ui/compare?a=&b=          two versions          /ui/api/compare?a=&b=&score=
    /ui/static/...             the page script, style sheet and Chart.js (shipped in the package)

The pages are static HTML that fetch the JSON and insert every value as text (``textContent``,
never markup); charts are Chart.js on a canvas. The pages and static files hold no data, so they
are open like ``/v2/health``; the JSON endpoints need an API key whenever the server would (the
page asks for it once and sends it as ``Authorization: Bearer``).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any, Callable

from ..errors import ConfigError, FulcrumError

__all__ = ["create_ui_app", "create_standalone_app", "PAGES", "is_open_path"]

HERE = Path(__file__).parent
PAGES = ("models", "version", "variants", "costs", "live", "compare")
_SECURITY_HEADERS = {
    # the pages load only their own script and style sheet; nothing inline runs
    "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
                               "frame-ancestors 'none'; form-action 'self'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


def is_open_path(path: str, prefix: str = "/ui") -> bool:
    """True for the dashboard's pages and static files (no data in them); False for its JSON and
    for anything outside ``prefix``."""
    if not (path == prefix or path.startswith(prefix + "/") or (not prefix and path == "")):
        return False
    return not path.startswith(prefix + "/api")


def _json(body: Any, status: int = 200) -> Any:
    from fastapi.responses import Response

    return Response(json.dumps(body, allow_nan=False, default=str).encode(), status, dict(_SECURITY_HEADERS),
                    media_type="application/json")


def _error(exc: BaseException) -> Any:
    status = int(getattr(exc, "http_status", 500)) if isinstance(exc, FulcrumError) else 500
    return _json({"error": str(exc) if isinstance(exc, FulcrumError) else "internal error; see the server log"}, status)


class _KeyCheck:
    """The server's API-key rule for a standalone ``fulcrum ui``: once any key exists every JSON
    request needs a valid one (``fulcrum.serve.Authenticator``, keys re-read at most once a second)."""

    def __init__(self, registry: Any) -> None:
        from ..serve._auth import Authenticator, KeyStore

        self.store = KeyStore(registry)
        self.auth = Authenticator.from_store(self.store)
        self._read = time.monotonic()

    def check(self, headers: dict[str, str]) -> None:
        now = time.monotonic()
        if now - self._read >= 1.0:
            self._read = now
            self.auth.update(self.store.active())
        self.auth.check(headers, "predict")


def create_ui_app(registry: Any, *, state: Any = None, auth: bool = False, server: str | None = None,
                  server_key: str | None = None, records_db: Any = None) -> Any:
    """The dashboard as an ASGI app whose routes start at ``/`` (mount it at ``/ui``).

    ``state``: the serving app's ServerState when mounted in ``fulcrum serve`` (live figures in
    process; the serving app's edge has already checked the key). ``auth``: check API keys here
    (a standalone ``fulcrum ui``). ``server``/``server_key``: a running server whose ``/metrics``
    and monitor the live page reads (standalone only)."""
    from fastapi import FastAPI, Request
    from fastapi.responses import HTMLResponse, RedirectResponse, Response
    from starlette.staticfiles import StaticFiles

    from ._data import compare_detail, costs_detail, models_list, variants_detail, version_detail
    from ._live_source import LiveSource

    app = FastAPI(title="Fulcrum dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    keys = _KeyCheck(registry) if auth else None
    live = LiveSource(registry, state=state, server=server, server_key=server_key, records_db=records_db)
    app.state.live = live

    @app.middleware("http")
    async def _guard(request: Request, call_next: Callable[..., Any]) -> Any:
        path, root = request.scope["path"], request.scope.get("root_path", "")
        if root and path.startswith(root):  # mounted: starlette keeps the mount prefix in the path
            path = path[len(root):]
        if keys is not None and not is_open_path(path, ""):
            try:
                keys.check({k.lower(): v for k, v in request.headers.items()})
            except FulcrumError as exc:
                resp = _error(exc)
                for k, v in (getattr(exc, "headers", None) or {}).items():
                    resp.headers[k] = v
                return resp
        response = await call_next(request)
        for k, v in _SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        return response

    async def run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return _json(await asyncio.to_thread(fn, *args, **kwargs))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a FulcrumError keeps its status
            return _error(exc)

    @app.get("/api/models")
    async def api_models(q: str | None = None, sort: str = "name", order: str = "asc",
                         limit: int | None = None, offset: int = 0) -> Response:
        return await run(models_list, registry, q, sort, order, limit, offset)

    @app.get("/api/models/{ref}")
    async def api_version(ref: str) -> Response:
        return await run(version_detail, registry, ref)

    @app.get("/api/models/{ref}/variants")
    async def api_variants(ref: str, batch: int = 1) -> Response:
        return await run(variants_detail, registry, ref, batch)

    @app.get("/api/models/{ref}/costs")
    async def api_costs(ref: str, rate: str | None = None, horizon: str = "12mo") -> Response:
        return await run(costs_detail, registry, ref, rate or None, horizon or "12mo")

    @app.get("/api/compare")
    async def api_compare(a: str, b: str, score: bool = True) -> Response:
        return await run(compare_detail, registry, a, b, score=score)

    @app.get("/api/live")
    async def api_live(ref: str | None = None) -> Response:
        return await run(live.read, ref)

    shell = (HERE / "pages" / "page.html").read_text(encoding="utf-8")

    def page(name: str) -> Callable[..., Any]:
        # one shell for every page: the page's own name (a constant of PAGES, never request data) picks what
        # ui.js draws
        charts = "" if name == "models" else '<script src="static/chart.umd.min.js"></script>\n'  # a table only
        html = shell.replace("{title}", name.capitalize()).replace("{page}", name).replace("{charts}", charts)

        async def handler() -> Any:
            return HTMLResponse(html, headers=dict(_SECURITY_HEADERS))
        handler.__name__ = f"page_{name}"
        return handler

    app.add_api_route("/", page("models"), methods=["GET"], include_in_schema=False)
    for name in PAGES[1:]:
        app.add_api_route(f"/{name}", page(name), methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.exception_handler(ConfigError)
    async def _config(request: Request, exc: ConfigError) -> Response:
        return _error(exc)

    app.state.redirect = RedirectResponse
    return app


def create_standalone_app(registry: Any, **kwargs: Any) -> Any:
    """``fulcrum ui``: the dashboard at ``/ui`` (``/`` redirects there), API keys checked here."""
    from fastapi import FastAPI
    from fastapi.responses import RedirectResponse

    import threading

    from ._data import _CACHE

    root = FastAPI(title="Fulcrum dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    root.mount("/ui", create_ui_app(registry, auth=True, **kwargs))
    # build the models list while the server starts: the first page view then reads it cached
    threading.Thread(target=_CACHE.rows, args=(registry,), daemon=True, name="fulcrum-ui-warm").start()

    @root.get("/", include_in_schema=False)
    async def index() -> Any:
        return RedirectResponse("/ui/")

    return root
