"""The HTTP push sink: retries while the server is away, a bounded buffer that drops the oldest, local validation."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client import CollectorRegistry

from collector.errors import InvalidProfile
from collector.metrics import CollectorMetrics
from collector.sinks import HttpPushSink, ScrapedProfile
from tests.support.tools import DATA

GOOD = (DATA / "heap.pb.gz").read_bytes()


def _profile(index: int, data: bytes = GOOD) -> ScrapedProfile:
    return ScrapedProfile(
        "heap", {"service": "svc", "instance": f"i{index}"}, data, 1_700_000_000_000_000_000 + index, "k"
    )


class FlakyServer:
    """Answers 503 (or refuses) until ``up`` is set, then records every push."""

    def __init__(self) -> None:
        self.up = False
        self.refuse = False
        self.received: list[httpx.Request] = []
        self.status = 201

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.refuse:
            raise httpx.ConnectError("connection refused", request=request)
        if not self.up:
            return httpx.Response(503, json={"error": "database unavailable"})
        self.received.append(request)
        return httpx.Response(self.status, json={"id": len(self.received)})


def test_retries_until_the_server_is_back_and_keeps_order() -> None:
    server = FlakyServer()
    metrics = CollectorMetrics(CollectorRegistry())
    sink = HttpPushSink("http://stackyard", metrics, transport=httpx.MockTransport(server))

    async def scenario() -> None:
        for index in range(5):
            await sink.send(_profile(index))
        await asyncio.sleep(0.3)
        assert server.received == []
        assert sink.buffered() == 5
        server.up = True
        await sink.close(deadline_s=10)

    asyncio.run(scenario())
    instances = [dict(r.url.params.multi_items())["label"] for r in server.received]
    assert instances == [f"instance=i{i}" for i in range(5)]
    first = server.received[0]
    assert first.url.path == "/api/v1/ingest"
    assert first.url.params["service"] == "svc" and first.url.params["type"] == "heap"
    assert first.content == GOOD
    assert metrics.sink_sent._value.get() == 5


def test_full_buffer_drops_the_oldest_and_counts_it() -> None:
    server = FlakyServer()
    server.refuse = True
    registry = CollectorRegistry()
    metrics = CollectorMetrics(registry)
    sink = HttpPushSink("http://stackyard", metrics, buffer_size=3, transport=httpx.MockTransport(server))

    async def scenario() -> list[str]:
        for index in range(5):
            await sink.send(_profile(index))
        waiting = [queued.profile.labels["instance"] for queued in sink._buffer]
        await sink.close(deadline_s=0.1)
        return waiting

    waiting = asyncio.run(scenario())
    assert waiting == ["i2", "i3", "i4"]
    assert registry.get_sample_value("stackyard_sink_dropped_total") == 2
    assert registry.get_sample_value("stackyard_sink_buffered") == 3


def test_invalid_profiles_are_refused_before_buffering() -> None:
    server = FlakyServer()
    server.up = True
    sink = HttpPushSink(
        "http://stackyard", CollectorMetrics(CollectorRegistry()), transport=httpx.MockTransport(server)
    )

    async def scenario() -> None:
        with pytest.raises(InvalidProfile, match="not a pprof profile: "):
            await sink.send(_profile(0, b"<html>login</html>"))
        assert sink.buffered() == 0
        await sink.close(1)

    asyncio.run(scenario())
    assert server.received == []


def test_rejected_profiles_are_not_retried_forever() -> None:
    server = FlakyServer()
    server.up = True
    server.status = 400
    registry = CollectorRegistry()
    sink = HttpPushSink("http://stackyard", CollectorMetrics(registry), transport=httpx.MockTransport(server))

    async def scenario() -> None:
        await sink.send(_profile(0))
        await sink.send(_profile(1))
        await sink.close(5)

    asyncio.run(scenario())
    assert len(server.received) == 2
    assert registry.get_sample_value("stackyard_sink_rejected_total") == 2


def test_every_attempt_of_one_profile_carries_the_same_idempotency_key() -> None:
    keys: list[str] = []

    def server(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers["Idempotency-Key"])
        if len(keys) < 3:
            return httpx.Response(503, json={"error": "database unavailable: connection refused", "status": 503})
        return httpx.Response(201 if len(keys) == 3 else 200, json={"id": 1})

    registry = CollectorRegistry()
    sink = HttpPushSink("http://stackyard", CollectorMetrics(registry), transport=httpx.MockTransport(server))

    async def scenario() -> None:
        await sink.send(_profile(0))
        await sink.send(_profile(1))
        for _ in range(100):  # two retries with backoff (0.5 s, 1 s), then both pushes go through
            if len(keys) >= 4:
                break
            await asyncio.sleep(0.1)
        await sink.close(deadline_s=5)

    asyncio.run(scenario())
    assert len(keys) == 4
    assert keys[0] == keys[1] == keys[2] != keys[3]
    assert keys[0] == _profile(0).idempotency_key and keys[0].startswith("scrape:k|heap|")
    assert registry.get_sample_value("stackyard_sink_sent_total") == 2


def test_a_poison_profile_is_set_aside_while_the_rest_flows() -> None:
    """A 500 that only some profiles meet: they step aside, are retried with backoff, then given up and counted."""
    poison = {"i2", "i5"}
    attempts: list[str] = []

    def server(request: httpx.Request) -> httpx.Response:
        instance = dict(request.url.params.multi_items())["label"].removeprefix("instance=")
        attempts.append(instance)
        if instance in poison:
            return httpx.Response(500, json={"error": "internal error", "status": 500})
        return httpx.Response(201, json={"id": len(attempts)})

    registry = CollectorRegistry()
    sink = HttpPushSink(
        "http://stackyard",
        CollectorMetrics(registry),
        transport=httpx.MockTransport(server),
        max_failures=3,
        failure_backoff_s=0.05,
    )

    async def scenario() -> None:
        for index in range(10):
            await sink.send(_profile(index))
        for _ in range(200):
            if registry.get_sample_value("stackyard_sink_set_aside_total") == 2:
                break
            await asyncio.sleep(0.05)
        await sink.close(deadline_s=5)

    asyncio.run(scenario())
    good = [f"i{n}" for n in range(10) if f"i{n}" not in poison]
    assert sorted(a for a in attempts if a not in poison) == sorted(good)  # each good one once
    assert attempts.count("i2") == attempts.count("i5") == 3
    # The rest did not wait for the poison: the last good one went before the poison's last try.
    assert attempts.index("i9") < len(attempts) - 1 - attempts[::-1].index("i2")
    assert registry.get_sample_value("stackyard_sink_set_aside_total") == 2
    assert registry.get_sample_value("stackyard_sink_sent_total") == 8
    assert sink.buffered() == 0


def test_server_errors_of_everything_still_hold_the_queue() -> None:
    """502-504 and connection errors mean the server is away: every profile waits, none is set aside."""
    answers = [502, 503, 504, 201, 201]

    def server(request: httpx.Request) -> httpx.Response:
        return httpx.Response(answers.pop(0) if answers else 201, json={"id": 1})

    registry = CollectorRegistry()
    sink = HttpPushSink("http://stackyard", CollectorMetrics(registry), transport=httpx.MockTransport(server))

    async def scenario() -> None:
        await sink.send(_profile(0))
        await sink.send(_profile(1))
        for _ in range(100):  # backoff 0.5 s, 1 s, 2 s, then both go through
            if registry.get_sample_value("stackyard_sink_sent_total") == 2:
                break
            await asyncio.sleep(0.1)
        await sink.close(deadline_s=5)

    asyncio.run(scenario())
    assert registry.get_sample_value("stackyard_sink_sent_total") == 2
    assert registry.get_sample_value("stackyard_sink_set_aside_total") == 0
