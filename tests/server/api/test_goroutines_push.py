"""A pushing collector sends goroutine dumps to the server's dump endpoint; broken dumps never leave it."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from prometheus_client import CollectorRegistry

from collector.errors import InvalidProfile
from collector.metrics import CollectorMetrics
from collector.sinks import HttpPushSink, ScrapedProfile
from server.app import create_app
from server.goroutines.parse import parse_dump
from server.settings import Settings
from server.store.repository import Store
from tests.support.tools import DATA

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)

DUMP = (DATA / "goroutine_dump_long.txt").read_bytes()


def test_dumps_reach_the_server_and_are_stored(settings: Settings, store: Store) -> None:
    app = create_app(settings, store)
    metrics = CollectorMetrics(CollectorRegistry())
    sink = HttpPushSink("http://stackyard", metrics, transport=httpx.ASGITransport(app=app))
    when = time.time_ns()
    labels = {"service": "pushed", "instance": "10.0.0.7:6060", "env": "prod"}

    async def scenario() -> None:
        await sink.send(ScrapedProfile("goroutine_dump", labels, DUMP, when, "k"))
        with pytest.raises(InvalidProfile, match=r"not a goroutine dump: .*truncated"):
            await sink.send(ScrapedProfile("goroutine_dump", labels, DUMP[:-5], when + 1, "k"))
        await sink.close(deadline_s=10)

    asyncio.run(scenario())
    assert metrics.sink_sent._value.get() == 1 and metrics.sink_rejected._value.get() == 0
    (series,) = [s for s in store.series.all() if s.kind == "goroutine_dump"]
    assert series.labels == labels
    (dump,) = store.goroutines.dumps([series.id], 0, when + 10**6, 10)
    # The push sends Unix seconds with nine decimals as a float: within a microsecond.
    assert abs(dump.time_ns - when) < 1000 and dump.goroutines == len(parse_dump(DUMP))
