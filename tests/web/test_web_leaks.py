"""The Leaks page in a real headless Chromium against a real server holding dumps made of real goroutine blocks.

The page is opened at /leaks, where the page router serves web/leaks.html.
"""

from __future__ import annotations

import re
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.browser import BrowserPage, LiveServer, browser, browser_page, serving
from tests.support.tools import DATA

__all__ = ["browser", "browser_page"]  # fixtures, used by name

LEAKED = [15, 24, 31, 42, 50, 63, 70]
IDLE = "() => !document.body.classList.contains('is-loading') && document.querySelector('#groups').children.length > 0"


def dump(leaked: int) -> bytes:
    blocks = (DATA / "goroutine_dump_long.txt").read_text().strip("\n").split("\n\n")
    others = [b for b in blocks if "main.leakyWorker" not in b]
    leaks = [b for b in blocks if "main.leakyWorker" in b]
    return ("\n\n".join(others + leaks[:leaked]) + "\n").encode()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    database = tmp_path_factory.mktemp("leaks") / "stackyard.db"
    with serving(f"sqlite:///{database}") as server:
        now = int(time.time())
        for i, n in enumerate(LEAKED):
            at = str(now - (len(LEAKED) - i) * 120)
            for instance, count in (("leaky:6060", n), ("calm:6060", 3)):
                params = [("service", "shop"), ("label", f"instance={instance}"), ("time", at)]
                server.post("/api/v1/goroutines/ingest", dump(count), params)
        # What Go's experimental leak profile would hold: a real goroutine-format profile, for the leaky one.
        params = [("service", "shop"), ("label", "instance=leaky:6060"), ("type", "goroutineleak")]
        server.post("/api/v1/ingest", (DATA / "goroutine.pb.gz").read_bytes(), [*params, ("time", str(now - 60))])
        yield server


def open_leaks(bp: BrowserPage, live: LiveServer, **params: str) -> None:
    query = urllib.parse.urlencode(params)
    bp.page.goto(f"{live.url}/leaks{'?' + query if query else ''}")
    bp.page.wait_for_function(IDLE, timeout=15_000)


def test_suspects_groups_stack_and_trend(browser_page: BrowserPage, live: LiveServer, tmp_path: Path) -> None:
    bp = browser_page
    open_leaks(bp, live, query='{service="shop"}')
    leaks = live.get("/api/v1/goroutines/leaks", query='{service="shop"}', **{"from": "now-1h", "to": "now"})
    (suspect,) = leaks["suspects"]
    assert suspect["labels"]["instance"] == "leaky:6060"
    items = bp.page.locator(".suspect")
    assert items.count() == 1
    line = items.first.locator(".suspect-line").inner_text()
    short = suspect["location"].rsplit("/", 1)[-1]
    assert line.startswith(f"#1 main.leakyWorker ({short}) in chan receive: {LEAKED[0]} → {LEAKED[-1]} goroutines")
    assert f"+{round(suspect['growth_per_hour']):,}/hour" in line and "created by main.startWorkers" in line

    # Its stack: frames shown when opened.
    items.first.locator("details.stack summary").click()
    frames = items.first.locator(".stack-frames li")
    assert frames.first.inner_text().startswith("main.leakyWorker stackyard/examples/demo/main.go:")
    assert frames.count() == len(suspect["frames"])

    # Its trend, on the shared line chart: the stack's counts and the instance's goroutines, as the API gives them.
    items.first.locator(".trend-link").click()
    bp.page.wait_for_selector("#trend-panel:not([hidden]) svg.linechart-svg circle.point")
    selector = "{" + ", ".join(f'{k}="{v}"' for k, v in suspect["labels"].items()) + "}"
    trend = live.get(
        f"/api/v1/goroutines/stacks/{suspect['stack_id']}/trend", query=selector, **{"from": "now-1h", "to": "now"}
    )
    (line,) = trend["series"]
    assert [p["count"] for p in line["points"]] == LEAKED
    assert drawn_points(bp, "stack") == [(p["time_ns"] / 1e9, p["count"]) for p in line["points"]]
    assert drawn_points(bp, "all") == [(p["time_ns"] / 1e9, p["goroutines"]) for p in line["points"]]
    # not a hairline: a drawn line that rises across the chart, with axes (counts and times)
    box = bp.page.locator("#trend g.line[data-key='stack'] polyline").bounding_box()
    assert box is not None and box["width"] > 150 and box["height"] > 40
    width = bp.page.eval_on_selector("#trend g.line[data-key='stack'] polyline", "p => getComputedStyle(p).strokeWidth")
    assert float(width.removesuffix("px")) >= 1.5
    axes = bp.page.locator("#trend text.axis").all_text_contents()
    assert "0" in axes and any(re.fullmatch(r"\d\d:\d\d", a) for a in axes)
    # hover values: the last point says its count
    bp.page.locator("#trend circle.point[data-key='stack']").last.hover()
    tip = bp.page.locator("#trend .timeline-tip")
    tip.wait_for(state="visible")
    assert tip.inner_text().endswith(f" · {LEAKED[-1]}") and "(this stack)" in tip.inner_text()

    # The groups at the end of the range, as sentences, biggest first, per instance.
    groups = live.get("/api/v1/goroutines/groups", query='{service="shop"}')
    leaky = next(i for i in groups["instances"] if i["labels"]["instance"] == "leaky:6060")
    top = leaky["groups"][0]
    sentences = bp.page.locator(".instance").nth(1).locator(".group-line")
    first = sentences.first.inner_text()
    assert top["median_wait_minutes"] == top["max_wait_minutes"] == 1  # the first 75 blocks waited a minute
    assert first == (
        f"{top['count']} goroutines in chan receive for over 1 minute at main.leakyWorker ({short}), "
        "created by main.startWorkers"
    )
    assert sentences.count() == len(leaky["groups"])
    locked = [s for s in sentences.all_inner_texts() if "locked" in s]
    assert len(locked) == 1 and re.search(r"at main\.lockThread .*, 2 locked to their OS thread$", locked[0])

    # Go's leak profile, where stored: the non-runtime functions by goroutines under them.
    top_leak = live.get(
        "/api/v1/top", type="goroutineleak", query='{service="shop"}', **{"from": "now-1h", "to": "now", "limit": "200"}
    )
    worker = next(r for r in top_leak["rows"] if r["name"] == "main.leakyWorker")
    assert bp.page.locator("#goleak-panel").is_visible()
    rows = bp.page.locator(".goleak-row").all_inner_texts()
    assert f"{round(worker['cum']):,} leaked goroutines under main.leakyWorker" in rows
    assert not any(r.split(" under ")[1].startswith("runtime.") for r in rows)

    # The header links the page, marked current.
    nav = bp.page.locator(".nav a[aria-current=page]")
    assert nav.inner_text() == "Leaks" and nav.get_attribute("href") == "/leaks"
    bp.page.screenshot(path=str(tmp_path / "leaks.png"), full_page=True)
    assert bp.errors == []


def test_calm_instance_and_a_bad_selector(browser_page: BrowserPage, live: LiveServer) -> None:
    bp = browser_page
    open_leaks(bp, live, query='{instance="calm:6060"}')
    assert bp.page.locator("#suspects .empty").inner_text() == "No stack grew steadily in this range."
    assert bp.page.locator("#goleak-panel").is_hidden()  # no leak profile stored for this instance
    bp.page.fill("#query", '{instance="calm:6060"')
    bp.page.click("button.run")
    bp.page.wait_for_selector("#error:not([hidden])")
    message = bp.page.locator("#error-message").inner_text()
    expected = live_error(live, '{instance="calm:6060"')
    assert message == expected and "query" in message
    assert [e for e in bp.errors if "400" not in e] == []  # the failed request is the only complaint


def drawn_points(bp: BrowserPage, key: str) -> list[tuple[float, float]]:
    found: list[list[float]] = bp.page.eval_on_selector_all(
        f"#trend circle.point[data-key='{key}']", "cs => cs.map(c => [Number(c.dataset.t), Number(c.dataset.v)])"
    )
    return [(t, v) for t, v in found]


def live_error(live: LiveServer, query: str) -> str:
    import json
    import urllib.error
    import urllib.request

    url = f"{live.url}/api/v1/goroutines/leaks?{urllib.parse.urlencode({'query': query})}"
    try:
        urllib.request.urlopen(url, timeout=10)
    except urllib.error.HTTPError as exc:
        return str(json.loads(exc.read())["error"])
    raise AssertionError("the bad selector was accepted")
