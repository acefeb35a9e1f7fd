"""Line-level views on Explore in a real headless Chromium: the Lines tab beside the top table and a function's
line table.

The page's rows and numbers are compared with the API's answers to the same
query (the API tests hold those equal to ``go tool pprof -top -lines`` and
``-list``). The server maps the demo's source files (``STACKYARD_SOURCE_ROOTS``)
but not Go's runtime, so one function shows its text and another the reason;
a service stored as before line numbers were kept answers 409, which the tab
shows in words.
"""

from __future__ import annotations

import time
import urllib.error
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import update

from server.ingest.profile import ingest
from server.migrate import upgrade
from server.settings import Settings
from server.store.linevectors import SINCE, forget
from server.store.models import StoreState
from server.store.repository import Store
from tests.support.browser import BrowserPage, LiveServer, browser, browser_page, ingest_captures, serving
from tests.support.tools import DATA
from tests.web.test_web_explore import DEMO, IDLE, READY, no_errors, open_explore, params_of, widest

__all__ = ["browser", "browser_page"]  # fixtures, used by name

REPO = DATA.parent.parent
LEGACY = '{service="legacy"}'
IDLE_AND = "() => !document.body.classList.contains('is-loading') && document.querySelector('{}')"
LINES_READY = IDLE_AND.format("#lines tbody tr[data-name]")
SOURCE_READY = IDLE_AND.format("#source-panel .routine")


@pytest.fixture(scope="module")
def lines_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The demo captures, with the demo's sources mapped; and a ``legacy`` service's block profile stored as
    migration 0015 leaves older profiles: its keys without a line leaf, line data since just after it."""
    url = f"sqlite:///{tmp_path_factory.mktemp('lines') / 'stackyard.db'}"
    upgrade(url)
    store = Store.from_url(url)
    stored_ns = (int(time.time()) - 30 * 60) * 10**9
    settings = Settings(database_url=url, retention_raw="36500d")
    ingest(store, settings, (DATA / "block.pb.gz").read_bytes(), {"service": "legacy"}, kind="block", time_ns=stored_ns)
    forget(store.engine)
    with store.engine.begin() as conn:
        conn.execute(update(StoreState).where(StoreState.key == SINCE).values(value=stored_ns + 1))
    store.close()
    with serving(url, source_roots=f"stackyard={REPO}") as live:
        ingest_captures(live)
        yield live


def _rows(bp: BrowserPage) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = bp.page.eval_on_selector_all(
        "#lines tbody tr[data-name]",
        """trs => trs.map(t => ({name: t.dataset.name, file: t.dataset.file, line: Number(t.dataset.line),
                flat: Number(t.cells[0].dataset.value), cum: Number(t.cells[2].dataset.value)}))""",
    )
    return found


def _api_rows(live: LiveServer, **params: str) -> list[dict[str, Any]]:
    answer = live.get("/api/v1/top", type="cpu", query=DEMO, granularity="lines", **params)
    return [{k: r[k] for k in ("name", "file", "line", "flat", "cum")} for r in answer["rows"]]


def _open_lines_tab(bp: BrowserPage) -> None:
    bp.page.click("#tab-lines")
    bp.page.wait_for_function(LINES_READY, timeout=15_000)


def test_the_lines_tab_shows_the_api_rows_and_stays_after_a_reload(
    lines_server: LiveServer, browser_page: BrowserPage
) -> None:
    bp = browser_page
    open_explore(bp, lines_server, query=DEMO)
    assert bp.page.get_attribute("#tab-functions", "aria-selected") == "true"
    assert bp.page.locator("#lines").is_hidden()
    _open_lines_tab(bp)
    expected = _api_rows(lines_server)
    assert _rows(bp) == expected  # the same rows, in the same order, with the same numbers
    assert params_of(bp)["rows"] == "lines"
    assert bp.page.locator("#top").is_hidden()
    marked = {
        (r["name"], r["line"]): r["inline"]
        for r in lines_server.get("/api/v1/top", type="cpu", query=DEMO, granularity="lines")["rows"]
        if r["inline"]
    }
    assert marked[("main.step", 54)] == "inline"  # pprof: main.step stackyard/examples/demo/main.go:54 (inline)
    shown_marks = bp.page.eval_on_selector_all(
        "#lines tbody tr[data-inline]",
        "trs => trs.map(t => [t.dataset.name, Number(t.dataset.line), t.dataset.inline])",
    )
    assert {(n, line): mark for n, line, mark in shown_marks} == marked
    step = bp.page.locator("#lines tr[data-name='main.step'][data-line='54'] td.where")
    assert step.inner_text().endswith(" (inline)")
    fib = bp.page.locator("#lines tr[data-name='main.fib'][data-line='117']")
    row = next(r for r in expected if (r["name"], r["line"]) == ("main.fib", 117))
    assert fib.locator("td.where").inner_text() == f"{row['file']}:117"
    assert f"{len(expected)} lines" in bp.page.inner_text("#lines .top-footer")
    # the tab is part of the link
    bp.page.reload()
    bp.page.wait_for_function(LINES_READY, timeout=15_000)
    assert bp.page.get_attribute("#tab-lines", "aria-selected") == "true"
    assert _rows(bp) == expected
    # the keyboard moves between the tabs
    bp.page.focus("#tab-lines")
    bp.page.keyboard.press("ArrowRight")
    bp.page.wait_for_function(IDLE)
    assert "rows" not in params_of(bp) and bp.page.locator("#top").is_visible()
    no_errors(bp)


def test_a_filter_chip_applies_to_the_line_rows(lines_server: LiveServer, browser_page: BrowserPage) -> None:
    bp = browser_page
    focus = r"^main\.fib$"
    open_explore(bp, lines_server, query=DEMO, rows="lines", focus=focus)
    bp.page.wait_for_function(LINES_READY, timeout=15_000)
    assert bp.page.locator("#filter-chips .filter-chip").count() == 1
    filtered = _api_rows(lines_server, focus=focus)
    assert _rows(bp) == filtered
    assert len(filtered) < len(_api_rows(lines_server))
    bp.page.locator("#filter-chips .filter-chip button").click()
    bp.page.wait_for_function(READY, timeout=15_000)
    bp.page.wait_for_function(LINES_READY, timeout=15_000)
    assert "focus" not in params_of(bp)
    assert _rows(bp) == _api_rows(lines_server)
    no_errors(bp)


def _routine(bp: BrowserPage) -> dict[str, Any]:
    found: dict[str, Any] = bp.page.eval_on_selector(
        "#source-panel .routine",
        """r => ({function: r.dataset.function, file: r.dataset.file, flat: Number(r.dataset.flat),
                 cum: Number(r.dataset.cum), reason: (r.querySelector('.source-reason') || {}).textContent || '',
                 lines: [...r.querySelectorAll('tbody tr')].map(t => ({line: Number(t.dataset.line),
                   flat: Number(t.dataset.flat), cum: Number(t.dataset.cum),
                   text: t.querySelector('td.text') ? t.querySelector('td.text').textContent : null}))})""",
    )
    return found


def test_the_line_table_of_main_fib_from_the_frame_menu_with_its_source(
    lines_server: LiveServer, browser_page: BrowserPage
) -> None:
    bp = browser_page
    open_explore(bp, lines_server, query=DEMO)
    box = widest(bp, "main.fib")
    bp.page.evaluate("(y) => window.scrollBy(0, y - window.innerHeight / 2)", box["y"])
    box = widest(bp, "main.fib")
    bp.page.mouse.click(box["x"] + min(box["w"] / 2, 30), box["y"] + box["h"] / 2, button="right")
    bp.page.locator(".frame-menu [data-action=lines]").click()
    bp.page.wait_for_function(SOURCE_READY, timeout=15_000)
    assert params_of(bp)["source"] == "main.fib"
    api = lines_server.get("/api/v1/source", type="cpu", query=DEMO, function="main.fib")
    (expected,) = api["routines"]
    shown = _routine(bp)
    assert (shown["function"], shown["file"], shown["flat"], shown["cum"]) == (
        "main.fib",
        expected["file"],
        expected["flat"],
        expected["cum"],
    )
    assert shown["lines"] == [{k: e.get(k) for k in ("line", "flat", "cum", "text")} for e in expected["lines"]]
    line = next(e for e in shown["lines"] if e["line"] == 117)
    top = {(r["name"], r["line"]): r for r in _api_rows(lines_server)}
    assert (line["flat"], line["cum"]) == (top["main.fib", 117]["flat"], top["main.fib", 117]["cum"]) != (0, 0)
    source = (REPO / "examples/demo/main.go").read_text().splitlines()
    assert line["text"] == source[116] and "fib(" in line["text"]
    assert shown["reason"] == ""
    assert "(flat, cum)" in bp.page.inner_text("#source-panel .routine-head")
    # the panel has the focus, and Escape closes it
    assert bp.page.evaluate("() => document.activeElement.id") == "source-panel"
    bp.page.keyboard.press("Escape")
    bp.page.wait_for_function("() => document.querySelector('#source-panel').hidden")
    assert "source" not in params_of(bp)
    no_errors(bp)


def test_a_file_no_root_maps_shows_the_reason_from_a_line_row_by_keyboard(
    lines_server: LiveServer, browser_page: BrowserPage
) -> None:
    bp = browser_page
    open_explore(bp, lines_server, query=DEMO, rows="lines")
    bp.page.wait_for_function(LINES_READY, timeout=15_000)
    row = bp.page.locator("#lines tr[data-name='runtime/pprof.Do']").first
    row.focus()
    bp.page.keyboard.press("Enter")  # selects its function: the button follows
    assert bp.page.inner_text("#open-lines") == "Lines of runtime/pprof.Do"
    bp.page.focus("#open-lines")
    bp.page.keyboard.press("Enter")
    bp.page.wait_for_function(SOURCE_READY, timeout=15_000)
    api = lines_server.get("/api/v1/source", type="cpu", query=DEMO, function="runtime/pprof.Do")
    shown = _routine(bp)
    (expected,) = api["routines"]
    assert expected["source"].startswith("no source root maps")
    assert shown["reason"] == f"Source not shown: {expected['source']}."
    assert [(e["line"], e["flat"], e["cum"]) for e in shown["lines"]] == [
        (e["line"], e["flat"], e["cum"]) for e in expected["lines"]
    ]
    assert all(e["text"] is None for e in shown["lines"])
    bp.page.locator(".source-close").click()
    assert bp.page.locator("#source-panel").is_hidden()
    # the focus is back on the function's row, where "l" opens its lines again
    assert bp.page.evaluate("() => document.activeElement.dataset.name") == "runtime/pprof.Do"
    bp.page.keyboard.press("l")
    bp.page.wait_for_function(SOURCE_READY, timeout=15_000)
    assert params_of(bp)["source"] == "runtime/pprof.Do"
    no_errors(bp)


def test_profiles_without_line_data_show_the_409_message_in_place_of_the_rows(
    lines_server: LiveServer, browser_page: BrowserPage
) -> None:
    bp = browser_page
    with pytest.raises(urllib.error.HTTPError) as refused:
        lines_server.get("/api/v1/top", type="block", query=LEGACY, granularity="lines")
    assert refused.value.code == 409
    message = refused.value.read().decode()
    assert "no line data before" in message
    open_explore(bp, lines_server, type="block", query=LEGACY, rows="lines")
    bp.page.wait_for_function(IDLE)
    shown = bp.page.inner_text("#lines .top-message")
    assert shown.startswith("no line data before") and shown in message
    assert bp.page.locator("#error").is_hidden()  # the function-level views answer as before
    bp.page.click("#tab-functions")
    assert bp.page.locator("#top tbody tr[data-name]").count() > 0
    # the browser logs the refused request itself; the page adds no error of its own
    no_errors(bp, allow="status of 409")


def test_a_single_profile_shows_its_own_lines(lines_server: LiveServer, browser_page: BrowserPage) -> None:
    """With ``profile=ID`` open, the Lines tab and the line table are that profile's, not the range's."""
    bp = browser_page
    one = next(p for p in lines_server.ingested if p["type"] == "cpu" and p["series"]["labels"]["instance"] == "demo-1")
    profile_id = str(one["id"])
    open_explore(bp, lines_server, query=DEMO, profile=profile_id, rows="lines", source="main.fib")
    bp.page.wait_for_function(LINES_READY, timeout=15_000)
    bp.page.wait_for_function(SOURCE_READY, timeout=15_000)
    own = lines_server.get(f"/api/v1/profiles/{profile_id}/top", granularity="lines")
    expected = [{k: r[k] for k in ("name", "file", "line", "flat", "cum")} for r in own["rows"]]
    assert _rows(bp) == expected
    assert expected != _api_rows(lines_server)  # the range holds another demo profile too
    (routine,) = lines_server.get(f"/api/v1/profiles/{profile_id}/source", function="main.fib")["routines"]
    (merged,) = lines_server.get("/api/v1/source", type="cpu", query=DEMO, function="main.fib")["routines"]
    shown = _routine(bp)
    assert (shown["flat"], shown["cum"]) == (routine["flat"], routine["cum"]) != (merged["flat"], merged["cum"])
    assert shown["lines"] == [{k: e.get(k) for k in ("line", "flat", "cum", "text")} for e in routine["lines"]]
    # a filter chip applies to the profile's lines, and the profile stays open
    bp.page.click("#tab-functions")
    bp.page.wait_for_function(IDLE)
    open_explore(bp, lines_server, query=DEMO, profile=profile_id, rows="lines", focus=r"^main\.fib$")
    bp.page.wait_for_function(LINES_READY, timeout=15_000)
    focused = lines_server.get(f"/api/v1/profiles/{profile_id}/top", granularity="lines", focus=r"^main\.fib$")
    assert _rows(bp) == [{k: r[k] for k in ("name", "file", "line", "flat", "cum")} for r in focused["rows"]]
    assert params_of(bp)["profile"] == profile_id
    no_errors(bp)
