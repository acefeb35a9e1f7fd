"""Frame analysis in a real headless Chromium: the context menu, the filter chips and the sandwich view.

The page's numbers are checked against the API's answers to the same
filtered query; the menu is driven by a real right click and by the keyboard.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from tests.support.browser import BrowserPage, LiveServer, browser, browser_page, live_server
from tests.web.test_web_explore import (
    DEMO,
    IDLE,
    READY,
    decode,
    fg_state,
    no_errors,
    open_explore,
    params_of,
    rects,
    widest,
)

__all__ = ["browser", "browser_page", "live_server"]  # fixtures, used by name

HOG = r"^main\.cpuHogA$"
SANDWICH_READY = """() => {
  const s = window.__stackyard && window.__stackyard.sandwichCallees;
  return s && s.state().nodes > 0 && !document.body.classList.contains("is-loading");
}"""


def _menu_pick(bp: BrowserPage, action: str) -> None:
    menu = bp.page.locator(".frame-menu")
    assert menu.is_visible()
    menu.locator(f"[data-action={action}]").click()
    bp.page.wait_for_function(IDLE)
    bp.page.wait_for_function(READY, timeout=15_000)


def _right_click(bp: BrowserPage, name: str) -> None:
    box = widest(bp, name)
    bp.page.evaluate("(y) => window.scrollBy(0, y - window.innerHeight / 2)", box["y"])  # into view
    box = widest(bp, name)
    bp.page.mouse.click(box["x"] + min(box["w"] / 2, 30), box["y"] + box["h"] / 2, button="right")


def _side(bp: BrowserPage, which: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = bp.page.evaluate(f"() => window.__stackyard.{which}.rects()")
    return found


def test_right_click_focus_then_remove_the_chip(live_server: LiveServer, browser_page: BrowserPage) -> None:
    bp = browser_page
    open_explore(bp, live_server, query=DEMO)
    _right_click(bp, "main.cpuHogA")
    items = bp.page.locator(".frame-menu .frame-menu-item")
    assert items.all_inner_texts() == [
        "Focus on main.cpuHogA",
        "Hide main.cpuHogA",
        "Ignore stacks with main.cpuHogA",
        "Open the sandwich of main.cpuHogA",
        "Show the lines of main.cpuHogA",  # Explore's own entry (tests/web/test_web_lines.py)
    ]
    _menu_pick(bp, "focus")
    assert params_of(bp)["focus"] == HOG
    chip = bp.page.locator("#filter-chips .filter-chip")
    assert chip.count() == 1 and "main.cpuHogA" in chip.inner_text()
    # the page shows what the API answers for the same filtered query
    top = live_server.get("/api/v1/top", type="cpu", query=DEMO, focus=HOG)
    graph = live_server.get("/api/v1/flamegraph", type="cpu", query=DEMO, focus=HOG)
    assert [r.get_attribute("data-name") for r in bp.page.locator("#top tbody tr[data-name]").all()] == [
        r["name"] for r in top["rows"]
    ]
    assert fg_state(bp)["nodes"] == graph["nodes"]
    assert {r["name"] for r in rects(bp)} <= {n["name"] for n in decode(graph)}
    assert "main.cpuHogB" not in {r["name"] for r in rects(bp)}
    assert "the filters keep" in bp.page.inner_text("#summary")
    href = bp.page.get_attribute("#download", "href") or ""
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(href).query)["focus"] == [HOG]
    chip.locator("button").click()
    bp.page.wait_for_function(READY, timeout=15_000)
    assert "focus" not in params_of(bp)
    assert bp.page.locator("#filter-chips").is_hidden()
    assert "main.cpuHogB" in {r["name"] for r in rects(bp)}
    no_errors(bp)


def test_the_keyboard_opens_the_menu_on_the_frame_under_the_pointer(
    live_server: LiveServer, browser_page: BrowserPage
) -> None:
    bp = browser_page
    open_explore(bp, live_server, query=DEMO)
    box = widest(bp, "main.cpuHogB")
    bp.page.mouse.move(box["x"] + 3, box["y"] + box["h"] / 2)
    bp.page.keyboard.press("m")
    assert bp.page.locator(".frame-menu-title").inner_text() == "main.cpuHogB"
    bp.page.keyboard.press("ArrowDown")
    bp.page.keyboard.press("ArrowDown")  # focus, hide, then ignore
    bp.page.keyboard.press("Enter")
    bp.page.wait_for_function(READY, timeout=15_000)
    assert params_of(bp)["ignore"] == r"^main\.cpuHogB$"
    top = live_server.get("/api/v1/top", type="cpu", query=DEMO, ignore=r"^main\.cpuHogB$")
    names = [r.get_attribute("data-name") for r in bp.page.locator("#top tbody tr[data-name]").all()]
    assert names == [r["name"] for r in top["rows"]] and "main.cpuHogB" not in names
    # a second filter adds a chip; Escape closes the menu without a change
    _right_click(bp, "main.fib")
    _menu_pick(bp, "hide")
    assert params_of(bp)["hide"] == r"^main\.fib$"
    assert bp.page.locator("#filter-chips .filter-chip").count() == 2
    _right_click(bp, "main.cpuHogA")
    bp.page.keyboard.press("Escape")
    assert bp.page.locator(".frame-menu").is_hidden()
    assert "focus" not in params_of(bp)
    no_errors(bp)


def test_the_sandwich_shows_callers_above_and_callees_below_and_recentres(
    live_server: LiveServer, browser_page: BrowserPage
) -> None:
    bp = browser_page
    open_explore(bp, live_server, query=DEMO)
    _right_click(bp, "main.cpuHogA")
    bp.page.locator(".frame-menu [data-action=sandwich]").click()
    bp.page.wait_for_function(SANDWICH_READY, timeout=15_000)
    assert params_of(bp)["sandwich"] == "main.cpuHogA"
    api = live_server.get("/api/v1/sandwich", type="cpu", query=DEMO, function="main.cpuHogA")
    callers, callees = _side(bp, "sandwichCallers"), _side(bp, "sandwichCallees")
    # callers are upside down: the function at the bottom, its direct callers drawn over it
    root = next(r for r in callers if r["depth"] == 0)
    above = {r["name"]: r["total"] for r in callers if r["depth"] == 1}
    assert root["name"] == "main.cpuHogA" and root["total"] == api["cum"]
    assert all(r["y"] < root["y"] for r in callers if r["depth"] == 1)
    expected = {n["name"]: n["total"] for n in decode(api["callers"]) if n["depth"] == 1}
    assert above == expected and "main.checkoutHandler.func1" in above
    below = {r["name"]: r["total"] for r in callees if r["depth"] == 1}
    assert below == {n["name"]: n["total"] for n in decode(api["callees"]) if n["depth"] == 1}
    assert list(below) == ["main.step"]
    assert "Sandwich of main.cpuHogA" in bp.page.inner_text("#sandwich-panel h2")
    # a click on a caller centres the sandwich on it
    bp.page.locator(".sandwich-callers").scroll_into_view_if_needed()
    caller = next(r for r in _side(bp, "sandwichCallers") if r["name"] == "main.checkoutHandler.func1")
    bp.page.mouse.click(caller["x"] + caller["w"] / 2, caller["y"] + caller["h"] / 2)
    bp.page.wait_for_function(
        "() => document.querySelector('#sandwich-panel h2').textContent.endsWith('main.checkoutHandler.func1')"
    )
    bp.page.wait_for_function(SANDWICH_READY, timeout=15_000)
    assert params_of(bp)["sandwich"] == "main.checkoutHandler.func1"
    assert any(r["name"] == "main.cpuHogA" and r["depth"] == 1 for r in _side(bp, "sandwichCallees"))
    # the link reopens the same sandwich; closing it takes it out of the URL
    bp.page.reload()
    bp.page.wait_for_function(SANDWICH_READY, timeout=15_000)
    assert "main.checkoutHandler.func1" in bp.page.inner_text("#sandwich-panel h2")
    bp.page.locator(".sandwich-close").click()
    bp.page.wait_for_function(IDLE)
    assert "sandwich" not in params_of(bp)
    assert bp.page.locator("#sandwich-panel").is_hidden()
    no_errors(bp)


def test_an_unknown_sandwich_function_shows_the_server_message(
    live_server: LiveServer, browser_page: BrowserPage
) -> None:
    bp = browser_page
    open_explore(bp, live_server, query=DEMO, sandwich="main.nosuch")
    bp.page.wait_for_function(IDLE)
    assert "main.nosuch" in bp.page.inner_text("#error-message")
    no_errors(bp, allow="404")


def test_diff_frames_have_the_menu_and_filters_apply_to_both_sides(
    live_server: LiveServer, browser_page: BrowserPage
) -> None:
    bp = browser_page
    bp.page.goto(f"{live_server.url}/diff?{urllib.parse.urlencode({'query': DEMO})}")
    bp.page.wait_for_function(READY, timeout=15_000)
    _right_click(bp, "main.cpuHogA")
    _menu_pick(bp, "hide")
    assert params_of(bp)["hide"] == HOG
    assert bp.page.locator("#filter-chips .filter-chip").count() == 1
    names = {r.get_attribute("data-name") for r in bp.page.locator("#changes tbody tr[data-name]").all()}
    assert "main.cpuHogA" not in names
    assert "main.cpuHogA" not in {r["name"] for r in rects(bp)}
    _right_click(bp, "main.fib")
    bp.page.locator(".frame-menu [data-action=sandwich]").click()
    bp.page.wait_for_function(SANDWICH_READY, timeout=15_000)
    assert params_of(bp)["sandwich"] == "main.fib"
    assert "comparison" in bp.page.inner_text("#sandwich-panel h2")
    no_errors(bp)
