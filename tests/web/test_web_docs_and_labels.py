"""The API docs page offline, and sample labels in the selector's autocomplete, in real headless Chromium.

The live server holds real captures of the Go demo, whose CPU work runs under
``pprof.Do`` labels (``handler="/checkout"``, ``handler="/search"``).
"""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING

import httpx

from tests.support.browser import BrowserPage, LiveServer, browser, browser_page, live_server
from tests.web.test_web_explore import READY, no_errors

if TYPE_CHECKING:
    from playwright.sync_api import Route

__all__ = ["browser", "browser_page", "live_server"]  # fixtures, used by name

SUGGESTED = "[...document.querySelectorAll('#query-suggestions li[data-index]')]"


def test_swagger_ui_renders_with_the_network_closed(live_server: LiveServer, browser_page: BrowserPage) -> None:
    bp = browser_page
    local = urllib.parse.urlsplit(live_server.url).netloc
    elsewhere: list[str] = []

    def only_this_server(route: Route) -> None:
        if urllib.parse.urlsplit(route.request.url).netloc == local:
            route.continue_()
        else:  # the network is closed: anything not served by Stackyard itself fails, and is noted
            elsewhere.append(route.request.url)
            route.abort()

    bp.page.route("**/*", only_this_server)
    bp.page.goto(f"{live_server.url}/docs")
    bp.page.locator(".swagger-ui .info .title").wait_for(timeout=15_000)
    assert "Stackyard" in bp.page.inner_text(".swagger-ui .info .title")
    # the operations are listed from /openapi.json, and one opens
    labels = bp.page.locator(".opblock-summary-path[data-path='/api/v1/labels']")
    labels.first.wait_for()
    labels.first.click()
    bp.page.locator(".opblock-body .parameters").first.wait_for()
    assert "sample" in bp.page.inner_text(".opblock.is-open")
    assert elsewhere == []
    no_errors(bp)
    # no second docs page whose bundle reaches for a CDN
    assert httpx.get(f"{live_server.url}/redoc", timeout=30).status_code == 404


def test_autocomplete_offers_sample_labels_marked(live_server: LiveServer, browser_page: BrowserPage) -> None:
    bp = browser_page
    bp.page.goto(f"{live_server.url}/explore?type=cpu&query=&from=now-2h&to=now")
    bp.page.wait_for_function(READY, timeout=15_000)
    bp.page.click("#query")
    bp.page.keyboard.type("{h")
    item = bp.page.locator("#query-suggestions li[data-index]")
    item.first.wait_for()
    assert item.count() == 1
    assert item.first.evaluate("l => l.firstChild.textContent") == "handler"
    assert item.first.locator(".suggest-mark").inner_text() == "sample label"
    assert "sample-label" in (item.first.get_attribute("class") or "")
    # series labels carry no mark
    bp.page.keyboard.press("Backspace")
    bp.page.wait_for_function(f"() => {SUGGESTED}.length === 4")
    marked = bp.page.evaluate(
        f"() => {SUGGESTED}.filter(l => l.querySelector('.suggest-mark')).map(l => l.firstChild.textContent)"
    )
    assert marked == ["handler"]
    # the values come from the samples, under a heading that says so; what the server offers
    bp.page.keyboard.type("handler=")
    bp.page.wait_for_function(f"() => {SUGGESTED}.map(l => l.textContent).join() === '/checkout,/search'")
    heading = bp.page.locator("#query-suggestions .suggest-heading").text_content()
    assert heading == "Values of handler (sample label)"
    offered = live_server.get("/api/v1/labels/handler/values", type="cpu", **{"from": "now-2h", "to": "now"})
    assert offered == {"name": "handler", "values": ["/checkout", "/search"], "sample_label": True}
    bp.page.click("#query-suggestions li:text-is('/search')")
    assert bp.page.input_value("#query") == '{handler="/search"}'
    bp.page.keyboard.press("Escape")
    bp.page.keyboard.press("Enter")
    bp.page.wait_for_function("() => new URL(location.href).searchParams.get('query') === '{handler=\"/search\"}'")
    bp.page.wait_for_function(READY)
    top = live_server.get("/api/v1/top", type="cpu", query='{handler="/search"}', **{"from": "now-2h", "to": "now"})
    assert top["total"] > 0
    no_errors(bp)
