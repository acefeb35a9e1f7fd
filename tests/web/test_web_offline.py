"""Every dashboard page loads whole from the server alone, with the network to anywhere else closed.

The pages are plain ES modules importing one another (``dom.js``, the flame graph's modules
under ``js/flamegraph/``...): a module that fails to load stops its page without a word on
it, so each page is opened in real headless Chromium, every request that leaves the server
is refused and noted, and the test checks that every script came from the server with a
200, that nothing was asked of another host, that no script complained, and that the page
then built itself (its header, and where it draws one, its flame graph).
"""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING

import pytest

from tests.support.browser import BrowserPage, LiveServer, browser, browser_page, live_server
from tests.web.test_web_explore import IDLE, READY, no_errors

if TYPE_CHECKING:
    from playwright.sync_api import Response, Route

__all__ = ["browser", "browser_page", "live_server"]  # fixtures, used by name

HEADER = "() => document.querySelectorAll('.app-header nav a').length > 0"
WIDE = "from=now-2h&to=now"
WHOLE = {"from": "now-2h", "to": "now", "base_from": "now-2h", "base_to": "now"}
DEMO = '{service="demo"}'
DEMO_SLOW = '{service="demo-slow"}'

# (path, what shows that the page's modules ran)
PAGES = [
    ("/", f"() => ({HEADER})() && document.querySelectorAll('#fleet-rows tr.instance').length > 0"),
    (f"/explore?type=cpu&{WIDE}", READY),
    ("/diff?" + urllib.parse.urlencode({"type": "cpu", "query": DEMO_SLOW, "base_query": DEMO, **WHOLE}), READY),
    (f"/goroutines?{WIDE}", f"() => ({HEADER})() && ({IDLE})()"),
    (f"/leaks?{WIDE}", f"() => ({HEADER})() && ({IDLE})()"),
    ("/targets", f"() => ({HEADER})() && document.querySelector('#targets-summary').textContent !== ''"),
    ("/alerts", f"() => ({HEADER})() && ({IDLE})()"),
    ("/login", "() => document.readyState === 'complete'"),
    ("/bench.html?nodes=2000&repeat=2", "() => window.__bench !== undefined"),
]


@pytest.mark.parametrize(("path", "ready"), PAGES, ids=[p.split("?")[0] for p, _ in PAGES])
def test_page_loads_from_the_server_alone(
    live_server: LiveServer, browser_page: BrowserPage, path: str, ready: str
) -> None:
    bp = browser_page
    local = urllib.parse.urlsplit(live_server.url).netloc
    elsewhere: list[str] = []
    scripts: dict[str, int] = {}

    def only_this_server(route: Route) -> None:
        if urllib.parse.urlsplit(route.request.url).netloc == local:
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    def note_script(response: Response) -> None:
        where = urllib.parse.urlsplit(response.url)
        if where.path.endswith(".js"):
            scripts[where.path] = response.status

    bp.page.route("**/*", only_this_server)
    bp.page.on("response", note_script)
    bp.page.goto(live_server.url + path)
    bp.page.wait_for_function(ready, timeout=20_000)
    bp.page.wait_for_load_state("networkidle")

    assert elsewhere == []
    assert "/js/dom.js" in scripts, sorted(scripts)
    assert {p: s for p, s in scripts.items() if s not in (200, 304)} == {}
    if path.startswith(("/explore", "/diff", "/bench")):
        assert {"/js/flamegraph/decode.js", "/js/flamegraph/draw.js", "/js/flamegraph/colors.js"} <= set(scripts)
    if path.startswith("/bench"):
        assert "error" not in bp.page.evaluate("() => window.__bench")
    no_errors(bp)
