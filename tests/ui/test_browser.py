"""The dashboard in a real browser: headless Chromium from the distribution (``apt-get install
chromium``) driven by Playwright, against `fulcrum serve` with the dashboard mounted at /ui.

Each page is checked for its key elements (charts drawn on a canvas of nonzero size, table rows)
and screenshotted; with ``FULCRUM_UI_SCREENSHOTS=DIR`` the screenshots go to DIR (the README's
come from ``FULCRUM_UI_SCREENSHOTS=docs/ui``)."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest

from .conftest import PENGUIN_ROW, XSS_COLUMN, XSS_LABEL

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")


def _chromium() -> str | None:
    for candidate in (os.environ.get("FULCRUM_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


CHROMIUM = _chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: install it with `apt-get install chromium` "
                                                         "(or set FULCRUM_CHROMIUM to its path)")


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    target = os.environ.get("FULCRUM_UI_SCREENSHOTS")
    path = Path(target) if target else tmp_path_factory.mktemp("ui-shots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def page(browser):
    # bypass_csp: the pages' Content-Security-Policy forbids eval, which wait_for_function needs; it also
    # blocks inline handlers, so with it on the escaping test could not fail: the pages must be safe without it
    ctx = browser.new_context(viewport={"width": 1360, "height": 900}, bypass_csp=True)
    pg = ctx.new_page()
    pg.errors = []  # type: ignore[attr-defined]
    pg.dialogs = []  # type: ignore[attr-defined]
    pg.on("pageerror", lambda exc: pg.errors.append(str(exc)))

    def on_dialog(dialog):
        pg.dialogs.append(dialog.message)
        dialog.dismiss()

    pg.on("dialog", on_dialog)
    yield pg
    assert pg.errors == [], pg.errors  # no script error on any page
    ctx.close()


def _open(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("body[data-ready]", timeout=60_000)
    assert page.get_attribute("body", "data-ready") == "1", page.text_content("#error")
    page.evaluate("window.__sameDocument = 1")  # survives in-page updates, not a reload


def _same_document(page) -> bool:
    return page.evaluate("window.__sameDocument === 1")


def _drawn(page, canvas_id: str) -> int:
    """Pixels a chart painted on its canvas (the canvas must also have a nonzero size on the page)."""
    box = page.locator(f"canvas#{canvas_id}").bounding_box()
    assert box is not None and box["width"] > 100 and box["height"] > 100, box
    return page.evaluate("""id => { const c = document.getElementById(id);
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }""", canvas_id)


def _shot(page, shots: Path, name: str) -> None:
    out = shots / f"{name}.png"
    page.screenshot(path=str(out), full_page=False)
    assert out.stat().st_size > 20_000  # a rendered page, not a blank one


def test_models_page_lists_searches_and_sorts(page, serve_server, shots):
    _open(page, serve_server.url + "/ui/")
    rows = page.locator("table#models tbody tr")
    assert rows.count() == 4
    assert page.locator("tr[data-ref='penguins@1'] .tag").inner_text() == "production"
    _shot(page, shots, "models")
    page.click("th[data-sort='size_bytes']")
    page.wait_for_function("document.querySelector('th[data-sort=size_bytes]').textContent.includes('▲')")
    sizes = [float(t.split()[0]) * {"B": 1, "kB": 1e3, "MB": 1e6}[t.split()[1]]
             for t in page.locator("table#models tbody tr td:nth-child(6)").all_inner_texts()]
    assert sizes == sorted(sizes)
    _open(page, serve_server.url + "/ui/?rows=3")  # a page of 3 rows, then "Show more"
    assert rows.count() == 3 and "showing 3 of 4" in page.inner_text("#summary")
    page.click("#more-button")
    page.wait_for_function("document.querySelectorAll('table#models tbody tr').length === 4")
    assert page.locator("#more-button").count() == 0
    assert [r.get_attribute("data-ref") for r in rows.all()] == ["penguins@1", "penguins@2", "penguins@3", "xss@1"]
    page.fill("#search", "xss")
    page.wait_for_function("document.querySelectorAll('table#models tbody tr').length === 1")
    assert page.locator("table#models tbody tr").first.get_attribute("data-ref") == "xss@1"
    assert _same_document(page)


def test_version_page(page, serve_server, shots):
    _open(page, serve_server.url + "/ui/version?ref=penguins@1")
    assert _drawn(page, "history-chart") > 1000
    assert page.locator("table#confusion tbody tr").count() == 3
    assert page.locator("table.profile tbody tr").count() >= 7
    assert page.locator("table.leaderboard tbody tr").count() >= 1
    assert "penguins@3" in page.inner_text("main")  # lineage: the variant made from it
    _shot(page, shots, "version")


def test_variants_page(page, serve_server, shots):
    _open(page, serve_server.url + "/ui/variants?ref=penguins@1")
    assert _drawn(page, "pareto-chart") > 1000
    assert page.locator("table.variants tbody tr").count() == 3
    assert page.locator("table.aliases tbody tr").count() == 2
    assert "int8-dynamic of penguins@1" in page.inner_text("table.aliases")
    _shot(page, shots, "variants")


def test_costs_page_rate_and_horizon_are_editable(page, serve_server, shots):
    _open(page, serve_server.url + "/ui/costs?ref=penguins@1")
    assert _drawn(page, "cost-chart") > 1000 and _drawn(page, "energy-chart") > 1000
    assert page.locator("table.costs tbody tr").count() == 3
    _shot(page, shots, "costs")
    before = page.inner_text("#assume")
    page.fill("#rate", "500/s")
    page.fill("#horizon", "30d")
    page.click("#costform button")
    page.wait_for_function("document.getElementById('assume').textContent.startsWith('500 predictions/s')")
    assert page.inner_text("#assume") != before and "over 30 days" in page.inner_text("#assume")
    assert _same_document(page) and "rate=500" in page.url
    page.fill("#rate", "fast")
    page.click("#costform button")
    page.wait_for_function("!document.getElementById('error').hidden")
    assert "Cannot read rate 'fast'" in page.inner_text("#error")


def test_live_page_refreshes_without_reloading(page, serve_server, shots):
    url = serve_server.url + "/v1/models/penguins/predict"
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client() as client:
            while not stop.is_set():
                client.post(url, json={"records": [PENGUIN_ROW, {**PENGUIN_ROW, "island": "Dream"}]})
                time.sleep(0.05)

    worker = threading.Thread(target=traffic, daemon=True)
    worker.start()
    try:
        time.sleep(1.5)
        _open(page, serve_server.url + "/ui/live?ref=penguins@production")
        total = page.locator(".card", has_text="requests total").locator(".value")
        first = total.inner_text()
        page.wait_for_function("t => [...document.querySelectorAll('.card')].find(c => c.textContent.includes("
                               "'requests total')).querySelector('.value').textContent !== t", arg=first,
                               timeout=30_000)
        time.sleep(4.5)  # a few polls: the time series have points
        assert _same_document(page)  # refreshed in place, not reloaded
        assert _drawn(page, "traffic-chart") > 1000 and _drawn(page, "batch-chart") > 1000
        assert _drawn(page, "drift-chart") > 1000
        assert page.locator("table.drift tbody tr").count() >= 5
        assert "ms" in page.locator(".card", has_text="latency").inner_text()
        _shot(page, shots, "live")
    finally:
        stop.set()
        worker.join(timeout=10)


def test_compare_page(page, serve_server, shots):
    _open(page, serve_server.url + "/ui/compare?a=penguins@1&b=penguins@2")
    assert page.locator("table.compare tbody tr").count() >= 8
    assert "held-out rows of penguins@1" in page.inner_text("#verdict")
    assert _drawn(page, "compare-chart") > 1000
    _shot(page, shots, "compare")


def test_html_in_a_column_and_a_label_is_shown_as_text(page, serve_server, shots):
    for path in ("/ui/?q=xss", "/ui/version?ref=xss@1", "/ui/compare?a=xss@1&b=penguins@1"):
        _open(page, serve_server.url + path)
    _open(page, serve_server.url + "/ui/version?ref=xss@1")
    page.wait_for_timeout(300)
    assert page.dialogs == []  # no alert fired  # type: ignore[attr-defined]
    text = page.inner_text("main")
    assert XSS_COLUMN in text and XSS_LABEL in text  # shown, as text
    html = page.content()
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert XSS_COLUMN not in html and XSS_LABEL not in html  # never as markup
    assert page.locator("main img").count() == 0 and page.locator("script").count() == 2


def test_a_keyed_page_asks_for_the_key(browser, ui_template, tmp_path):
    """Once a key exists the JSON needs it: the page shows the key form, then loads with the key."""
    from fulcrum.artifact import Registry
    from fulcrum.serve import KeyStore
    from fulcrum.ui import create_standalone_app

    from .conftest import Server

    shutil.copytree(ui_template, tmp_path / "registry")
    reg = Registry(tmp_path / "registry")
    store = KeyStore(reg)
    _, token = store.create(scope="predict", name="browser")
    srv = Server(create_standalone_app(reg)).start()
    ctx = browser.new_context(bypass_csp=True)
    try:
        pg = ctx.new_page()
        pg.goto(srv.url + "/ui/")
        pg.wait_for_selector("#keybox:not([hidden])")
        assert pg.locator("table#models").count() == 0
        pg.fill("#keyinput", token)
        pg.click("#keyform button")
        pg.wait_for_selector("table#models tbody tr")
        assert pg.locator("table#models tbody tr").count() >= 4
    finally:
        ctx.close()
        srv.stop()
