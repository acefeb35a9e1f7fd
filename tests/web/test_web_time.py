"""Every page shows times one way: local time to the second, UTC on hover; and a "Last 5 minutes" preset.

The browser runs in Asia/Kolkata (UTC+05:30, no daylight saving), so a time shown in UTC
or in the machine's zone by mistake differs from the expected text. Each ``<time>``
element's ``datetime`` is the instant; its text must be that instant in Kolkata, its
hover text the same instant in UTC.
"""

from __future__ import annotations

import re
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from server.alerts.service import Alerting
from server.settings import Settings
from server.store.repository import Store
from tests.support.browser import (
    BrowserPage,
    LiveServer,
    browser_page,
    ingest_captures,
    launch,
    require_browser,
    serving,
)
from tests.support.tools import DATA
from tests.web.test_web_explore import no_errors, params_of
from tests.web.test_web_leaks import dump

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext

__all__ = ["browser_page"]  # fixtures, used by name

KOLKATA = timezone(timedelta(hours=5, minutes=30))
DEMO = urllib.parse.urlencode({"query": '{service="demo"}'})
LOCAL = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")


@pytest.fixture(scope="module")
def browser() -> Iterator[BrowserContext]:
    """Chromium in Asia/Kolkata; browser_page takes its pages from here."""
    require_browser()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="stackyard-chromium-") as profile, sync_playwright() as playwright:
        context = launch(playwright, Path(profile), timezone_id="Asia/Kolkata")
        try:
            yield context
        finally:
            context.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str]]:
    database = f"sqlite:///{tmp_path_factory.mktemp('time') / 'stackyard.db'}"
    with serving(database) as server:
        ingest_captures(server)
        now = int(time.time())
        for k, leaked in enumerate((10, 20, 30, 40)):
            params = [("service", "demo"), ("label", "instance=demo-1"), ("time", str(now - (4 - k) * 120))]
            server.post("/api/v1/goroutines/ingest", dump(leaked), params)
        # a goroutine profile within the last 5 minutes, for the rule's "value" to see
        params = [("service", "demo"), ("label", "instance=demo-1"), ("time", str(now - 10))]
        server.post("/api/v1/ingest", (DATA / "goroutine.pb.gz").read_bytes(), params)
        rule = {"name": "Many", "query": '{service="demo"}', "type": "goroutine", "expr": "value > 1"}
        assert httpx.post(f"{server.url}/api/v1/rules", json=rule, timeout=30).status_code == 201
        yield server, database


def check_times(bp: BrowserPage, scope: str, minimum: int = 1) -> int:
    """Every <time> under ``scope``: its text the instant in local (Kolkata) time, its hover text in UTC."""
    found: list[list[str]] = bp.page.eval_on_selector_all(
        f"{scope} time", "ts => ts.map(t => [t.dateTime, t.textContent, t.title])"
    )
    assert len(found) >= minimum, (scope, found)
    for instant, text, title in found:
        at = datetime.fromisoformat(instant.replace("Z", "+00:00")).replace(microsecond=0)
        local = at.astimezone(KOLKATA).strftime("%Y-%m-%d %H:%M:%S")
        utc = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        if LOCAL.match(text):
            assert (text, title) == (local, utc)
        else:  # a relative time ("12 s ago"): the hover gives both
            assert text.endswith("ago"), text
            assert title == f"{local} local · {utc}"
    # no time in the API's own form on the page
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", bp.page.inner_text(scope))
    return len(found)


def test_every_page_shows_local_time_with_utc_on_hover(live: tuple[LiveServer, str], browser_page: BrowserPage) -> None:
    server, database = live
    bp = browser_page
    store = Store.from_url(database)
    try:  # one evaluation round, as a replica would run it: an alert and its transition with times
        Alerting(store, Settings(database_url=database)).evaluator.evaluate()
    finally:
        store.close()
    bp.page.goto(f"{server.url}/")
    bp.page.wait_for_function("() => document.querySelectorAll('tr.instance time').length >= 3")
    check_times(bp, "#fleet-table", 3)
    bp.page.goto(f"{server.url}/leaks?{DEMO}")
    bp.page.wait_for_function("() => document.querySelectorAll('#groups time').length > 0")
    check_times(bp, "#suspects-panel", 2)
    check_times(bp, "#groups-panel", 2)
    bp.page.goto(f"{server.url}/alerts")
    bp.page.wait_for_selector("#history tr[data-rule=Many] time")
    check_times(bp, "#history", 1)
    check_times(bp, "#current", 1)
    bp.page.goto(f"{server.url}/goroutines?{DEMO}")
    bp.page.locator("circle.point").first.click()
    bp.page.wait_for_selector("#moment-meta time")
    check_times(bp, "#moment-meta", 1)
    no_errors(bp)


def test_a_last_5_minutes_preset_on_every_range_picker(live: tuple[LiveServer, str], browser_page: BrowserPage) -> None:
    server, _ = live
    bp = browser_page
    bp.page.goto(f"{server.url}/explore?{DEMO}")
    bp.page.click("#range-button")
    bp.page.click(".preset[data-from='now-5m']")
    bp.page.wait_for_function("() => new URL(location.href).searchParams.get('from') === 'now-5m'")
    assert bp.page.inner_text("#range-text") == "Last 5 minutes"
    assert params_of(bp)["from"] == "now-5m"
    for path, select in (("/goroutines", "#range"), ("/diff", "#window"), ("/", "#range")):
        bp.page.goto(f"{server.url}{path}")
        options = bp.page.eval_on_selector_all(f"{select} option", "os => os.map(o => [o.value, o.textContent])")
        assert options[0][0] == "now-5m" and "5 minutes" in options[0][1], (path, options)
    no_errors(bp)
