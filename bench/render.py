"""Flame graph render speed in headless Chromium: web/bench.html on a synthetic and a real graph.

    .venv/bin/python bench/render.py                 # 20,000 synthetic nodes, then big_cpu.pb.gz
    .venv/bin/python bench/render.py --nodes 50000

Starts a real server (SQLite in a temporary directory), ingests
tests/data/big_cpu.pb.gz, and opens bench.html in Debian's chromium through
Playwright (never a downloaded browser). Every timing includes rasterisation of
the canvas. Targets: a first draw under 100 ms, a zoom redraw under 16 ms.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playwright.sync_api import sync_playwright

from bench.common import DATA
from tests.support.browser import launch, serving

FIRST_DRAW_MS = 100
ZOOM_MS = 16


def measure(page: Any, url: str) -> dict[str, Any]:
    page.goto(url)
    page.wait_for_function("() => window.__bench", timeout=120_000)
    results: dict[str, Any] = page.evaluate("() => window.__bench")
    if "error" in results:
        raise RuntimeError(results["error"])
    return results


def report(results: dict[str, Any]) -> None:
    print(f"\n{results['source']}")
    print(
        f"  {results['nodes']:,} nodes, {results['levels']} levels, canvas {results['canvas']} px, "
        f"{results['drawn_boxes']:,} boxes drawn, {results['merged_subpixel']:,} sub-pixel frames merged "
        f"into {results['merged_boxes']:,} boxes"
    )
    first = results["first_render_ms"]
    print(f"  first draw (decode + layout + draw): {first:8.2f} ms   (target < {FIRST_DRAW_MS} ms)")
    for key, label in (
        ("decode_ms", "decode"),
        ("set_data_and_draw_ms", "new data + draw"),
        ("redraw_full_ms", "redraw, not zoomed"),
        ("zoom_in_ms", "zoom in (redraw)"),
        ("zoom_out_ms", "zoom out (redraw)"),
        ("search_ms", "search + redraw"),
    ):
        value = results[key]
        target = f"   (target < {ZOOM_MS} ms)" if key.startswith("zoom") else ""
        print(f"  {label:<36} median {value['median']:7.2f} ms   max {value['max']:7.2f} ms{target}")
    print(f"  {'hover hit test':<36} {results['hover_hit_test_us']:7.2f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=20_000, help="synthetic graph size")
    parser.add_argument("--json", action="store_true", help="print the raw results as JSON too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        with serving(f"sqlite:///{tmp}/stackyard.db") as live, sync_playwright() as playwright:
            live.post(
                "/api/v1/ingest",
                (DATA / "big_cpu.pb.gz").read_bytes(),
                [("service", "bigservice"), ("time", str(int(time.time()) - 60))],
            )
            real = "/api/v1/flamegraph?" + urllib.parse.urlencode(
                {"type": "cpu", "query": '{service="bigservice"}', "from": "now-1h", "max_nodes": "20000"}
            )
            context = launch(playwright, Path(tmp) / "chromium")
            page = context.new_page()
            all_results = []
            for url in (f"/bench.html?nodes={args.nodes}", "/bench.html?" + urllib.parse.urlencode({"src": real})):
                results = measure(page, live.url + url)
                report(results)
                all_results.append(results)
            context.close()
        if args.json:
            print(json.dumps(all_results, indent=2))


if __name__ == "__main__":
    main()
