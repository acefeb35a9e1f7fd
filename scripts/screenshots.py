"""Screenshots of every dashboard page from a real session, for the README: ``make screenshots``.

Starts the same real fleet the browser tests use (tests/support/fleet.py: two Go demo
instances, one slower in cpuHogB and leaking goroutines; their profiles pushed
through the API; the in-process scraper with a live and a dead target), opens each
page in Debian's headless chromium and saves ``docs/img/<page>.png``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import Page, sync_playwright  # noqa: E402

from tests.support.browser import launch  # noqa: E402
from tests.support.fleet import Fleet, running_fleet  # noqa: E402

OUT = ROOT / "docs" / "img"
FLAME_READY = """() => {
  const fg = window.__stackyard && window.__stackyard.flamegraph;
  return fg && fg.state().nodes > 0 && !document.body.classList.contains("is-loading");
}"""


def wait_scraped(fleet: Fleet) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if all(t["up"] is not None for t in fleet.live.get("/api/v1/targets")["targets"]):
            return
        time.sleep(0.3)


def shoot(page: Page, fleet: Fleet, name: str, path: str, params: dict[str, str], ready: str) -> Path:
    query = urllib.parse.urlencode(params)
    page.goto(f"{fleet.live.url}{path}{'?' + query if query else ''}")
    page.wait_for_function(ready, timeout=30_000)
    page.wait_for_function("() => !document.body.classList.contains('is-loading')")
    page.mouse.move(0, 0)
    return save(page, name)


def save(page: Page, name: str) -> Path:
    page.wait_for_timeout(300)  # let the last frame paint
    out = OUT / f"{name}.png"
    page.screenshot(path=str(out), full_page=True)
    print(f"saved {out.relative_to(ROOT)}")
    return out


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="stackyard-shots-") as tmp, running_fleet(Path(tmp) / "s.db") as fleet:
        wait_scraped(fleet)
        with sync_playwright() as playwright:
            context = launch(playwright, Path(tmp) / "chromium")
            page = context.new_page()
            shop = fleet.selector()
            shoot(page, fleet, "overview", "/", {}, "() => document.querySelectorAll('tr.instance').length >= 3")
            shoot(page, fleet, "explore", "/explore", {"query": shop}, FLAME_READY)
            diff = {
                "base_query": fleet.selector(version="1.4"),
                "query": fleet.selector(version="1.5"),
                "base_from": "now-1h",
                "base_to": "now",
                "from": "now-1h",
            }
            shoot(page, fleet, "diff", "/diff", diff, FLAME_READY)
            point = "() => document.querySelector('circle.point')"
            shoot(page, fleet, "goroutines", "/goroutines", {"query": shop}, point)
            key = json.dumps({"instance": fleet.slow.instance}, separators=(",", ":"))
            page.locator(f"circle.point[data-key='{key}']").last.click()
            page.wait_for_function(FLAME_READY)
            page.mouse.move(0, 0)
            save(page, "goroutines")
            shoot(page, fleet, "targets", "/targets", {}, "() => document.querySelectorAll('.target').length === 2")
            page.locator(f".target[data-url='{fleet.base.url}'] button.edit").click()  # the in-place edit form
            page.locator("form.target-edit").wait_for()
            page.mouse.move(0, 0)
            save(page, "targets")
            context.close()


if __name__ == "__main__":
    main()
