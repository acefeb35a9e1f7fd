"""Goroutine dumps end to end with real Go: the real collector scrapes two demo instances, one leaking.

Also the goroutineleak kind, which Go 1.19 does not serve: a small loopback
server stands in for a Go build that has it (serving a real goroutine-format
profile at that path), and the real demo shows that a 404 makes the kind
"not served" (asked again only hourly) instead of failing the target.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from collector.fetch import Fetcher
from collector.manager import ScrapeManager
from collector.metrics import CollectorMetrics
from server.app import create_app
from server.pprof.decode import decode_columns
from server.query.leaks import MIN_DUMPS, find_leak_suspects
from server.scrape.protocol import ScrapeHealth
from server.scrape.spec import ProfileSpec, TargetSpec
from server.settings import Settings
from server.store.repository import Store
from stackyard.ingestsink import InProcessSink, scraped_ingest
from tests.support.godemo import running
from tests.support.tools import DATA

DUMP_EVERY = ProfileSpec("goroutine_dump", interval_s=2.0)


def _manager(store: Store, settings: Settings, targets: list[TargetSpec]) -> ScrapeManager:
    return ScrapeManager(
        [lambda: targets],
        InProcessSink(scraped_ingest(store, settings)),
        Fetcher(),
        CollectorMetrics(CollectorRegistry()),
        sync_interval_s=0.5,
    )


def _dumps(store: Store, instance: str) -> int:
    series = [s.id for s in store.series.all() if s.kind == "goroutine_dump" and s.labels["instance"] == instance]
    return len(store.goroutines.dumps(series, 0, time.time_ns(), 10_000))


@pytest.mark.timeout(180)
def test_the_leaking_instance_names_its_leak(sqlite_url: str) -> None:
    settings = Settings(database_url=sqlite_url)
    store = Store.from_url(sqlite_url)
    with running("-leak-rate", "20") as leaky_url, running("-leak-rate", "0") as calm_url:
        leaky = TargetSpec(leaky_url, "demo", interval_s=2.0, profiles=(DUMP_EVERY, ProfileSpec("goroutineleak")))
        calm = TargetSpec(calm_url, "demo", interval_s=2.0, profiles=(DUMP_EVERY, ProfileSpec("goroutineleak")))
        manager = _manager(store, settings, [leaky, calm])
        started = time.time_ns()

        async def scrape_until_found() -> tuple[list[object], int]:
            await manager.start()
            try:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    await asyncio.sleep(1)
                    found = find_leak_suspects(store, '{service="demo"}', started, time.time_ns())
                    if found:
                        # A few more scrapes: the calm instance must stay clean while the leak keeps growing.
                        await asyncio.sleep(6)
                        return list(found), time.time_ns()
                return [], time.time_ns()
            finally:
                health = {t.instance: manager.health(t) for t in (leaky, calm)}
                await manager.stop()
                # goroutineleak: Go 1.19 answers 404, which is "not served", neither up nor down.
                leak = [h for views in health.values() for h in views if h.kind == "goroutineleak"]
                assert len(leak) == 2 and all(h.not_served and h.up is None for h in leak), health
                dumps = [h for views in health.values() for h in views if h.kind == "goroutine_dump"]
                assert len(dumps) == 2 and all(h.up and h.consecutive_failures == 0 for h in dumps), health

        first, ended = asyncio.run(scrape_until_found())
        assert first, "no leak suspect within 60 s"
    suspects = find_leak_suspects(store, '{service="demo"}', started, ended)
    assert {s.labels["instance"] for s in suspects} == {leaky.instance}
    top = suspects[0]
    assert (top.function, top.created_by, top.state) == ("main.leakyWorker", "main.startWorkers", "chan receive")
    assert top.location.startswith("stackyard/examples/demo/main.go:")
    assert top.count_end > top.count_start and top.rising_fraction >= 0.5
    # 20 goroutines a second is 72,000 an hour; scrape timing jitters, so allow a wide band.
    assert 30_000 < top.growth_per_hour < 150_000
    assert _dumps(store, leaky.instance) >= MIN_DUMPS and _dumps(store, calm.instance) >= MIN_DUMPS
    assert find_leak_suspects(store, f'{{instance="{calm.instance}"}}', started, ended) == []

    with TestClient(create_app(settings, store)) as client:
        groups = client.get("/api/v1/goroutines/groups", params={"query": f'{{instance="{leaky.instance}"}}'}).json()
        (instance,) = groups["instances"]
        biggest = instance["groups"][0]
        assert (biggest["function"], biggest["state"]) == ("main.leakyWorker", "chan receive")
        assert biggest["count"] >= top.count_end  # the newest dump may be one taken while stopping
        metrics = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
        counts = {s.labels["instance"]: s.value for s in metrics["stackyard_goroutines"].samples}
        assert counts[leaky.instance] == instance["goroutines"] > counts[calm.instance] > 0
    store.close()


LEAK_PROFILE = (DATA / "goroutine.pb.gz").read_bytes()
DUMP_TEXT = (DATA / "goroutine_dump_long.txt").read_bytes()


@contextmanager
def leak_profile_target() -> Iterator[tuple[str, dict[str, int]]]:
    """Serves what a Go build with the leak profile would: goroutineleak (real goroutine-format pprof) and a dump."""
    hits: dict[str, int] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def do_GET(self) -> None:
            hits[self.path] = hits.get(self.path, 0) + 1
            body = {
                "/debug/pprof/goroutineleak": LEAK_PROFILE,
                "/debug/pprof/goroutine?debug=2": DUMP_TEXT,
                "/broken/debug/pprof/goroutine?debug=2": DUMP_TEXT[: len(DUMP_TEXT) // 2],
            }.get(self.path)
            self.send_response(200 if body else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", hits
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.timeout(120)
def test_goroutineleak_where_served_and_not_served_where_not(sqlite_url: str) -> None:
    settings = Settings(database_url=sqlite_url)
    store = Store.from_url(sqlite_url)
    kinds = (ProfileSpec("goroutineleak"), DUMP_EVERY)
    with leak_profile_target() as (fake_url, hits), running("-leak-rate", "0") as go_url:
        serving = TargetSpec(fake_url, "has-leak-profile", interval_s=1.0, profiles=kinds)
        broken = TargetSpec(fake_url, "broken-dumps", interval_s=1.0, profiles=kinds, path_prefix="/broken/debug/pprof")
        go119 = TargetSpec(go_url, "go119", interval_s=1.0, profiles=kinds)
        manager = _manager(store, settings, [serving, broken, go119])

        async def run() -> dict[str, dict[str, ScrapeHealth]]:
            await manager.start()
            await asyncio.sleep(6)
            health = {t.service: {h.kind: h for h in manager.health(t)} for t in (serving, broken, go119)}
            await manager.stop()
            return health

        health = asyncio.run(run())
    # Served: scraped and stored as its own kind, equal to the profile served.
    assert set(health["has-leak-profile"]) == {"goroutineleak", "goroutine_dump"}
    assert all(h.up for h in health["has-leak-profile"].values())
    series = [s for s in store.series.all() if s.kind == "goroutineleak"]
    assert [s.labels["service"] for s in series] == ["has-leak-profile"]
    stored = store.profiles.list([series[0].id], 0, time.time_ns(), 100)
    expected = int(decode_columns(LEAK_PROFILE, 1 << 30).sample_values.sum())
    assert len(stored) >= 3 and all(p.totals == [expected] for p in stored)
    with TestClient(create_app(settings, store)) as client:
        top = client.get(
            "/api/v1/top", params={"type": "goroutineleak", "query": '{service="has-leak-profile"}', "from": "0"}
        ).json()
        assert top["rows"] and top["rows"][0]["cum"] > 0
    # Each kind on its own schedule: the leak profile every second, the dump every two.
    assert hits["/debug/pprof/goroutine?debug=2"] < hits["/debug/pprof/goroutineleak"]
    # Not served (real Go 1.19 and the fake's broken prefix both 404): asked once, then only hourly, no error.
    go119_leak = health["go119"]["goroutineleak"]
    assert go119_leak.not_served and go119_leak.up is None and go119_leak.last_error is None
    assert go119_leak.last_scrape_ns is not None and health["go119"]["goroutine_dump"].up
    assert hits.get("/broken/debug/pprof/goroutineleak") == 1
    # A truncated dump is a scrape error naming the problem, and nothing is stored for it.
    dump_health = health["broken-dumps"]["goroutine_dump"]
    assert dump_health.up is False
    assert "not a goroutine dump" in str(dump_health.last_error)
    assert not [s for s in store.series.all() if s.labels["service"] == "broken-dumps"]
    store.close()
