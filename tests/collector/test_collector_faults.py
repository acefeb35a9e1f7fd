"""Misbehaving targets are recorded as their own errors and never disturb a healthy Go target's schedule."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from collector.fetch import Fetcher
from collector.health import HealthState
from collector.manager import ScrapeManager
from collector.metrics import CollectorMetrics
from server.ingest.profile import ingest
from server.scrape.protocol import ScrapeHealth
from server.scrape.spec import ProfileSpec, TargetSpec
from server.settings import Settings
from server.store.repository import Store
from stackyard.ingestsink import InProcessSink
from tests.support.faultserver import FaultServer
from tests.support.godemo import running

HEAP_ONLY = (ProfileSpec("heap"),)
HealthViews = dict[str, list[ScrapeHealth]]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _manager(store: Store, settings: Settings, targets: list[TargetSpec]) -> tuple[ScrapeManager, CollectorRegistry]:
    registry = CollectorRegistry()

    def ingest_scraped(data: bytes, labels: dict[str, str], kind: str, time_ns: int, key: str) -> object:
        return ingest(store, settings, data, labels, kind, time_ns, idempotency_key=key)

    manager = ScrapeManager(
        [lambda: targets], InProcessSink(ingest_scraped), Fetcher(), CollectorMetrics(registry), sync_interval_s=0.5
    )
    return manager, registry


def test_faults_are_health_not_crashes(sqlite_url: str, tmp_path: Path) -> None:
    settings = Settings(database_url=sqlite_url, max_decompressed_bytes=4 * 1024 * 1024)
    store = Store.from_url(sqlite_url)
    vanishing_port = _free_port()
    with FaultServer() as faults, running("-leak-rate", "0") as healthy_url:
        targets = [
            TargetSpec(faults.url(b), f"fault-{b}", interval_s=1.0, timeout_s=1.0, profiles=HEAP_ONLY)
            for b in ("slow", "error500", "garbage", "truncated", "bomb", "empty", "reset", "flaky")
        ]
        vanishing = TargetSpec(f"http://127.0.0.1:{vanishing_port}", "vanishing", interval_s=1.0, profiles=HEAP_ONLY)
        healthy = TargetSpec(
            healthy_url, "healthy", interval_s=1.0, profiles=(ProfileSpec("heap"), ProfileSpec("goroutine"))
        )
        manager, registry = _manager(store, settings, [*targets, vanishing, healthy])

        async def scenario() -> tuple[HealthViews, HealthViews, int]:
            await manager.start()
            started = time.time_ns()
            await asyncio.sleep(5.5)
            first = {t.service: manager.health(t) for t in [*targets, vanishing, healthy]}
            faults.flaky_broken = False
            with running("-leak-rate", "0", addr=f"127.0.0.1:{vanishing_port}"):
                await asyncio.sleep(4.5)
                second = {t.service: manager.health(t) for t in [*targets, vanishing, healthy]}
            await manager.stop(5)
            return first, second, started

        first, second, started = asyncio.run(scenario())

    def error(service: str) -> str:
        """The health's sentence, after checking it ends with the URL that was fetched."""
        (health,) = first[service]
        assert health.up is False, f"{service} should be down: {health}"
        target = next(t for t in [*targets, vanishing] if t.service == service)
        fetched = f" (GET {target.url_for(HEAP_ONLY[0], None)})"
        assert str(health.last_error).endswith(fetched), health.last_error
        return str(health.last_error).removesuffix(fetched)

    assert error("fault-slow") == "timeout after 1s"
    assert error("fault-error500") == "HTTP 500: internal failure: profiler exploded"
    assert error("fault-garbage").startswith("not a pprof profile: ")
    assert "truncated gzip" in error("fault-truncated")
    assert "decompressed size exceeds the limit of 4194304 bytes" in error("fault-bomb")
    assert "empty body" in error("fault-empty")
    assert error("fault-reset").startswith("connection broken while reading the response")
    assert error("fault-flaky") == "HTTP 503: warming up"
    assert error("vanishing") == "connection refused"

    # The failing targets back off instead of hammering: far fewer than one request per second.
    assert faults.hits["error500"] <= 4

    # The healthy Go target kept its schedule: about one scrape per second per kind, all stored.
    for health in first["healthy"]:
        assert health.up is True and health.consecutive_failures == 0
    healthy_series = [s.id for s in store.series.all() if s.labels["service"] == "healthy"]
    stored = store.profiles.list(healthy_series, started, time.time_ns(), 1000)
    heap_count = sum(1 for p in stored if "inuse_space/bytes" in p.sample_types)
    assert heap_count >= 8, f"only {heap_count} heap scrapes in ~10 s at a 1 s interval"

    # Recovery: the flaky target and the one that came back are up again, on their own.
    for service in ("fault-flaky", "vanishing"):
        (recovered,) = second[service]
        assert recovered.up is True, f"{service} did not recover: {recovered}"
        assert recovered.consecutive_failures == 0

    exposition = _metrics_text(registry)
    assert 'stackyard_scrapes_total{kind="heap",result="timeout"}' in exposition
    assert 'stackyard_target_up{instance="' in exposition
    store.close()


def _metrics_text(registry: CollectorRegistry) -> str:
    from prometheus_client import generate_latest

    return generate_latest(registry).decode()


def test_a_cpu_profile_may_stay_silent_longer_than_httpx_defaults(sqlite_url: str) -> None:
    """Go sends nothing until a CPU profile is done: only the target's own timeout may cut it off."""
    settings = Settings(database_url=sqlite_url)
    store = Store.from_url(sqlite_url)
    with running("-leak-rate", "0") as demo:
        target = TargetSpec(demo, "long-cpu", interval_s=8.0, profiles=(ProfileSpec("cpu", seconds=7),))
        manager, _ = _manager(store, settings, [target])
        health = HealthState("cpu")
        asyncio.run(manager.scrape(target, target.profiles[0], health))
    assert health.up is True, health.last_error
    assert health.last_duration_ms is not None and health.last_duration_ms >= 7000
    store.close()
