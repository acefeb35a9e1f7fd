"""The fleet overview at fleet size: first paint with 1,000 scrape targets across 200 services, in Chromium.

    .venv/bin/python bench/overview.py                  # 200 services x 5 instances, 5 runs each
    .venv/bin/python bench/overview.py --services 20    # a smoke run

A real server with its real in-process scraper (SQLite in a temporary directory)
scrapes five real Go demo processes (examples/demo, built with the installed Go):
each service's five instances are the five processes, told apart by an ``instance``
label, every tenth service's last instance a port nobody listens on (down). Every
target is scraped for goroutines each 30 s; the bench waits until each one has health.

Then Debian's headless chromium (Playwright) opens ``/`` in a fresh page, several
times. First paint is the page's own clock (``performance.now()``, from navigation
start) in the first animation frame with the table's rows in the DOM. The baseline,
measured in the same run against the same server: the overview as it was before
the table (one card per service, fed by the full targets list, every series and a
goroutine trend of every instance), served from a copy of ``web/`` with that
page's three files from git. Aim: the table under 1 s.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from playwright.sync_api import sync_playwright

import server.app
from bench.common import ROOT
from stackyard.runtime import build_server
from tests.support.browser import launch, serving
from tests.support.fleet import closed_port_url
from tests.support.godemo import running

AIM_MS = 1000
INSTANCES = 5
INTERVAL = "30s"
# The overview before the table (its page, its script, and the labels.js it imported "ago" from).
CARDS_COMMIT = "73ae10e"
TABLE_READY = "() => window.__stackyard && window.__stackyard.overview && window.__stackyard.overview.firstPaintMs"
CARDS_READY = "(n) => document.querySelectorAll('tr.instance').length >= n && performance.now()"


def register(url: str, services: int, demos: list[str], dead: str) -> int:
    """Targets of ``services`` services x five instances; returns how many are meant to be down."""
    down = 0
    with httpx.Client(base_url=url, timeout=60) as client:
        for s in range(services):
            for k, demo in enumerate(demos):
                is_down = s % 10 == 0 and k == len(demos) - 1
                down += is_down
                body = {
                    "url": dead if is_down else demo,
                    "service": f"svc-{s:03d}",
                    "labels": {"instance": f"svc-{s:03d}-{k}", "zone": ("eu-1", "us-1")[k % 2], "tier": "web"},
                    "interval": INTERVAL,
                    "profiles": ["goroutine"],
                }
                response = client.post("/api/v1/targets", json=body)
                response.raise_for_status()
    return down


def wait_scraped(url: str, expected: int) -> dict[str, int]:
    deadline = time.monotonic() + 300
    while True:
        statuses: dict[str, int] = httpx.get(f"{url}/api/v1/fleet", timeout=60).json()["statuses"]
        if statuses["waiting"] == 0 and sum(statuses.values()) >= expected:
            return statuses
        if time.monotonic() > deadline:
            raise RuntimeError(f"not every target was scraped in 5 minutes: {statuses}")
        time.sleep(2)


def git_show(path: str) -> str:
    return subprocess.run(
        ["git", "show", f"{CARDS_COMMIT}:{path}"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout


def web_with_cards(tmp: Path) -> Path:
    """A copy of web/ that also serves the card page of CARDS_COMMIT, at /cards."""
    web = tmp / "web"
    shutil.copytree(ROOT / "web", web)
    (web / "cards.html").write_text(git_show("web/index.html").replace("/js/overview.js", "/js/overview_cards.js"))
    (web / "js" / "overview_cards.js").write_text(
        git_show("web/js/overview.js").replace("./labels.js", "./labels_cards.js")
    )
    (web / "js" / "labels_cards.js").write_text(git_show("web/js/labels.js"))
    return web


def first_paints(context: Any, url: str, ready: str, arg: Any, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        page = context.new_page()
        page.goto(url)
        handle = page.wait_for_function(ready, arg=arg, polling="raf", timeout=120_000)
        times.append(float(handle.json_value()))
        page.close()
    return times


def timed(function: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    total = args.services * INSTANCES
    with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
        tmp = Path(folder)
        flags = ("-cpu=false", "-alloc=false", "-mutex=false", "-block=false")
        demos = [stack.enter_context(running(*flags)) for _ in range(INSTANCES)]
        # One server for both pages: the table as shipped at /, the card page it replaced at /cards.
        server.app.WEB_DIR = web_with_cards(tmp)
        live = stack.enter_context(serving(f"sqlite:///{tmp / 'stackyard.db'}", build=build_server))
        started = time.perf_counter()
        down = register(live.url, args.services, demos, closed_port_url())
        print(f"registered {total:,} targets across {args.services} services in {time.perf_counter() - started:.1f} s")
        statuses = wait_scraped(live.url, total)
        print(f"scraped every target once: {statuses} ({down} meant to be down)")
        assert statuses["down"] == down, statuses
        with sync_playwright() as playwright:
            context = launch(playwright, tmp / "chromium")
            table = first_paints(context, live.url + "/", TABLE_READY, None, args.runs)
            old = first_paints(context, live.url + "/cards", CARDS_READY, total, args.runs)
            context.close()
        fleet_ms = timed(lambda: httpx.get(f"{live.url}/api/v1/fleet", timeout=60).raise_for_status(), args.runs)
        targets_ms = timed(lambda: httpx.get(f"{live.url}/api/v1/targets", timeout=60).raise_for_status(), args.runs)
        size = len(httpx.get(f"{live.url}/api/v1/fleet", timeout=60).content)
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"load average {' '.join(load)}")
    print(f"GET /api/v1/fleet ({size / 1024:.0f} kB):    median {fleet_ms:7.1f} ms")
    print(f"GET /api/v1/targets (the old page's): median {targets_ms:7.1f} ms")
    med_table, med_old = statistics.median(table), statistics.median(old)
    aim = f"(aim < {AIM_MS} ms)"
    print(f"first paint, table ({total:,} instances): median {med_table:7.0f} ms, max {max(table):7.0f} ms {aim}")
    print(f"first paint, cards (before):        median {med_old:7.0f} ms, max {max(old):7.0f} ms")
    print(f"ratio cards / table: {med_old / med_table:.1f}x; aim met: {max(table) < AIM_MS}")


if __name__ == "__main__":
    main()
