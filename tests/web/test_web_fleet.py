"""The fleet overview at fleet size, in real headless Chromium: a table that pages, filters and sorts.

A live server (no scraper: every target waits for its first scrape, three are paused) holds
200 targets across 40 services with ``zone`` and ``tier`` labels, and two services that only
push goroutine profiles. Real up and down health from real scrapes is checked in
tests/web/test_web_dashboard.py; how fast 1,000 instances paint is bench/overview.py's job.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.browser import BrowserPage, LiveServer, browser, browser_page, serving
from tests.support.tools import DATA
from tests.web.test_web_explore import no_errors, params_of

__all__ = ["browser", "browser_page"]  # fixtures, used by name

SERVICES = 40
PER_SERVICE = 5
PAUSED = {("svc-007", 2), ("svc-021", 0), ("svc-033", 4)}
STATUS_ORDER = ["down", "waiting", "up", "paused", "push"]


def labels_of(s: int, k: int) -> dict[str, str]:
    return {"zone": ("eu-1", "us-1")[(s + k) % 2], "tier": ("web", "web", "db")[k % 3]}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    database = tmp_path_factory.mktemp("fleet") / "stackyard.db"
    with serving(f"sqlite:///{database}") as server, httpx.Client(base_url=server.url, timeout=30) as client:
        for s in range(SERVICES):
            for k in range(PER_SERVICE):
                body = {
                    "url": f"http://10.{s}.{k}.1:6060",
                    "service": f"svc-{s:03d}",
                    "labels": labels_of(s, k),
                    "interval": "1h",
                    "paused": (f"svc-{s:03d}", k) in PAUSED,
                }
                response = client.post("/api/v1/targets", json=body)
                assert response.status_code == 201, response.text
        now = int(time.time())
        for service in ("pusher-a", "pusher-b"):
            params = [("service", service), ("label", "instance=p:1"), ("label", "zone=eu-1"), ("time", str(now - 60))]
            server.post("/api/v1/ingest", (DATA / "goroutine.pb.gz").read_bytes(), params)
        yield server


def rows(bp: BrowserPage) -> list[tuple[str, str, str]]:
    found: list[list[str]] = bp.page.eval_on_selector_all(
        "tr.instance", "trs => trs.map(t => [t.dataset.service, t.dataset.instance, t.dataset.status])"
    )
    return [(a, b, c) for a, b, c in found]


def expected(instances: list[dict[str, Any]], key: Any = None) -> list[tuple[str, str, str]]:
    order = sorted(
        instances,
        key=lambda i: (*(key(i) if key else ()), STATUS_ORDER.index(i["status"]), i["service"], i["instance"]),
    )
    return [(i["service"], i["instance"], i["status"]) for i in order]


def open_overview(bp: BrowserPage, live: LiveServer, **params: str) -> None:
    query = urllib.parse.urlencode(params)
    bp.page.goto(f"{live.url}/{'?' + query if query else ''}")
    bp.page.wait_for_function("() => window.__stackyard && window.__stackyard.overview")


def test_a_big_fleet_pages_filters_and_sorts(live: LiveServer, browser_page: BrowserPage) -> None:
    bp = browser_page
    instances = live.get("/api/v1/fleet")["instances"]
    assert len(instances) == SERVICES * PER_SERVICE + 2
    open_overview(bp, live)
    everything = expected(instances)
    # a page at a time, in the API's order: waiting (no scrape yet) first, the paused, those that only push last
    assert rows(bp) == everything[:50]
    assert bp.page.inner_text("#page-info") == "1–50 of 202"
    assert bp.page.evaluate("() => window.__stackyard.overview.rows") == 202
    bp.page.click("#next")
    bp.page.wait_for_function("() => document.querySelector('#page-info').textContent === '51–100 of 202'")
    assert rows(bp) == everything[50:100] and params_of(bp)["page"] == "2"
    bp.page.select_option("#page-size", "200")
    bp.page.wait_for_function("() => document.querySelectorAll('tr.instance').length === 200")
    assert rows(bp)[-5:] == everything[195:200]
    assert everything[-2:] == [("pusher-a", "p:1", "push"), ("pusher-b", "p:1", "push")]
    # filter by labels: exact name=value, name!=value, and words
    db_eu = [i for i in instances if i["labels"].get("tier") == "db" and i["labels"].get("zone") == "eu-1"]
    bp.page.fill("#filter", "tier=db zone=eu-1")
    bp.page.press("#filter", "Enter")
    bp.page.wait_for_function(f"() => document.querySelectorAll('tr.instance').length === {len(db_eu)}")
    assert rows(bp) == expected(db_eu)
    assert bp.page.inner_text("#page-info") == f"1–{len(db_eu)} of {len(db_eu)}"
    bp.page.fill("#filter", "svc-01 zone!=us-1")
    bp.page.press("#filter", "Enter")
    words = [i for i in instances if "svc-01" in i["service"] and i["labels"].get("zone") != "us-1"]
    bp.page.wait_for_function(f"() => document.querySelectorAll('tr.instance').length === {len(words)}")
    assert rows(bp) == expected(words)
    bp.page.fill("#filter", "nothing-like-this")
    bp.page.press("#filter", "Enter")
    bp.page.wait_for_selector("#fleet-empty:not([hidden])")
    assert bp.page.inner_text("#fleet-empty") == "No instance matches the filter."
    bp.page.fill("#filter", "")
    bp.page.press("#filter", "Enter")
    # by status
    bp.page.select_option("#status", "paused")
    bp.page.wait_for_function("() => document.querySelectorAll('tr.instance').length === 3")
    assert {(s, st) for s, _, st in rows(bp)} == {(s, "paused") for s, _ in PAUSED}
    bp.page.select_option("#status", "")
    # sort by a label (its own column), then by service, reversed with a second click
    bp.page.select_option("#label-column", "tier")
    bp.page.wait_for_function("() => new URL(location.href).searchParams.get('sort') === 'label:tier'")
    assert rows(bp) == expected(instances, key=lambda i: (i["labels"].get("tier", ""),))[:200]
    tiers = bp.page.locator("td.label-value").all_inner_texts()
    assert tiers == sorted(tiers)
    bp.page.click("th button[data-sort='service']")
    bp.page.click("th button[data-sort='service']")
    bp.page.wait_for_function("() => new URL(location.href).searchParams.get('order') === 'desc'")
    assert rows(bp)[0][0] == "svc-039" and rows(bp)[-1][0] == "svc-000"
    # the whole view is in the link: a reload shows the same table
    shown = rows(bp)
    bp.page.reload()
    bp.page.wait_for_function("() => window.__stackyard && window.__stackyard.overview")
    assert rows(bp) == shown
    assert bp.page.input_value("#label-column") == "tier" and bp.page.input_value("#page-size") == "200"
    no_errors(bp)
