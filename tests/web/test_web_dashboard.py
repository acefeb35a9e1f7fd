"""The dashboard pages (overview, explore, diff, goroutines, targets) in real headless Chromium.

One live server per module, with the real in-process scraper, filled from two real Go
demo instances (tests/support/fleet.py): version 1.4, and version 1.5 with a slower
``main.cpuHogB`` and a goroutine leak. Each test asks the API for what the page should
show and compares it with what the page shows, after real mouse and keyboard input.
"""

from __future__ import annotations

import json
import math
import re
import time
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.support.browser import BrowserPage, browser, browser_page, require_browser
from tests.support.fleet import SERVICE, Fleet, running_fleet
from tests.support.tools import go_binary
from tests.web.test_web_explore import decode, fg_state, format_ns, no_errors, params_of, pixel, rects, widest

__all__ = ["browser", "browser_page"]  # fixtures, used by name

FLAME_READY = """() => {
  const fg = window.__stackyard && window.__stackyard.flamegraph;
  return fg && fg.state().nodes > 0 && !document.body.classList.contains("is-loading");
}"""
IDLE = "() => !document.body.classList.contains('is-loading')"
HOUR = {"from": "now-1h", "to": "now"}
DIM = (0xE4, 0xE7, 0xEC)  # flamegraph.js: frames outside a search or highlight
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    require_browser()
    go_binary()  # skips (or fails under STACKYARD_STRICT) without Go
    with running_fleet(tmp_path_factory.mktemp("dashboard") / "stackyard.db") as f:
        yield f


def _rfc3339(unix: float) -> str:
    return datetime.fromtimestamp(int(unix), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def open_page(bp: BrowserPage, fleet: Fleet, path: str, **params: str) -> None:
    query = urllib.parse.urlencode(params)
    bp.page.goto(f"{fleet.live.url}{path}{'?' + query if query else ''}")


def wait_target_health(fleet: Fleet) -> None:
    """Until the scraper has scraped both targets once (the base one up, the ghost one down)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ups = {t["service"]: t["up"] for t in fleet.live.get("/api/v1/targets")["targets"]}
        if ups.get(SERVICE) is True and ups.get("ghost") is False:
            return
        time.sleep(0.3)
    raise AssertionError(f"targets were not scraped in time: {ups}")


# ------------------------------------------------------------------------------------------ routing


def test_pages_are_served_at_their_paths(fleet: Fleet) -> None:
    for path, page in (("/", "overview"), ("/explore", "explore"), ("/diff", "diff"), ("/goroutines", "goroutines")):
        response = httpx.get(fleet.live.url + path, timeout=30)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
        assert f'data-page="{page}"' in response.text
    assert 'data-page="targets"' in httpx.get(fleet.live.url + "/targets", timeout=30).text
    assert httpx.get(fleet.live.url + "/js/api.js", timeout=30).status_code == 200
    assert httpx.get(fleet.live.url + "/favicon.svg", timeout=30).status_code == 200
    assert httpx.get(fleet.live.url + "/nothing", timeout=30).status_code == 404


def test_every_page_loads_without_console_errors(fleet: Fleet, browser_page: BrowserPage) -> None:
    bp = browser_page
    requested: list[str] = []
    bp.page.on("request", lambda request: requested.append(request.url))
    shop = fleet.selector()
    for path, params, ready in (
        ("/", {}, "() => document.querySelectorAll('tr.instance').length >= 3"),
        ("/explore", {"query": shop}, FLAME_READY),
        ("/diff", {"query": shop, "base_from": "now-1h", "base_to": "now-30m"}, FLAME_READY),
        ("/goroutines", {"query": shop}, "() => document.querySelectorAll('circle.point').length > 0"),
        ("/targets", {}, "() => document.querySelectorAll('.target').length === 2"),
    ):
        open_page(bp, fleet, path, **params)
        bp.page.wait_for_function(ready, timeout=20_000)
        bp.page.wait_for_function(IDLE)
        nav = bp.page.eval_on_selector_all(".nav a", "as => as.map(a => [a.textContent, a.getAttribute('href')])")
        assert nav == [
            ["Overview", "/"],
            ["Explore", "/explore"],
            ["Diff", "/diff"],
            ["Goroutines", "/goroutines"],
            ["Leaks", "/leaks"],
            ["Targets", "/targets"],
            ["Alerts", "/alerts"],
        ]
        assert bp.page.locator("#error").is_hidden(), (path, bp.page.inner_text("#error"))
        no_errors(bp)
    # no CDN: every request of every page went to the Stackyard server
    assert requested and all(url.startswith(fleet.live.url + "/") for url in requested), set(requested)


# ------------------------------------------------------------------------------------------ overview


def overview_rows(bp: BrowserPage) -> list[tuple[str, str, str]]:
    """(service, instance, status) of the overview's shown rows, top to bottom."""
    found: list[list[str]] = bp.page.eval_on_selector_all(
        "tr.instance", "trs => trs.map(t => [t.dataset.service, t.dataset.instance, t.dataset.status])"
    )
    return [(a, b, c) for a, b, c in found]


def test_overview_shows_every_instance_its_health_and_goroutines(fleet: Fleet, browser_page: BrowserPage) -> None:
    bp = browser_page
    wait_target_health(fleet)
    open_page(bp, fleet, "/")
    bp.page.wait_for_function("() => document.querySelectorAll('tr.instance').length === 3")
    answer = fleet.live.get("/api/v1/fleet")
    # one table, down instances first: the scrape target nobody listens on, then the scraped one, then the push
    ghost_instance = fleet.ghost_url.removeprefix("http://")
    assert overview_rows(bp) == [
        ("ghost", ghost_instance, "down"),
        (SERVICE, fleet.base.instance, "up"),
        (SERVICE, fleet.slow.instance, "push"),
    ]
    assert [(i["service"], i["instance"], i["status"]) for i in answer["instances"]] == overview_rows(bp)
    base = bp.page.locator(f"tr.instance[data-instance='{fleet.base.instance}']")
    slow = bp.page.locator(f"tr.instance[data-instance='{fleet.slow.instance}']")
    ghost = bp.page.locator("tr.instance[data-service='ghost']")
    # the scrape error in words, and the verdict names what is down
    assert "heap: connection refused" in ghost.locator(".errors").inner_text()
    assert "1 of 3 instances down" in bp.page.inner_text("#verdict") and "ghost" in bp.page.inner_text("#verdict")
    # the last scrape as a relative time, the moment in local time and UTC on hover
    last = base.locator(".last-scrape time")
    assert last.inner_text().endswith(" ago") and (last.get_attribute("title") or "").endswith(" UTC")
    # the newest goroutine count, as the API has it; the sparkline is the API's goroutine line
    row = next(i for i in answer["instances"] if i["instance"] == fleet.slow.instance)
    assert slow.locator(".spark-value").inner_text() == f"{row['goroutines']:,}"
    series = fleet.live.get("/api/v1/timeseries", type="goroutine", group_by="service,instance", **HOUR)["series"]
    line = next(s for s in series if s["labels"].get("instance") == fleet.slow.instance)["points"]
    spark = slow.locator("svg.sparkline")
    spark.wait_for()
    assert float(spark.get_attribute("data-first") or "nan") == line[0][1]
    assert float(spark.get_attribute("data-last") or "nan") == line[-1][1]
    assert line[-1][1] > line[0][1] + 100
    # labels of the targets and of the stored series, as chips
    assert "version=1.5" in slow.locator("td.labels").inner_text()
    # filter by words and by name=value; by status
    for typed, expected in (
        ("ghost", [("ghost", ghost_instance, "down")]),
        ("version=1.4", [(SERVICE, fleet.base.instance, "up")]),
        (f"service={SERVICE} version!=1.4", [(SERVICE, fleet.slow.instance, "push")]),
        ("refused", [("ghost", ghost_instance, "down")]),
    ):
        bp.page.fill("#filter", typed)
        bp.page.press("#filter", "Enter")
        bp.page.wait_for_function(f"() => document.querySelectorAll('tr.instance').length === {len(expected)}")
        assert overview_rows(bp) == expected, typed
    bp.page.fill("#filter", "")
    bp.page.press("#filter", "Enter")
    bp.page.select_option("#status", "up")
    bp.page.wait_for_function("() => document.querySelectorAll('tr.instance').length === 1")
    assert overview_rows(bp) == [(SERVICE, fleet.base.instance, "up")]
    assert params_of(bp)["status"] == "up"
    bp.page.select_option("#status", "")
    bp.page.wait_for_function("() => document.querySelectorAll('tr.instance').length === 3")
    # sort by goroutines, most first; by a label as its own column
    bp.page.click("th button[data-sort='goroutines']")
    shown = [float(t.replace(",", "")) for t in bp.page.locator("td.spark .spark-value").all_inner_texts() if t != "–"]
    assert shown == sorted(shown, reverse=True) and len(shown) == 2
    bp.page.select_option("#label-column", "version")
    bp.page.wait_for_function("() => document.querySelectorAll('td.label-value').length === 3")
    assert bp.page.locator("td.label-value").all_inner_texts() == ["", "1.4", "1.5"]
    assert params_of(bp)["sort"] == "label:version"
    bp.page.click("th button[data-sort='label:version']")  # reversed
    assert bp.page.locator("td.label-value").all_inner_texts() == ["1.5", "1.4", ""]
    # each row links into the views with its selector
    links = dict(slow.locator(".view-links a").evaluate_all("as => as.map(a => [a.textContent, a.href])"))
    selector = fleet.selector(instance=fleet.slow.instance)
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(links["Explore"]).query)["query"] == [selector]
    assert urllib.parse.urlsplit(links["Goroutines"]).path == "/goroutines"
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(links["Targets"]).query)["service"] == [SERVICE]
    slow.locator(".view-links a:text-is('Explore')").click()
    bp.page.wait_for_function(FLAME_READY)
    assert params_of(bp)["query"] == selector
    assert rects(bp, "main.cpuHogB")
    no_errors(bp)


# ------------------------------------------------------------------------------------------ explore


def test_explore_shows_the_demo_functions_with_the_api_values(fleet: Fleet, browser_page: BrowserPage) -> None:
    bp = browser_page
    query = fleet.selector(version="1.4")
    open_page(bp, fleet, "/explore", query=query)
    bp.page.wait_for_function(FLAME_READY)
    drawn = {r["name"] for r in rects(bp)}
    assert {"main.cpuHogA", "main.cpuHogB", "main.hashLoop", "main.fib"} <= drawn
    top = {r["name"]: r for r in fleet.live.get("/api/v1/top", type="cpu", query=query)["rows"]}
    box = widest(bp, "main.hashLoop")
    bp.page.mouse.move(box["x"] + box["w"] / 2, box["y"] + box["h"] / 2)
    tip = bp.page.locator(".fg-tooltip")
    tip.wait_for(state="visible")
    assert tip.get_attribute("data-name") == "main.hashLoop"
    # hashLoop has one caller (cpuHogB), so its node's total is its cum
    assert float(tip.get_attribute("data-total") or "nan") == top["main.hashLoop"]["cum"]
    assert format_ns(top["main.hashLoop"]["cum"]) in tip.inner_text()
    # click-to-zoom and search change what is drawn
    before = fg_state(bp)["drawn"]
    hog = widest(bp, "main.cpuHogB")
    bp.page.mouse.click(hog["x"] + 2, hog["y"] + hog["h"] / 2)
    bp.page.wait_for_function("() => window.__stackyard.flamegraph.state().zoomName === 'main.cpuHogB'")
    assert "main.fib" not in {r["name"] for r in rects(bp)}
    assert fg_state(bp)["drawn"] < before
    bp.page.keyboard.press("Escape")
    bp.page.fill(".fg-search", "fib")
    bp.page.press(".fg-search", "Enter")
    assert all(r["matched"] == ("fib" in r["name"]) for r in rects(bp) if r["name"] != "total")
    no_errors(bp)


# ------------------------------------------------------------------------------------------ diff


def diff_params(fleet: Fleet) -> dict[str, str]:
    return {
        "type": "cpu",
        "base_query": fleet.selector(version="1.4"),
        "query": fleet.selector(version="1.5"),
        "from": "now-1h",
        "to": "now",
        "base_from": "now-1h",
        "base_to": "now",
    }


def expected_colour(bp: BrowserPage, base: float, value: float) -> tuple[int, int, int]:
    """The RGB that flamegraph.js's diffColor(base, value) paints, as the canvas stores it."""
    rgb: list[int] = bp.page.evaluate(
        """async ([base, value]) => {
          const { diffColor } = await import("/js/flamegraph.js");
          const c = document.createElement("canvas").getContext("2d");
          c.fillStyle = diffColor(base, value);
          c.fillRect(0, 0, 1, 1);
          return [...c.getImageData(0, 0, 1, 1).data.slice(0, 3)];
        }""",
        [base, value],
    )
    return rgb[0], rgb[1], rgb[2]


def test_diff_colours_the_slower_function_red(fleet: Fleet, browser_page: BrowserPage) -> None:
    bp = browser_page
    params = diff_params(fleet)
    open_page(bp, fleet, "/diff", **params)
    bp.page.wait_for_function(FLAME_READY)
    graph = fleet.live.get("/api/v1/diff", format="flamegraph", **params)
    assert fg_state(bp)["diff"] and fg_state(bp)["nodes"] == graph["nodes"]
    nodes = [n for n in decode(graph) if n["name"] == "main.cpuHogB"]
    hog = widest(bp, "main.cpuHogB")
    assert (hog["baseTotal"], hog["total"]) in [(n["base_total"], n["total"]) for n in nodes]
    # -slow-factor 8 multiplies cpuHogB's work; on a busy machine the scheduler evens CPU out, so its share
    # grows by less than 8x, but it grows: red, as deep as diffColor makes that ratio
    assert hog["total"] > 1.2 * hog["baseTotal"]
    assert pixel(bp, hog["x"] + 2, hog["y"] + 2) == expected_colour(bp, hog["baseTotal"], hog["total"])
    r, g, b = pixel(bp, hog["x"] + 2, hog["y"] + 2)
    assert r > g + 15 and r > b + 15, (r, g, b)
    # the tooltip shows both values and the change
    bp.page.mouse.move(hog["x"] + hog["w"] / 2, hog["y"] + hog["h"] / 2)
    tip = bp.page.locator(".fg-tooltip")
    tip.wait_for(state="visible")
    assert float(tip.get_attribute("data-base-total") or "nan") == hog["baseTotal"]
    assert float(tip.get_attribute("data-total") or "nan") == hog["total"]
    text = tip.inner_text()
    assert format_ns(hog["baseTotal"]) in text and format_ns(hog["total"]) in text and "+" in text
    legend = bp.page.inner_text(".fg-legend")
    assert "red: more" in legend and "green: less" in legend
    # the table of largest changes is the API's, biggest first, the slower path marked as more
    top = fleet.live.get("/api/v1/diff", format="top", **params)
    first = bp.page.locator("#changes tbody tr[data-name]").first
    assert first.get_attribute("data-name") == top["rows"][0]["name"]
    assert float(first.get_attribute("data-flat-change") or "nan") == top["rows"][0]["flat_change"]
    # mix is inlined into hashLoop, so the slower path's self time is mix's: more. hashLoop keeps the loop's own
    # few instructions, whose flat change can go either way on a busy machine (CI saw "less" once); its row is
    # coloured by its own sign, and its cum (mix's time within it) grows with cpuHogB's.
    assert "more" in (bp.page.get_attribute("#changes tr[data-name='main.mix']", "class") or "")
    loop = bp.page.locator("#changes tr[data-name='main.hashLoop']")
    change = float(loop.get_attribute("data-flat-change") or "nan")
    colour = loop.get_attribute("class") or ""
    assert ("more" in colour, "less" in colour) == (change > 0, change < 0), (change, colour)
    loop_row = next(row for row in top["rows"] if row["name"] == "main.hashLoop")
    assert loop_row["cum_change"] > 0, loop_row
    # a row click highlights the function in the flame graph
    bp.page.click("#changes tr[data-name='main.mix']")
    assert fg_state(bp)["highlighted"] == "main.mix"
    assert params_of(bp)["fn"] == "main.mix"
    hog = widest(bp, "main.cpuHogB")
    assert pixel(bp, hog["x"] + 2, hog["y"] + 2) == DIM  # not main.mix: dimmed
    bp.page.click("#changes tr[data-name='main.mix']")  # a second click clears it
    assert fg_state(bp)["highlighted"] is None and "fn" not in params_of(bp)
    # normalised: the comparison scaled to the base's total, as the API computes it
    bp.page.check("#normalize")
    bp.page.wait_for_function("() => new URL(location.href).searchParams.get('normalize') === 'true'")
    bp.page.wait_for_function("() => document.querySelector('#summary').textContent.includes('scaled')")
    bp.page.wait_for_function(FLAME_READY)
    normalized = fleet.live.get("/api/v1/diff", format="flamegraph", normalize="true", **params)
    base_total, scaled_total = normalized["total"]
    assert abs(scaled_total - base_total) <= base_total / 100  # each sample rounded, as pprof -normalize does
    hog = widest(bp, "main.cpuHogB")
    expected = [(n["base_total"], n["total"]) for n in decode(normalized) if n["name"] == "main.cpuHogB"]
    assert (hog["baseTotal"], hog["total"]) in expected
    assert pixel(bp, hog["x"] + 2, hog["y"] + 2) == expected_colour(bp, hog["baseTotal"], hog["total"])
    no_errors(bp)


HEAP_SAMPLES = ["alloc_objects", "alloc_space", "inuse_objects", "inuse_space"]
SAMPLE_OPTIONS = "() => [...document.querySelectorAll('#sample option')].map(o => [o.value, o.textContent])"
HEAP_LISTED = (
    f"() => ({SAMPLE_OPTIONS})().map(([, text]) => text.replace(' (default)', '')).sort().join()"
    f" === '{','.join(HEAP_SAMPLES)}'"
)


def summary_of(bp: BrowserPage, d: dict[str, Any]) -> str:
    """The summary's two totals as diff.js writes them, formatted by format.js itself."""
    text: str = bp.page.evaluate(
        """async (d) => {
          const { formatValue } = await import("/js/format.js");
          const n = (k) => `${k} profile${k === 1 ? "" : "s"}`;
          return `Base: ${n(d.base_profiles)}, ${formatValue(d.base_total, d.unit)} · ` +
            `Comparison: ${n(d.profiles)}, ${formatValue(d.total, d.unit)} · `;
        }""",
        d,
    )
    return text


def test_diff_sample_type_is_chosen_from_the_types_of_the_data(fleet: Fleet, browser_page: BrowserPage) -> None:
    bp = browser_page
    params = {**diff_params(fleet), "type": "cpu"}
    open_page(bp, fleet, "/diff", **params)
    bp.page.wait_for_function(FLAME_READY)
    assert bp.page.eval_on_selector_all("#sample option", "os => os.map(o => o.value)") == ["", "samples"]
    # heap: the select lists the heap's sample types, as the stored profiles name them
    bp.page.select_option("#type", "heap")
    bp.page.wait_for_function(HEAP_LISTED)
    bp.page.wait_for_function(IDLE)
    # as on Explore, "" is the default type, named once the answer tells it
    heap = fleet.live.get("/api/v1/diff", format="top", **{**params, "type": "heap"})
    assert heap["sample_type"] == "inuse_space"
    assert bp.page.evaluate(SAMPLE_OPTIONS) == [
        ["", "inuse_space (default)"],
        *([n, n] for n in HEAP_SAMPLES if n != "inuse_space"),
    ]
    # choosing one: in the URL, and the totals shown are the API's for that sample type
    bp.page.select_option("#sample", "alloc_space")
    bp.page.wait_for_function("() => new URL(location.href).searchParams.get('sample') === 'alloc_space'")
    bp.page.wait_for_function(FLAME_READY)
    alloc = fleet.live.get("/api/v1/diff", format="top", **{**params, "type": "heap", "sample": "alloc_space"})
    assert alloc["sample_type"] == "alloc_space" and alloc["total"] != heap["total"]
    assert bp.page.inner_text("#summary").startswith(summary_of(bp, alloc))
    graph = fleet.live.get("/api/v1/diff", format="flamegraph", **{**params, "type": "heap", "sample": "alloc_space"})
    assert fg_state(bp)["nodes"] == graph["nodes"]
    assert bp.page.input_value("#sample") == "alloc_space"
    # a link naming a sample type opens with it selected, before and after the types are learnt
    open_page(bp, fleet, "/diff", **{**params, "type": "heap", "sample": "inuse_space"})
    bp.page.wait_for_function("() => document.querySelector('#sample').value === 'inuse_space'")
    bp.page.wait_for_function(FLAME_READY)
    bp.page.wait_for_function(f"() => ({SAMPLE_OPTIONS})().length === 5")  # "default" and the four types
    assert bp.page.evaluate(SAMPLE_OPTIONS)[0] == ["", "default"]
    assert bp.page.input_value("#sample") == "inuse_space"
    inuse = fleet.live.get("/api/v1/diff", format="top", **{**params, "type": "heap", "sample": "inuse_space"})
    assert bp.page.inner_text("#summary").startswith(summary_of(bp, inuse))
    # back to the default: the parameter leaves the URL
    bp.page.select_option("#sample", "")
    bp.page.wait_for_function("() => !new URL(location.href).searchParams.has('sample')")
    no_errors(bp)


def drag(bp: BrowserPage, selector: str, start: float, end: float) -> None:
    box = bp.page.locator(selector).bounding_box()
    assert box is not None
    y = box["y"] + 50
    bp.page.mouse.move(box["x"] + box["width"] * start, y)
    bp.page.mouse.down()
    bp.page.mouse.move(box["x"] + box["width"] * end, y, steps=6)
    bp.page.mouse.up()


def test_diff_timeline_brushes_set_the_base_and_the_comparison(fleet: Fleet, browser_page: BrowserPage) -> None:
    bp = browser_page
    open_page(bp, fleet, "/diff", query=fleet.selector())
    bp.page.wait_for_function(FLAME_READY)
    assert bp.page.locator(".timeline-mark.base").is_visible()
    assert bp.page.locator(".timeline-mark.comparison").is_visible()
    bp.page.check("#brush-base")
    drag(bp, ".timeline-canvas", 0.1, 0.4)
    bp.page.wait_for_function("() => /^\\d{4}-/.test(new URL(location.href).searchParams.get('base_from') || '')")
    bp.page.check("#brush-comparison")
    drag(bp, ".timeline-canvas", 0.5, 0.9)
    bp.page.wait_for_function("() => /^\\d{4}-/.test(new URL(location.href).searchParams.get('from') || '')")
    bp.page.wait_for_function(FLAME_READY)
    p = params_of(bp)
    for key in ("base_from", "base_to", "from", "to"):
        assert ISO.match(p[key]), p
    assert p["base_from"] < p["base_to"] <= p["from"] < p["to"]
    # the base range holds the profiles 45 minutes ago, the comparison those 25 minutes ago: as the API says
    expect = fleet.live.get(
        "/api/v1/diff", type="cpu", query=fleet.selector(), **{k: p[k] for k in ("from", "to", "base_from", "base_to")}
    )
    assert expect["base_profiles"] == 2 and expect["profiles"] == 2
    assert "Base: 2 profiles" in bp.page.inner_text("#summary")
    assert bp.page.input_value("#base-from") == p["base_from"]
    no_errors(bp)


def relative(base: float, value: float) -> float:
    """diff.js's relative change for sorting: new is +inf, gone is -100%."""
    if base == 0:
        return 0.0 if value == 0 else math.copysign(math.inf, value)
    return (value - base) / abs(base)


CHANGE_KEYS: dict[str, Any] = {
    "flat_change": lambda r: r["flat_change"],
    "flat_relative": lambda r: relative(r["base_flat"], r["flat"]),
    "cum_change": lambda r: r["cum_change"],
    "cum_relative": lambda r: relative(r["base_cum"], r["cum"]),
}


def test_diff_changes_sort_by_every_change_column_both_ways(fleet: Fleet, browser_page: BrowserPage) -> None:
    bp = browser_page
    params = diff_params(fleet)
    open_page(bp, fleet, "/diff", **params)
    bp.page.wait_for_function(FLAME_READY)
    rows = [
        r for r in fleet.live.get("/api/v1/diff", format="top", **params)["rows"] if r["flat_change"] or r["cum_change"]
    ]
    shown = "() => [...document.querySelectorAll('#changes tbody tr[data-name]')].map(t => t.dataset.name)"
    for key, value in CHANGE_KEYS.items():
        for order in ("desc", "asc"):  # a first click: the biggest increase first; a second: the biggest decrease
            bp.page.click(f"#changes th[data-sort='{key}'] button")
            bp.page.wait_for_function(f"() => new URL(location.href).searchParams.get('sort') === '{key}:{order}'")
            sign = -1 if order == "desc" else 1
            expected = [r["name"] for r in sorted(rows, key=lambda r: (sign * value(r), r["name"]))][:60]
            assert bp.page.evaluate(shown) == expected, (key, order)
            aria = bp.page.get_attribute(f"#changes th[data-sort='{key}']", "aria-sort")
            assert aria == ("descending" if order == "desc" else "ascending")
    # the biggest growth of cum, one click away, with the value the API gives
    bp.page.click("#changes th[data-sort='cum_change'] button")
    top = max(rows, key=lambda r: (r["cum_change"], [-ord(c) for c in r["name"]]))
    first = bp.page.locator("#changes tbody tr[data-name]").first
    assert first.get_attribute("data-name") == top["name"]
    assert float(first.get_attribute("data-cum-change") or "nan") == top["cum_change"]
    assert first.locator("td").nth(5).inner_text() == "+" + format_ns(top["cum_change"])
    assert "sorted by cum change, biggest increase first" in bp.page.inner_text("#changes-meta")
    # the order is part of the link: a reload shows the same table
    bp.page.reload()
    bp.page.wait_for_function(FLAME_READY)
    assert bp.page.locator("#changes tbody tr[data-name]").first.get_attribute("data-name") == top["name"]
    no_errors(bp)


# ------------------------------------------------------------------------------------------ goroutines


def points(bp: BrowserPage, key: dict[str, str] | str) -> list[tuple[float, float]]:
    k = key if isinstance(key, str) else json.dumps(key, separators=(",", ":"))
    found: list[list[float]] = bp.page.evaluate(
        "(k) => [...document.querySelectorAll('circle.point')].filter(c => c.dataset.key === k)"
        ".map(c => [Number(c.dataset.t), Number(c.dataset.v), Number(c.getAttribute('cy'))])",
        k,
    )
    return [(t, v) for t, v, _ in found]


def wait_for_fine_steps(fleet: Fleet) -> None:
    """Wait until the goroutine chart's steps are seconds, not minutes.

    The chart's step follows the series' own interval (the median gap between their newest profiles).
    The pushed profiles are 12 minutes apart, which alone gives 15-minute steps that may hold two of them;
    the base instance's scrapes every 2 s make the steps fine once a few have been stored.
    """
    deadline = time.monotonic() + 60
    while fleet.live.get("/api/v1/timeseries", type="goroutine", query=fleet.selector(), **HOUR)["step"] > 60:
        assert time.monotonic() < deadline, "the base instance's goroutine scrapes never made the steps fine"
        time.sleep(1)


def test_goroutine_chart_rises_for_the_leaking_instance(fleet: Fleet, browser_page: BrowserPage) -> None:
    bp = browser_page
    query = fleet.selector()
    wait_for_fine_steps(fleet)
    open_page(bp, fleet, "/goroutines", query=query, group_by="instance")
    bp.page.wait_for_function("() => document.querySelectorAll('circle.point').length > 0")
    api = fleet.live.get("/api/v1/timeseries", type="goroutine", query=query, group_by="instance", **HOUR)
    lines = {s["labels"]["instance"]: [tuple(p) for p in s["points"]] for s in api["series"]}
    slow_key = {"instance": fleet.slow.instance}
    slow = points(bp, slow_key)
    step = api["step"]
    values = [v for _, v in slow]
    assert values == [v for _, v in lines[fleet.slow.instance]]  # "now-1h" is read a moment apart: steps may shift
    assert all(abs(a[0] - b[0]) < step for a, b in zip(slow, lines[fleet.slow.instance], strict=True))
    assert len(values) == 4 and values == sorted(set(values)) and values[-1] > values[0] + 100
    base_values = [v for _, v in points(bp, {"instance": fleet.base.instance})]
    assert max(base_values) - min(base_values) < (values[-1] - values[0]) / 2
    # the fleet total is the two lines added up per step
    drawn = [points(bp, {"instance": d.instance}) for d in (fleet.slow, fleet.base)]
    total = points(bp, "__total__")
    assert [t for t, _ in total] == sorted({t for line in drawn for t, _ in line})
    for t, v in total:  # each line's last count at or before t, added up
        assert v == sum(max(((pt, pv) for pt, pv in line if pt <= t), default=(0, 0))[1] for line in drawn)
    assert total[-1][1] >= values[-1]
    # higher on the chart as it grows
    ys = bp.page.evaluate(
        "(k) => [...document.querySelectorAll('circle.point')].filter(c => c.dataset.key === k)"
        ".map(c => Number(c.getAttribute('cy')))",
        json.dumps(slow_key, separators=(",", ":")),
    )
    assert ys == sorted(ys, reverse=True) and ys[0] > ys[-1]
    # clicking the last point opens that moment's goroutine flame graph, with the leak in it
    t_last = slow[-1][0]
    bp.page.locator(f"circle.point[data-key='{json.dumps(slow_key, separators=(',', ':'))}']").last.click()
    bp.page.wait_for_function(FLAME_READY)
    p = params_of(bp)
    assert float(p["at"]) == t_last and json.loads(p["pick"]) == slow_key
    assert rects(bp, "main.leakyWorker")
    step = float(p["step"])
    graph = fleet.live.get(
        "/api/v1/flamegraph",
        type="goroutine",
        query=fleet.selector(instance=fleet.slow.instance),
        **{"from": str(t_last), "to": str(t_last + step - 0.001)},
    )
    assert fg_state(bp)["nodes"] == graph["nodes"]
    assert widest(bp, "total")["total"] == graph["total"] == values[-1]
    assert "1 profile" in bp.page.inner_text("#moment-meta")
    # grouped by another label: one line per version
    bp.page.select_option("#group-by", "version")
    bp.page.wait_for_function("() => new URL(location.href).searchParams.get('group_by') === 'version'")
    legend_js = "document.querySelector('#chart .timeline-legend').textContent"
    bp.page.wait_for_function(f"() => {legend_js}.includes('version=')")
    assert bp.page.locator("#chart .timeline-legend-item").count() == 3
    legend = bp.page.inner_text("#chart .timeline-legend")
    assert "version=1.4" in legend and "version=1.5" in legend and "fleet total" in legend
    no_errors(bp)


def test_an_average_is_never_shown_as_a_total(fleet: Fleet, browser_page: BrowserPage) -> None:
    bp = browser_page
    query = fleet.selector()
    # the chart's fleet total is a sum; the moment's flame graph behind it an average per profile, said so
    wait_for_fine_steps(fleet)
    open_page(bp, fleet, "/goroutines", query=query, group_by="instance")
    bp.page.wait_for_function("() => document.querySelectorAll('circle.point[data-key=\"__total__\"]').length > 0")
    assert "fleet total: the sum of every line's last count" in bp.page.inner_text("#chart-meta")
    total = bp.page.locator("circle.point[data-key='__total__']").first
    t, v = float(total.get_attribute("data-t") or "nan"), float(total.get_attribute("data-v") or "nan")
    # where the counts are close, the instance's own point lies over the total's (so that one stays
    # clickable): the click goes to the total's point itself
    total.dispatch_event("click")
    bp.page.wait_for_function(FLAME_READY)
    step = float(params_of(bp)["step"])
    span = {"from": str(t), "to": str(t + step - 0.001)}
    graph = fleet.live.get("/api/v1/flamegraph", type="goroutine", query=query, **span)
    profiles = fleet.live.get("/api/v1/profiles", type="goroutine", query=query, **span)["profiles"]
    assert graph["aggregation"] == "avg" and len(profiles) == graph["profiles"] == 2
    assert widest(bp, "total")["total"] == graph["total"] < v  # two instances: the average is below their sum
    meta = bp.page.inner_text("#moment-meta")
    shown: str = bp.page.evaluate(
        "async ([v, u]) => (await import('/js/format.js')).formatValue(v, u)", [graph["total"], graph["unit"]]
    )
    assert f"2 profiles · the flame graph is their average per profile ({shown} goroutines)" in meta
    assert "the chart's fleet total adds up the instances" in meta
    assert "average per profile of 2" in bp.page.inner_text(".fg")
    # Explore over the fleet: the number is the average per profile, not a "total". The range ends
    # a little in the past, so the live scrapes stored between the page's query and ours don't count.
    settled = _rfc3339(time.time() - 15)
    fixed = {"from": _rfc3339(time.time() - 3600), "to": settled}
    open_page(bp, fleet, "/explore", type="goroutine", query=query, **fixed)
    bp.page.wait_for_function(FLAME_READY)
    top = fleet.live.get("/api/v1/top", type="goroutine", query=query, **fixed)
    summary = bp.page.inner_text("#summary")
    assert top["aggregation"] == "avg" and top["profiles"] > 1
    assert summary.startswith(f"{top['profiles']:,} profiles merged · goroutine · average per profile ")
    assert "total" not in summary
    no_errors(bp)


# ------------------------------------------------------------------------------------------ bad input


def test_bad_selectors_show_the_server_message(fleet: Fleet, browser_page: BrowserPage) -> None:
    bp = browser_page
    broken = '{service="shop"'
    open_page(bp, fleet, "/goroutines", query=broken)
    bp.page.locator("#error").wait_for(state="visible")
    expected = httpx.get(
        f"{fleet.live.url}/api/v1/timeseries", params={"type": "goroutine", "query": broken}, timeout=30
    ).json()
    assert bp.page.inner_text("#error-message") == expected["error"]
    assert bp.page.get_attribute("#query", "aria-invalid") == "true"
    # The chart's and the flame graph's requests fail apart; the banner comes with whichever answers first.
    bp.page.wait_for_function(
        "() => (document.querySelector('.linechart-message')?.textContent ?? '').includes('query failed')",
        timeout=15_000,
    )
    open_page(bp, fleet, "/diff", query=fleet.selector(), base_query=broken)
    bp.page.locator("#error").wait_for(state="visible")
    assert bp.page.inner_text("#error-message").startswith("base_query:")
    assert bp.page.get_attribute("#base-query", "aria-invalid") == "true"
    assert bp.page.get_attribute("#query", "aria-invalid") is None
    # The table's and the flame graph's requests fail apart: the banner comes with the first answer, the
    # flame graph's message with its own (on a busy machine, after the banner is up).
    bp.page.wait_for_function(
        "() => (document.querySelector('.fg-empty')?.textContent ?? '').includes('comparison failed')",
        timeout=15_000,
    )
    no_errors(bp, allow=r"status of 400")


# ------------------------------------------------------------------------------------------ targets


def api_target(fleet: Fleet, url: str) -> dict[str, Any] | None:
    return next((t for t in fleet.live.get("/api/v1/targets")["targets"] if t["url"] == url), None)


def test_targets_page_shows_health_and_adds_pauses_removes(fleet: Fleet, browser_page: BrowserPage) -> None:
    bp = browser_page
    wait_target_health(fleet)
    open_page(bp, fleet, "/targets")
    bp.page.wait_for_function("() => document.querySelectorAll('.target').length === 2")
    base = bp.page.locator(f".target[data-url='{fleet.base.url}']")
    assert base.get_attribute("data-status") == "up"
    row = base.locator("tr.kind-row[data-kind='goroutine']")
    assert row.get_attribute("data-status") == "up"
    assert " ms" in row.locator("td").nth(3).inner_text() and "ago" in row.inner_text()
    ghost = bp.page.locator(f".target[data-url='{fleet.ghost_url}']")
    assert ghost.get_attribute("data-status") == "down"
    assert "connection refused" in ghost.locator("tr.kind-row[data-kind='heap'] .last-error").inner_text()
    # a bad URL: the API's reason on the page, nothing added
    bp.page.fill("#add-url", "ftp://example.invalid")
    bp.page.fill("#add-service", "extra")
    bp.page.click("#add-form button[type=submit]")
    bp.page.wait_for_function("() => document.querySelector('#message').dataset.kind === 'error'")
    reason = httpx.post(
        f"{fleet.live.url}/api/v1/targets", json={"url": "ftp://example.invalid", "service": "extra"}, timeout=30
    )
    assert bp.page.inner_text("#message-text") == reason.json()["error"]
    # add the slow instance as a new target
    url = fleet.slow.url + "/"
    bp.page.fill("#add-url", url)
    bp.page.fill("#add-labels", "version=1.5, team=shop")
    bp.page.fill("#add-interval", "1h")
    for kind in fleet.live.get("/api/v1/profile-kinds")["kinds"]:
        if kind["name"] != "heap":
            bp.page.uncheck(f"#add-kinds input[value='{kind['name']}']")
    bp.page.click("#add-form button[type=submit]")
    added = bp.page.locator(f".target[data-url='{url}']")
    added.wait_for()
    assert bp.page.get_attribute("#message", "data-kind") == "ok"  # the success replaced the refusal
    stored = api_target(fleet, url)
    assert stored is not None
    assert stored["labels"] == {"version": "1.5", "team": "shop"} and stored["interval"] == "1h"
    assert [p["type"] for p in stored["profiles"]] == ["heap"]
    # pause and resume
    added.locator("button.pause").click()
    status = f"document.querySelector(\".target[data-url='{url}']\").dataset.status"
    bp.page.wait_for_function(f"() => {status} === 'paused'")
    assert api_target(fleet, url)["paused"] is True  # type: ignore[index]
    added.locator("button.pause:text-is('Resume')").click()
    bp.page.wait_for_function(f"() => {status} !== 'paused'")
    assert api_target(fleet, url)["paused"] is False  # type: ignore[index]
    # remove: a second click confirms
    added.locator("button.remove").click()
    assert api_target(fleet, url) is not None
    added.locator("button.remove").click()
    added.wait_for(state="detached")
    assert api_target(fleet, url) is None
    # an execution trace from the base instance, downloaded through the link
    base.locator(".trace-seconds").fill("1")
    base.locator("button.trace").click()
    link = base.locator("a.trace-download")
    link.wait_for(timeout=20_000)
    href = link.get_attribute("href") or ""
    download = bp.page.request.get(fleet.live.url + href)
    assert download.status == 200 and len(download.body()) > 100
    assert download.body()[:16].startswith(b"go 1.")  # the runtime/trace header
    no_errors(bp, allow=r"status of 422")
