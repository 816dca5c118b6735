"""Swagger UI (/docs) and ReDoc (/redoc) served from this machine, not from a CDN.

FastAPI's own pages load their JavaScript and CSS from cdn.jsdelivr.net (and ReDoc its fonts
from Google), so they are blank on a machine without internet access. The same files ship in
the ``fastapi-offline`` package (a Fulcrum dependency); they are served here under
``/docs/assets/`` — read once, cached in memory, behind the same API-key check as every
non-health route — and the pages point at them.
"""

from __future__ import annotations

import functools
import importlib.resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

__all__ = ["ASSET_PREFIX", "install_docs"]

ASSET_PREFIX = "/docs/assets"
_PACKAGE = "fastapi_offline"
_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}


@functools.lru_cache(maxsize=None)
def _asset(name: str) -> bytes | None:
    """The bytes of a shipped asset, or None when the package is missing."""
    try:
        return (importlib.resources.files(_PACKAGE) / "static" / name).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        return None


def install_docs(app: FastAPI) -> None:
    """Replace ``app``'s CDN-based /docs and /redoc pages by pages whose assets it serves itself."""
    docs_url, redoc_url = app.docs_url or "/docs", app.redoc_url or "/redoc"
    app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", None) not in (docs_url, redoc_url)]
    openapi_url = app.openapi_url or "/openapi.json"

    def _prefix(request: Request) -> str:
        return str(request.scope.get("root_path") or "")

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = _prefix(request)
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSET_PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSET_PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSET_PREFIX}/favicon.png",
            oauth2_redirect_url=app.swagger_ui_oauth2_redirect_url,
            # no validator badge: it would be fetched from validator.swagger.io
            swagger_ui_parameters={**(app.swagger_ui_parameters or {}), "validatorUrl": None},
        )

    @app.get(redoc_url, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = _prefix(request)
        return get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSET_PREFIX}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSET_PREFIX}/favicon.png",
            with_google_fonts=False,
        )

    @app.get(ASSET_PREFIX + "/{name}", include_in_schema=False)
    async def docs_asset(name: str) -> Response:
        media_type = _ASSETS.get(name)
        body = _asset(name) if media_type else None
        if body is None:
            detail: dict[str, Any] = {"error": f"No documentation asset {name!r}."}
            if media_type:
                detail["error"] += " Install the fastapi-offline package (a Fulcrum dependency) to serve /docs offline."
            return Response(_json_bytes(detail), 404, media_type="application/json")
        return Response(body, media_type=media_type, headers={"Cache-Control": "public, max-age=86400"})


def _json_bytes(body: dict[str, Any]) -> bytes:
    import json

    return json.dumps(body).encode()
