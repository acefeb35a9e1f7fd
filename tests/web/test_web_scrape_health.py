"""Scrape health on the Targets page with a real Go demo (Go 1.19) and the real in-process scraper, in Chromium.

- A pprof URL pasted into the Add form (``http://host:port/debug/pprof/``) is
  scraped under its prefix once, so the healthy instance shows as up; it was
  scraped at ``/debug/pprof/debug/pprof/heap`` and shown down with a 404.
- ``goroutineleak``, which Go 1.19 does not serve, says "not served by this Go
  version" after its first 404, not "not scraped yet" forever, and the target
  stays up.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from stackyard.runtime import build_server
from tests.support.browser import BrowserPage, LiveServer, browser, browser_page, require_browser, serving
from tests.support.godemo import running
from tests.support.tools import go_binary
from tests.web.test_web_explore import no_errors

__all__ = ["browser", "browser_page"]  # fixtures, used by name


@dataclass
class Site:
    live: LiveServer
    demo: str  # the Go demo's base URL

    def targets(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = httpx.get(f"{self.live.url}/api/v1/targets", timeout=30).json()["targets"]
        return found


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    require_browser()
    go_binary()  # skips (or fails under STACKYARD_STRICT) without Go
    database = tmp_path_factory.mktemp("scrape-health") / "stackyard.db"
    with (
        running("-leak-rate", "0", "-cpu=false") as demo,
        serving(f"sqlite:///{database}", lambda s: build_server(s, None)) as live,
    ):
        yield Site(live, demo)


def refresh_until(bp: BrowserPage, condition: str, timeout_s: float = 30) -> None:
    """Press the page's Refresh until ``condition`` holds (it does not refresh itself while a form has the focus)."""
    deadline = time.monotonic() + timeout_s
    while not bp.page.evaluate(condition):
        assert time.monotonic() < deadline, f"timed out waiting for {condition}"
        bp.page.click("#refresh")
        bp.page.wait_for_timeout(300)


def test_a_pasted_pprof_url_is_up_and_goroutineleak_is_not_served(site: Site, browser_page: BrowserPage) -> None:
    bp = browser_page
    page = bp.page
    page.goto(f"{site.live.url}/targets")
    page.fill("#add-url", f"{site.demo}/debug/pprof/")
    page.fill("#add-service", "pasted")
    page.fill("#add-interval", "1s")
    for box in page.locator("#add-kinds input").all():
        box.set_checked(box.get_attribute("value") in ("heap", "goroutine"))
    page.click("#add-form button[type=submit]")
    card = page.locator(f".target[data-url='{site.demo}']")
    card.wait_for(timeout=15_000)
    (stored,) = [t for t in site.targets() if t["service"] == "pasted"]
    assert (stored["url"], stored["path_prefix"]) == (site.demo, "/debug/pprof")
    # Scraped at /debug/pprof/heap: up, not "HTTP 404: Unknown profile".
    refresh_until(
        bp,
        f"() => [...document.querySelectorAll(\".target[data-url='{site.demo}'] tr.kind-row\")]"
        ".every(r => r.dataset.status === 'up')",
    )
    assert card.get_attribute("data-status") == "up"

    # goroutineleak beside goroutine: the first 404 makes it "not served", and the target stays up.
    body = {"url": site.demo, "service": "leakcheck", "interval": "1s", "profiles": ["goroutine", "goroutineleak"]}
    assert httpx.post(f"{site.live.url}/api/v1/targets", json=body, timeout=30).status_code == 201
    row = page.locator(".target:has(.target-service:text-is('leakcheck')) tr.kind-row[data-kind='goroutineleak']")
    row.wait_for(timeout=15_000)
    refresh_until(
        bp, "() => document.querySelector(\"tr.kind-row[data-kind='goroutineleak']\")?.dataset.status === 'unserved'"
    )
    assert row.locator(".status-text").inner_text() == "not served by this Go version"
    assert row.locator(".last-error").inner_text() == ""
    (checked,) = [t for t in site.targets() if t["service"] == "leakcheck"]
    leak = checked["health"]["goroutineleak"]
    assert leak["not_served"] is True and leak["up"] is None and leak["last_error"] is None
    assert checked["up"] is True and checked["health"]["goroutine"]["up"] is True
    no_errors(bp)
