"""The Explore page in a real headless Chromium against a real server with real captures.

Each test asks the API for the numbers the page should show, then checks what
the page shows: the flame graph's drawn boxes (through the read-only debug hook
``window.__stackyard.flamegraph``), pixels read back from its canvas, and the
tooltip, table and URL after real mouse and keyboard input.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.browser import BrowserPage, LiveServer, browser, browser_page, live_server

if TYPE_CHECKING:  # playwright may be missing: tests.support.browser then skips (or fails under STACKYARD_STRICT)
    from playwright.sync_api import Route

__all__ = ["browser", "browser_page", "live_server"]  # fixtures, used by name

DEMO = '{service="demo"}'
WIDE = {"from": "now-2h", "to": "now"}
READY = """() => {
  const fg = window.__stackyard && window.__stackyard.flamegraph;
  return fg && fg.state().nodes > 0 && !document.body.classList.contains("is-loading");
}"""
IDLE = "() => !document.body.classList.contains('is-loading')"
DIM = (0xE4, 0xE7, 0xEC)  # flamegraph.js: frames that do not match an active search


# ------------------------------------------------------------------------------------------ helpers


def open_explore(bp: BrowserPage, live: LiveServer, **params: str) -> None:
    query = urllib.parse.urlencode(params)
    bp.page.goto(f"{live.url}/explore{'?' + query if query else ''}")
    bp.page.wait_for_function(READY, timeout=15_000)


def fg_state(bp: BrowserPage) -> dict[str, Any]:
    state: dict[str, Any] = bp.page.evaluate("() => window.__stackyard.flamegraph.state()")
    return state


def rects(bp: BrowserPage, name: str | None = None) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = bp.page.evaluate("(n) => window.__stackyard.flamegraph.rects(n)", name)
    return found


def widest(bp: BrowserPage, name: str) -> dict[str, Any]:
    found = rects(bp, name)
    assert found, f"{name} is not drawn"
    return max(found, key=lambda r: r["w"])


def pixel(bp: BrowserPage, x: float, y: float, canvas: str = ".fg-canvas") -> tuple[int, int, int]:
    """The colour the canvas really holds at page CSS pixel (x, y)."""
    rgb: list[int] = bp.page.evaluate(
        """([selector, x, y]) => {
          const c = document.querySelector(selector);
          const r = c.getBoundingClientRect();
          const dpr = c.width / r.width;
          const px = [Math.floor((x - r.left) * dpr), Math.floor((y - r.top) * dpr)];
          const d = c.getContext("2d").getImageData(px[0], px[1], 1, 1).data;
          return [d[0], d[1], d[2]];
        }""",
        [canvas, x, y],
    )
    return rgb[0], rgb[1], rgb[2]


def params_of(bp: BrowserPage) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(bp.page.url).query))


def decode(graph: dict[str, Any]) -> list[dict[str, Any]]:
    """The compact levels format of docs/api.md, decoded independently of the page's decoder."""
    levels = graph["levels"]
    stride = 6 if len(levels[0]) == 6 else 4
    nodes = []
    for depth, level in enumerate(levels):
        end = 0.0
        for j in range(0, len(level), stride):
            left = end + level[j]
            entry = level[j : j + stride]
            width = entry[1] + entry[3] if stride == 6 else entry[1]
            node = {"depth": depth, "left": left, "name": graph["names"][entry[-1]], "total": entry[-3]}
            node["self"] = entry[-2]
            if stride == 6:
                node["base_total"], node["base_self"] = entry[1], entry[2]
            nodes.append(node)
            end = left + width
    return nodes


def format_ns(value: float) -> str:
    """flame graph tooltips and the table format nanoseconds like this (format.js)."""
    for size, unit in ((1e9, "s"), (1e6, "ms"), (1e3, "µs")):
        if value >= size:
            x = value / size
            text = str(round(x)) if x >= 100 else f"{x:.1f}" if x >= 10 else f"{x:.2f}"
            return f"{text.rstrip('0').rstrip('.') if '.' in text else text} {unit}"
    return f"{value:g} ns"


def no_errors(bp: BrowserPage, allow: str | None = None) -> None:
    errors = [e for e in bp.errors if not (allow and re.search(allow, e))]
    assert not errors, errors


# ------------------------------------------------------------------------------------------ tests


def test_page_loads_clean_and_shows_the_demo_functions(live_server: LiveServer, browser_page: BrowserPage) -> None:
    bp = browser_page
    open_explore(bp, live_server)  # no parameters: the first service of the type is chosen
    assert params_of(bp)["query"] == DEMO
    assert bp.page.input_value("#query") == DEMO
    top = live_server.get("/api/v1/top", type="cpu", query=DEMO)
    drawn = {r["name"] for r in rects(bp)}
    for name in ("main.cpuHogA", "main.cpuHogB", "main.hashLoop", "main.mix", "main.fib", "main.step"):
        assert name in drawn
    state = fg_state(bp)
    graph = live_server.get("/api/v1/flamegraph", type="cpu", query=DEMO)
    assert state["nodes"] == graph["nodes"] == len(decode(graph))
    assert state["unit"] == "nanoseconds"
    # the table lists the API's rows, and the summary says how many profiles were merged
    first = bp.page.locator("#top tbody tr").first
    assert first.get_attribute("data-name") == top["rows"][0]["name"]
    assert bp.page.locator("#top tbody tr[data-name]").count() == len(top["rows"])
    assert f"{top['profiles']} profiles merged" in bp.page.inner_text("#summary")
    # the timeline shows one bar per instance; the download link carries the same parameters
    assert bp.page.locator(".timeline-legend-item").count() == 2
    href = bp.page.get_attribute("#download", "href") or ""
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(href).query) == {
        "type": ["cpu"],
        "query": [DEMO],
        "from": ["now-1h"],
        "to": ["now"],
    }
    assert bp.page.request.get(live_server.url + href).status == 200
    bp.page.screenshot(path="/tmp/explore.png", full_page=True)
    no_errors(bp)


def test_tooltip_shows_the_api_values(live_server: LiveServer, browser_page: BrowserPage) -> None:
    bp = browser_page
    open_explore(bp, live_server, query=DEMO)
    top = live_server.get("/api/v1/top", type="cpu", query=DEMO)
    rows = {r["name"]: r for r in top["rows"]}
    nodes = decode(live_server.get("/api/v1/flamegraph", type="cpu", query=DEMO))
    # every drawn box carries the API's node values
    by_position = {(n["depth"], n["name"]): n for n in nodes}
    for r in rects(bp):
        node = by_position.get((r["depth"], r["name"]))
        if node and sum(1 for n in nodes if (n["depth"], n["name"]) == (r["depth"], r["name"])) == 1:
            assert (r["total"], r["self"]) == (node["total"], node["self"])
    # main.mix occurs once in the tree, so its node is its flat and cum
    assert [n["name"] for n in nodes].count("main.mix") == 1
    box = widest(bp, "main.mix")
    bp.page.mouse.move(box["x"] + box["w"] / 2, box["y"] + box["h"] / 2)
    tip = bp.page.locator(".fg-tooltip")
    tip.wait_for(state="visible")
    assert tip.get_attribute("data-name") == "main.mix"
    assert float(tip.get_attribute("data-total") or "nan") == rows["main.mix"]["cum"]
    assert float(tip.get_attribute("data-self") or "nan") == rows["main.mix"]["flat"]
    text = tip.inner_text()
    assert format_ns(rows["main.mix"]["cum"]) in text
    assert f"{100 * rows['main.mix']['cum'] / top['total']:.2f}%" in text
    # main.cpuHogA occurs more than once: the widest box's values are its own node's
    hog = widest(bp, "main.cpuHogA")
    bp.page.mouse.move(hog["x"] + 3, hog["y"] + hog["h"] / 2)
    bp.page.wait_for_function("() => document.querySelector('.fg-tooltip').dataset.name === 'main.cpuHogA'")
    assert float(tip.get_attribute("data-total") or "nan") == hog["total"]
    assert hog["total"] in [n["total"] for n in nodes if n["name"] == "main.cpuHogA"]
    bp.page.mouse.move(5, 5)
    tip.wait_for(state="hidden")
    no_errors(bp)


def test_click_zooms_and_escape_or_an_ancestor_zooms_out(live_server: LiveServer, browser_page: BrowserPage) -> None:
    bp = browser_page
    open_explore(bp, live_server, query=DEMO)
    full = widest(bp, "total")
    assert rects(bp, "main.fib")
    target = widest(bp, "main.cpuHogB")
    assert target["w"] < full["w"] / 2
    bp.page.mouse.click(target["x"] + target["w"] / 2, target["y"] + target["h"] / 2)
    bp.page.wait_for_function("() => window.__stackyard.flamegraph.state().zoomName === 'main.cpuHogB'")
    zoomed = widest(bp, "main.cpuHogB")
    assert zoomed["w"] == pytest.approx(full["w"], abs=1.5)  # it fills the width
    assert rects(bp, "total") and rects(bp, "main.startCPU.func4")  # its ancestors stay above it
    assert rects(bp, "main.mix")[0]["w"] > target["w"]
    assert not rects(bp, "main.fib")  # outside the zoomed frame
    assert params_of(bp)["zoom"].endswith("main.startCPU.func4;main.cpuHogB")
    # the zoom is part of the link: a reload reopens it
    bp.page.reload()
    bp.page.wait_for_function(READY)
    assert fg_state(bp)["zoomName"] == "main.cpuHogB"
    # Escape zooms out
    bp.page.keyboard.press("Escape")
    bp.page.wait_for_function("() => window.__stackyard.flamegraph.state().zoomName === ''")
    assert rects(bp, "main.fib")
    assert "zoom" not in params_of(bp)
    # zoom in again, then click the root
    target = widest(bp, "main.hashLoop")
    bp.page.mouse.click(target["x"] + target["w"] / 2, target["y"] + target["h"] / 2)
    bp.page.wait_for_function("() => window.__stackyard.flamegraph.state().zoomName === 'main.hashLoop'")
    root = widest(bp, "total")
    bp.page.mouse.click(root["x"] + 40, root["y"] + root["h"] / 2)
    bp.page.wait_for_function("() => window.__stackyard.flamegraph.state().zoomName === ''")
    no_errors(bp)


def test_search_highlights_matches_and_counts_nested_ones_once(
    live_server: LiveServer, browser_page: BrowserPage
) -> None:
    bp = browser_page
    open_explore(bp, live_server, query=DEMO)
    top = live_server.get("/api/v1/top", type="cpu", query=DEMO)
    rows = {r["name"]: r for r in top["rows"]}
    every = widest(bp, "main.every")
    assert pixel(bp, every["x"] + 2, every["y"] + 2) != DIM
    # main.fib is recursive: nested matches count once, so the share is fib's cum
    assert max(r["depth"] for r in rects(bp, "main.fib")) - min(r["depth"] for r in rects(bp, "main.fib")) > 5
    bp.page.fill(".fg-search", r"/^main\.fib$/")
    bp.page.press(".fg-search", "Enter")
    bp.page.wait_for_function("() => (window.__stackyard.flamegraph.state().match || {}).total > 0")
    match = fg_state(bp)["match"]
    assert match["total"] == rows["main.fib"]["cum"]
    assert match["count"] == len(
        [n for n in decode(live_server.get("/api/v1/flamegraph", type="cpu", query=DEMO)) if n["name"] == "main.fib"]
    )
    assert f"{100 * rows['main.fib']['cum'] / top['total']:.2f}%" in bp.page.inner_text(".fg-summary")
    # what is drawn changed: matches keep their colour, everything else is dimmed
    fib = widest(bp, "main.fib")
    assert fib["matched"] and not widest(bp, "main.every")["matched"]
    assert pixel(bp, every["x"] + 2, every["y"] + 2) == DIM
    assert pixel(bp, fib["x"] + 2, fib["y"] + 2) != DIM
    assert params_of(bp)["search"] == r"/^main\.fib$/"
    # a substring matches both hogs; they do not nest, so the share is the sum of their cums
    bp.page.fill(".fg-search", "cpuhog")
    bp.page.wait_for_function("() => (window.__stackyard.flamegraph.state().match || {}).label === 'cpuhog'")
    assert fg_state(bp)["match"]["total"] == rows["main.cpuHogA"]["cum"] + rows["main.cpuHogB"]["cum"]
    # an invalid regex says so instead of matching nothing silently
    bp.page.fill(".fg-search", "/(/")
    bp.page.press(".fg-search", "Enter")
    assert "Invalid regular expression" in bp.page.inner_text(".fg-summary")
    no_errors(bp)


def test_top_table_sorts_filters_and_highlights_in_the_flame_graph(
    live_server: LiveServer, browser_page: BrowserPage
) -> None:
    bp = browser_page
    open_explore(bp, live_server, query=DEMO)
    top = live_server.get("/api/v1/top", type="cpu", query=DEMO)
    rows = {r["name"]: r for r in top["rows"]}
    bp.page.click("#top tr[data-name='main.mix']")
    assert bp.page.get_attribute("#top tr.selected", "data-name") == "main.mix"
    state = fg_state(bp)
    assert state["highlighted"] == "main.mix"
    assert state["match"]["total"] == rows["main.mix"]["cum"]
    assert [r["name"] for r in rects(bp) if r["matched"]] == ["main.mix"]
    mix = widest(bp, "main.mix")
    every = widest(bp, "main.every")
    assert pixel(bp, every["x"] + 2, every["y"] + 2) == DIM
    assert pixel(bp, mix["x"] + 2, mix["y"] + 2) != DIM
    assert params_of(bp)["fn"] == "main.mix"
    # a second click clears the highlight
    bp.page.click("#top tr[data-name='main.mix']")
    assert fg_state(bp)["highlighted"] is None
    assert bp.page.locator("#top tr.selected").count() == 0
    # sort by cum
    bp.page.click("#top th button[data-sort='cum']")
    shown = bp.page.eval_on_selector_all("#top tbody tr[data-name]", "trs => trs.map(t => t.dataset.name)")
    assert [rows[n]["cum"] for n in shown] == sorted((r["cum"] for r in top["rows"]), reverse=True)
    assert params_of(bp)["sort"] == "cum"
    # filter by name
    bp.page.fill("#filter", "hog")
    shown = bp.page.eval_on_selector_all("#top tbody tr[data-name]", "trs => trs.map(t => t.dataset.name)")
    assert sorted(shown) == sorted(n for n in rows if "hog" in n.lower())
    no_errors(bp)


def pasted_copy_of(bp: BrowserPage, selector: str, drag: bool = False) -> str:
    """What a user gets by selecting ``selector`` (a triple click, or a drag across it), pressing Ctrl+C and
    pasting into a text field."""
    target = bp.page.locator(selector)
    target.scroll_into_view_if_needed()
    if drag:
        box = target.bounding_box()
        assert box is not None
        bp.page.mouse.move(box["x"] + 1, box["y"] + box["height"] / 2)
        bp.page.mouse.down()
        bp.page.mouse.move(box["x"] + box["width"] - 1, box["y"] + box["height"] / 2, steps=6)
        bp.page.mouse.up()
    else:
        target.click(click_count=3)
    bp.page.keyboard.press("Control+C")
    bp.page.evaluate("() => { const i = document.createElement('textarea'); i.id = 'paste'; document.body.append(i); }")
    bp.page.focus("#paste")
    bp.page.keyboard.press("Control+V")
    pasted = bp.page.input_value("#paste")
    bp.page.evaluate("() => document.querySelector('#paste').remove()")
    return pasted


def test_copying_a_function_name_gives_exactly_the_name(live_server: LiveServer, browser_page: BrowserPage) -> None:
    bp = browser_page
    open_explore(bp, live_server, query=DEMO)
    names = [r["name"] for r in live_server.get("/api/v1/top", type="cpu", query=DEMO)["rows"]]
    # a name with a package directory ("runtime/" is shown apart, cut first when narrow) and one without
    for name in ("runtime/pprof.Do", "main.cpuHogB"):
        assert name in names
        assert pasted_copy_of(bp, f"#top tr[data-name='{name}'] .fn-name") == name
        assert pasted_copy_of(bp, f"#top tr[data-name='{name}'] .fn", drag=True) == name
    # no hidden character in the page's text either: the left-to-right mark is generated content
    shown = bp.page.eval_on_selector("#top tr[data-name='runtime/pprof.Do'] td.name", "td => td.textContent")
    assert shown == "runtime/pprof.Do"
    # several rows: one line each, the cells apart by tabs, each name whole
    first, third = (bp.page.locator("#top tbody tr[data-name]").nth(k) for k in (0, 2))
    first.scroll_into_view_if_needed()
    start, end = first.locator("td").first.bounding_box(), third.locator(".fn-name").bounding_box()
    assert start is not None and end is not None
    bp.page.mouse.move(start["x"] + 2, start["y"] + start["height"] / 2)
    bp.page.mouse.down()
    bp.page.mouse.move(end["x"] + end["width"] - 1, end["y"] + end["height"] / 2, steps=8)
    bp.page.mouse.up()
    bp.page.keyboard.press("Control+C")
    bp.page.evaluate("() => { const i = document.createElement('textarea'); i.id = 'paste'; document.body.append(i); }")
    bp.page.focus("#paste")
    bp.page.keyboard.press("Control+V")
    lines = bp.page.input_value("#paste").split("\n")
    shown_names = bp.page.eval_on_selector_all(
        "#top tbody tr[data-name]", "trs => trs.slice(0, 3).map(t => t.dataset.name)"
    )
    assert [line.split("\t")[-1] for line in lines] == shown_names
    assert all(len(line.split("\t")) == 5 for line in lines)
    no_errors(bp)


def test_a_bad_selector_shows_the_server_message(live_server: LiveServer, browser_page: BrowserPage) -> None:
    bp = browser_page
    broken = '{service="demo"'
    bp.page.goto(f"{live_server.url}/explore?{urllib.parse.urlencode({'query': broken})}")
    alert = bp.page.locator("#error")
    alert.wait_for(state="visible")
    bp.page.wait_for_function(IDLE)
    api_url = f"{live_server.url}/api/v1/top?{urllib.parse.urlencode({'type': 'cpu', 'query': broken})}"
    expected = json.loads(bp.page.request.get(api_url).text())["error"]
    message = bp.page.inner_text("#error-message")
    assert message == expected
    assert message.splitlines()[-1].strip() == "^"  # the pointer line under the selector
    assert bp.page.get_attribute("#query", "aria-invalid") == "true"
    # no blank panels: each says why it is empty
    assert "query failed" in bp.page.inner_text("#top")
    assert "query failed" in bp.page.inner_text(".fg-empty")
    # fixing the selector in the box and pressing Enter clears the error
    bp.page.fill("#query", DEMO)
    bp.page.press("#query", "Escape")
    bp.page.press("#query", "Enter")
    bp.page.wait_for_function(READY)
    assert alert.is_hidden()
    assert params_of(bp)["query"] == DEMO
    # a bad time is reported too
    bp.page.click("#range-button")
    bp.page.fill("#from", "yesterday")
    bp.page.click("#range-apply")
    alert.wait_for(state="visible")
    assert "from: 'yesterday' is not RFC 3339" in bp.page.inner_text("#error-message")
    no_errors(bp, allow=r"status of 400")


def test_state_lives_in_the_url(live_server: LiveServer, browser_page: BrowserPage) -> None:
    bp = browser_page
    open_explore(bp, live_server, query=DEMO, **WIDE)
    bp.page.select_option("#type", "heap")
    bp.page.wait_for_function("() => window.__stackyard.flamegraph.state().unit === 'bytes'")
    bp.page.wait_for_function(READY)
    assert params_of(bp)["type"] == "heap"
    options = bp.page.eval_on_selector_all("#sample option", "os => os.map(o => o.value)")
    assert set(options) == {"", "alloc_objects", "alloc_space", "inuse_objects"}  # "" is the default, inuse_space
    assert bp.page.inner_text("#sample option[value='']") == "inuse_space (default)"
    bp.page.select_option("#sample", "alloc_space")
    bp.page.wait_for_function("() => new URL(location.href).searchParams.get('sample') === 'alloc_space'")
    bp.page.wait_for_function(READY)
    top = live_server.get("/api/v1/top", type="heap", query=DEMO, sample="alloc_space", **WIDE)
    assert fg_state(bp)["nodes"] > 0
    assert bp.page.get_attribute("#top tbody tr", "data-name") == top["rows"][0]["name"]
    assert "alloc_space" in bp.page.inner_text("#summary")
    # a reload reopens the same view
    bp.page.reload()
    bp.page.wait_for_function(READY)
    assert bp.page.input_value("#type") == "heap"
    assert bp.page.input_value("#sample") == "alloc_space"
    assert bp.page.inner_text("#range-text") == "now-2h → now"
    # back and forward walk through the queries
    bp.page.go_back()
    bp.page.wait_for_function("() => document.querySelector('#sample').value === ''")
    bp.page.wait_for_function(READY)
    assert bp.page.input_value("#type") == "heap"
    bp.page.go_back()
    bp.page.wait_for_function("() => window.__stackyard.flamegraph.state().unit === 'nanoseconds'")
    assert bp.page.input_value("#type") == "cpu"
    bp.page.go_forward()
    bp.page.wait_for_function("() => window.__stackyard.flamegraph.state().unit === 'bytes'")
    no_errors(bp)


def test_time_range_presets_and_timeline_drag(live_server: LiveServer, browser_page: BrowserPage) -> None:
    bp = browser_page
    open_explore(bp, live_server, query=DEMO)
    bp.page.click("#range-button")
    bp.page.click(".preset[data-from='now-6h']")
    bp.page.wait_for_function("() => new URL(location.href).searchParams.get('from') === 'now-6h'")
    assert bp.page.inner_text("#range-text") == "Last 6 hours"
    bp.page.wait_for_function(READY)
    # drag across the last quarter of the timeline: from/to become absolute times in the URL
    box = bp.page.locator(".timeline-canvas").bounding_box()
    assert box is not None
    y = box["y"] + 50
    bp.page.mouse.move(box["x"] + box["width"] * 0.75, y)
    bp.page.mouse.down()
    bp.page.mouse.move(box["x"] + box["width"] * 0.9, y, steps=5)
    assert bp.page.locator(".timeline-selection").is_visible()
    bp.page.mouse.move(box["x"] + box["width"] - 2, y, steps=5)
    bp.page.mouse.up()
    bp.page.wait_for_function("() => /^\\d{4}-/.test(new URL(location.href).searchParams.get('from') || '')")
    bp.page.wait_for_function(READY)
    params = params_of(bp)
    iso = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
    assert iso.match(params["from"]) and iso.match(params["to"])
    assert params["from"] < params["to"]
    assert "→" in bp.page.inner_text("#range-text")
    # the selected range holds the two demo profiles (25 and 40 minutes ago): the page shows what the API says
    top = live_server.get("/api/v1/top", type="cpu", query=DEMO, **{"from": params["from"], "to": params["to"]})
    assert top["profiles"] == 2
    assert f"{top['profiles']} profiles merged" in bp.page.inner_text("#summary")
    bp.page.go_back()
    bp.page.wait_for_function("() => new URL(location.href).searchParams.get('from') === 'now-6h'")
    no_errors(bp)


def test_selector_autocomplete(live_server: LiveServer, browser_page: BrowserPage) -> None:
    bp = browser_page
    open_explore(bp, live_server, query="")
    bp.page.click("#query")
    bp.page.keyboard.type("{")
    suggestions = bp.page.locator("#query-suggestions li[data-index]")
    suggestions.first.wait_for()
    # series labels, and the captures' pprof sample label, marked as such (tests/web/test_web_docs_and_labels.py)
    names = bp.page.evaluate(
        "() => [...document.querySelectorAll('#query-suggestions li[data-index]')].map(l => l.firstChild.textContent)"
    )
    assert set(names) == {"env", "handler", "instance", "service"}
    bp.page.keyboard.type("se")
    bp.page.wait_for_function("() => document.querySelectorAll('#query-suggestions li[data-index]').length === 1")
    bp.page.keyboard.press("Enter")
    assert bp.page.input_value("#query") == '{service="'
    bp.page.wait_for_function(
        "() => [...document.querySelectorAll('#query-suggestions li[data-index]')]"
        ".map(l => l.textContent).join() === 'demo,demo-slow'"
    )
    bp.page.click("#query-suggestions li:text-is('demo-slow')")
    assert bp.page.input_value("#query") == '{service="demo-slow"}'
    bp.page.keyboard.press("Escape")
    bp.page.keyboard.press("Enter")
    bp.page.wait_for_function("() => new URL(location.href).searchParams.get('query') === '{service=\"demo-slow\"}'")
    bp.page.wait_for_function(READY)
    assert "1 profile merged" in bp.page.inner_text("#summary")
    no_errors(bp)


def test_diff_flame_graph_is_red_for_more_and_green_for_less(
    live_server: LiveServer, browser_page: BrowserPage
) -> None:
    bp = browser_page
    open_explore(bp, live_server, query=DEMO)
    # base: cpu.pb.gz (instance demo-1); comparison: cpu_slow.pb.gz, whose hashLoop → mix path does 4x the work
    params = {
        "type": "cpu",
        "query": '{service="demo-slow"}',
        "base_query": '{service="demo", instance="demo-1"}',
        "format": "flamegraph",
        **WIDE,
    }
    diff = live_server.get("/api/v1/diff", **params)
    bp.page.evaluate(
        """async (url) => {
          const { FlameGraph } = await import("/js/flamegraph.js");
          const host = document.createElement("div");
          host.id = "diff-host";
          host.style.cssText = "width: 1200px; padding: 10px; background: #fff";
          document.querySelector("main").prepend(host);
          const response = await (await fetch(url)).json();
          new FlameGraph(host).setData(response);
        }""",
        "/api/v1/diff?" + urllib.parse.urlencode(params),
    )
    state = fg_state(bp)
    assert state["diff"] and state["nodes"] == diff["nodes"]
    nodes = {n["name"]: n for n in decode(diff)}
    mix = widest(bp, "main.mix")
    assert (mix["baseTotal"], mix["total"]) == (nodes["main.mix"]["base_total"], nodes["main.mix"]["total"])
    assert mix["total"] > 2 * mix["baseTotal"]
    r, g, b = pixel(bp, mix["x"] + 2, mix["y"] + 2, "#diff-host .fg-canvas")
    assert r > g + 60 and r > b + 60, (r, g, b)  # red: more in the comparison
    # frames with less time in the comparison are green (here runtime frames that ran only in the base)
    less = [r for r in rects(bp) if r["total"] < r["baseTotal"] / 1.5 and r["w"] > 4]
    assert less
    for box in less:
        r, g, b = pixel(bp, box["x"] + 2, box["y"] + 2, "#diff-host .fg-canvas")
        assert g > r + 30 and g > b + 10, (box["name"], r, g, b)
    # unchanged is grey; the colour deepens with the relative change
    colours = bp.page.evaluate(
        """async () => {
          const { diffColor } = await import("/js/flamegraph.js");
          return [diffColor(5, 5), diffColor(100, 110), diffColor(100, 400), diffColor(100, 90), diffColor(100, 0)];
        }"""
    )
    assert colours[0] == "#cfd3da"
    assert colours[1] != colours[2] and colours[3] != colours[4]
    assert all(c.startswith("hsl(2 ") for c in colours[1:3]) and all(c.startswith("hsl(140 ") for c in colours[3:])
    # the tooltip shows both sides and the change; the legend explains the colours
    bp.page.locator("#diff-host").scroll_into_view_if_needed()
    mix = widest(bp, "main.mix")
    bp.page.mouse.move(mix["x"] + mix["w"] / 2, mix["y"] + 8)
    tip = bp.page.locator("#diff-host .fg-tooltip")
    tip.wait_for(state="visible")
    assert float(tip.get_attribute("data-base-total") or "nan") == nodes["main.mix"]["base_total"]
    assert float(tip.get_attribute("data-total") or "nan") == nodes["main.mix"]["total"]
    text = tip.inner_text()
    assert "Base" in text and "Comparison" in text and "Change" in text
    assert format_ns(nodes["main.mix"]["base_total"]) in text and format_ns(nodes["main.mix"]["total"]) in text
    assert bp.page.locator("#diff-host .fg-legend").is_visible()
    assert "→" in bp.page.inner_text("#diff-host .fg-legend")
    no_errors(bp)


def test_loading_and_empty_states_are_visible(live_server: LiveServer, browser_page: BrowserPage) -> None:
    bp = browser_page
    held: list[Route] = []

    def hold(route: Route) -> None:  # the flame graph request waits until the test releases it
        held.append(route)

    bp.page.route("**/api/v1/flamegraph?*", hold)
    bp.page.goto(f"{live_server.url}/explore?{urllib.parse.urlencode({'query': DEMO})}")
    bp.page.wait_for_function("() => document.querySelector('#top tbody tr[data-name]')")
    assert held
    panel = bp.page.locator("#flame-panel")
    assert "is-loading" in (panel.get_attribute("class") or "")
    assert panel.get_attribute("aria-busy") == "true"
    held[0].continue_()
    bp.page.unroute("**/api/v1/flamegraph?*")
    bp.page.wait_for_function(READY)
    assert panel.get_attribute("aria-busy") == "false"
    # a selector that matches nothing says so in every panel
    bp.page.fill("#query", '{service="nothing-here"}')
    bp.page.press("#query", "Escape")
    bp.page.press("#query", "Enter")
    bp.page.wait_for_function("() => document.querySelector('#summary').textContent.startsWith('No cpu profiles')")
    bp.page.wait_for_function(IDLE)
    assert bp.page.inner_text("#summary") == 'No cpu profiles match {service="nothing-here"} in this range.'
    assert bp.page.inner_text("#top .top-message") == "No samples in this range."
    assert bp.page.inner_text(".fg-empty") == "No samples in this range."
    assert bp.page.inner_text(".timeline-message") == "No profiles in this range."
    assert bp.page.locator("#error").is_hidden()
    no_errors(bp)


def test_high_dpi_canvas_is_sharp_and_hit_tests_match(live_server: LiveServer, browser_page: BrowserPage) -> None:
    bp = browser_page
    cdp = bp.page.context.new_cdp_session(bp.page)
    cdp.send(
        "Emulation.setDeviceMetricsOverride",
        {"width": 1440, "height": 1000, "deviceScaleFactor": 2, "mobile": False},
    )
    open_explore(bp, live_server, query=DEMO)
    assert bp.page.evaluate("() => devicePixelRatio") == 2
    size = bp.page.evaluate(
        "() => { const c = document.querySelector('.fg-canvas'); const r = c.getBoundingClientRect();"
        " return [c.width, c.height, r.width, r.height]; }"
    )
    assert size[0] == round(size[2] * 2) and size[1] == round(size[3] * 2)  # one canvas pixel per device pixel
    for name in ("main.mix", "main.cpuHogB", "main.step"):
        box = widest(bp, name)
        assert pixel(bp, box["x"] + 2, box["y"] + 2) != (255, 255, 255)
        assert pixel(bp, box["x"] + box["w"] + 0.5, box["y"] + box["h"] + 0.6) == (255, 255, 255)  # the gap
        bp.page.mouse.move(box["x"] + box["w"] / 2, box["y"] + box["h"] / 2)
        bp.page.wait_for_function(f"() => document.querySelector('.fg-tooltip').dataset.name === '{name}'")
    no_errors(bp)


def test_a_click_on_the_timeline_opens_one_profile(live_server: LiveServer, browser_page: BrowserPage) -> None:
    bp = browser_page
    open_explore(bp, live_server, query=DEMO)
    # the bars, found in the canvas's own pixels along the bottom row of the plot
    bars: list[list[float]] = bp.page.evaluate(
        """() => {
          const c = document.querySelector(".timeline-canvas");
          const r = c.getBoundingClientRect();
          const dpr = c.width / r.width;
          const y = Math.floor((132 - 22 - 2) * dpr);
          const row = c.getContext("2d").getImageData(0, y, c.width, 1).data;
          const xs = [];
          for (let x = Math.ceil(64 * dpr); x < c.width; x++) {  // right of the value axis (PAD.left)
            const [red, green, blue, alpha] = row.slice(x * 4, x * 4 + 4);
            if (alpha > 0 && Math.max(red, green, blue) - Math.min(red, green, blue) > 60) xs.push(x / dpr);
          }
          const bars = [];
          for (const x of xs) {
            if (bars.length && x - bars[bars.length - 1][1] <= 1.5) bars[bars.length - 1][1] = x;
            else bars.push([x, x]);
          }
          return bars.map(([a, b]) => [r.left + (a + b) / 2, r.top + 100]);
        }"""
    )
    assert len(bars) == 2, bars  # demo-1 40 minutes ago, demo-2 25 minutes ago
    bp.page.mouse.click(*bars[0])
    items = bp.page.locator("#step-profiles li")
    items.first.wait_for()
    assert items.count() == 1
    assert "instance=demo-1" in items.first.inner_text()
    profile_id = items.first.get_attribute("data-id") or ""
    expected = next(p for p in live_server.ingested if str(p["id"]) == profile_id)
    assert expected["series"]["labels"]["instance"] == "demo-1" and expected["type"] == "cpu"
    items.first.locator("button.open-profile").click()
    bp.page.wait_for_function(f"() => new URL(location.href).searchParams.get('profile') === '{profile_id}'")
    bp.page.wait_for_function(READY)
    graph = live_server.get(f"/api/v1/profiles/{profile_id}/flamegraph")
    assert fg_state(bp)["nodes"] == graph["nodes"]
    assert widest(bp, "total")["total"] == graph["total"]
    assert f"Profile #{profile_id} alone" in bp.page.inner_text("#summary")
    assert bp.page.get_attribute("#download", "href") == f"/api/v1/profiles/{profile_id}/pprof"
    assert bp.page.request.get(f"{live_server.url}/api/v1/profiles/{profile_id}/pprof").status == 200
    # back to the merged view of both profiles
    bp.page.click(".back-to-merged")
    bp.page.wait_for_function("() => !new URL(location.href).searchParams.has('profile')")
    bp.page.wait_for_function("() => document.querySelector('#summary').textContent.includes('2 profiles merged')")
    no_errors(bp)
