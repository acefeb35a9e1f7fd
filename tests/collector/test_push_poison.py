"""The probe's replay: a pushing collector sends about 40 profiles, some of them poison, to a real server.

Before, a NUL in a pprof function name was a 500 on PostgreSQL, the push sink
retried the 500 at the head of its queue forever, and of about 40 profiles 13
got through. Now the poison ones are stored (NUL replaced) or refused with a
4xx (a NUL in a series label, a label name too long), and every good profile
behind them is stored, on both databases.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client import CollectorRegistry

from collector.metrics import CollectorMetrics
from collector.sinks import HttpPushSink, ScrapedProfile
from server.app import create_app
from server.settings import Settings
from server.store.repository import Store
from tests.server.store.test_nul_characters import DUMP, profile_with_nuls
from tests.support.tools import DATA

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)

CAPTURES = {kind: (DATA / f"{kind}.pb.gz").read_bytes() for kind in ("cpu", "heap", "goroutine")}
WHEN_NS = 1_790_000_000 * 10**9  # 2026-09-21, inside the tests' raw retention


def scraped(index: int) -> tuple[ScrapedProfile, str]:
    """The index-th push of the replay and what should become of it: stored, nul (stored too) or refused."""
    labels = {"service": "replay", "instance": f"10.0.0.{index}:6060"}
    when = WHEN_NS + index * 10**9
    if index % 9 == 4:
        return ScrapedProfile("cpu", labels, profile_with_nuls(), when, f"t{index}"), "nul"
    if index % 9 == 6:
        return ScrapedProfile("cpu", {**labels, "env": "a\x00b"}, CAPTURES["cpu"], when, f"t{index}"), "refused"
    if index % 9 == 8:
        return ScrapedProfile("goroutine_dump", {**labels, "n" * 300: "x"}, DUMP, when, f"t{index}"), "refused"
    kind = ("cpu", "heap", "goroutine")[index % 3]
    return ScrapedProfile(kind, labels, CAPTURES[kind], when, f"t{index}"), "stored"


def test_poison_pushes_never_hold_back_the_good_ones(settings: Settings, store: Store) -> None:
    registry = CollectorRegistry()
    metrics = CollectorMetrics(registry)
    sink = HttpPushSink("http://stackyard", metrics, transport=httpx.ASGITransport(app=create_app(settings, store)))
    pushes = [scraped(index) for index in range(40)]

    async def scenario() -> None:
        for profile, _ in pushes:
            await sink.send(profile)
        for _ in range(600):
            if sink.buffered() == 0:
                break
            await asyncio.sleep(0.05)
        await sink.close(deadline_s=10)

    asyncio.run(scenario())
    expected_stored = {p.labels["instance"] for p, fate in pushes if fate in ("stored", "nul")}
    refused = sum(1 for _, fate in pushes if fate == "refused")
    stored = {s.labels["instance"] for s in store.series.all()}
    assert stored == expected_stored
    assert registry.get_sample_value("stackyard_sink_sent_total") == len(expected_stored)
    assert registry.get_sample_value("stackyard_sink_rejected_total") == refused
    assert registry.get_sample_value("stackyard_sink_set_aside_total") == 0
    assert sink.buffered() == 0
