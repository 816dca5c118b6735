"""/docs and /redoc work offline: every asset they reference is served by the server itself."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

_URL = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url\s*:\s*["']([^"']+)["']""")


def _asset_urls(html: str) -> list[str]:
    return [a or b for a, b in _URL.findall(html)]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_no_asset_from_outside(serve, page):
    srv = serve()
    with srv.client() as c:
        r = c.get(page)
        assert r.status_code == 200 and "text/html" in r.headers["content-type"]
        html = r.text
        for url in re.findall(r"https?://[^\s\"'<>)]+", html):
            assert urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1"), f"{page} loads {url}"
        urls = _asset_urls(html)
        scripts = [u for u in urls if u.endswith(".js")]
        assert scripts, html
        assert page != "/docs" or any(u.endswith(".css") for u in urls)
        for url in urls:
            if url.endswith(".json"):
                continue  # the OpenAPI document itself, tested elsewhere
            a = c.get(url)
            assert a.status_code == 200 and len(a.content) > 1000, (url, a.status_code)
        for url in scripts:
            assert "javascript" in c.get(url).headers["content-type"]
        assert c.get("/docs/assets/nope.js").status_code == 404


def test_docs_assets_need_a_key_on_a_keyed_server(serve, registry):
    from fulcrum.serve import KeyStore

    _, key = KeyStore(registry).create("predict")
    srv = serve()
    with srv.client() as c:
        assert c.get("/docs/assets/swagger-ui.css").status_code == 401
        assert c.get("/docs/assets/swagger-ui.css", headers={"X-API-Key": key}).status_code == 200
