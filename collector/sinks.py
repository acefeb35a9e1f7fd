"""Where scraped profiles go: the :class:`Sink` interface, and the sink that pushes to a server's API.

A sink's ``send`` either accepts the profile or raises
:class:`~collector.errors.InvalidProfile`, so the target's health says when a
target serves something that is not a profile, whichever sink is in use.
``stackyard serve`` plugs in a sink that stores through its own ingest path
(``stackyard.ingestsink``); the collector itself knows no database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import httpx

from collector.errors import InvalidProfile
from collector.metrics import CollectorMetrics
from server.errors import LimitExceeded
from server.goroutines.parse import MAX_GOROUTINES, MAX_STACKS, DumpError, parse_dump
from server.pprof.decode import decode_columns
from server.pprof.errors import ProfileError
from server.pprof.limits import DecodeLimits
from server.scrape.keys import scrape_key
from server.scrape.spec import DUMP_KIND

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ScrapedProfile:
    kind: str
    labels: dict[str, str]
    data: bytes
    time_ns: int
    target_key: str

    @property
    def idempotency_key(self) -> str:
        return scrape_key(self.target_key, self.kind, self.time_ns)


class Sink(Protocol):
    async def send(self, profile: ScrapedProfile) -> None: ...

    async def close(self, deadline_s: float) -> None: ...


def invalid_profile(exc: Exception) -> InvalidProfile:
    """The scrape error a target's health shows for a profile or dump that cannot be stored."""
    if isinstance(exc, (DumpError, LimitExceeded)):
        return InvalidProfile(exc.message.removeprefix("body: "))
    return InvalidProfile(f"not a pprof profile: {exc}")


@dataclass(frozen=True, slots=True)
class Checks:
    """What a sink checks a scraped profile against before queueing it: the decoder's and the dump parser's limits.

    The same limits the server applies (the server checks again), so a target
    serving something hostile is refused here with memory bounded, and its
    health says why, whichever sink is in use.
    """

    max_decompressed: int = 256 * 1024 * 1024
    decode: DecodeLimits | None = None  # None: the defaults, with a memory budget of max_decompressed
    max_dump_goroutines: int = MAX_GOROUTINES
    max_dump_stacks: int = MAX_STACKS

    def run(self, profile: ScrapedProfile) -> None:
        """Raises :class:`~collector.errors.InvalidProfile` naming the problem (call in a worker thread)."""
        try:
            if profile.kind == DUMP_KIND:
                parse_dump(profile.data, self.max_dump_goroutines, max_stacks=self.max_dump_stacks)
            else:
                decode_columns(profile.data, self.max_decompressed, self.decode)
        except (ProfileError, DumpError, LimitExceeded) as exc:
            raise invalid_profile(exc) from None


@dataclass(slots=True)
class _Queued:
    """A profile waiting in a push sink, with the item's own failures (server errors it alone met)."""

    profile: ScrapedProfile
    failures: int = 0
    due: float = 0.0  # monotonic time before which a failed item is not tried again


class HttpPushSink:
    """Pushes to ``POST /api/v1/ingest`` of a remote server, through a bounded buffer.

    Profiles are validated here first, so a broken target shows in health
    even though the server is remote. When the server is down, profiles wait
    in the buffer and are retried with backoff; when the buffer is full the
    oldest profile is dropped and counted, so memory never grows without bound.
    Each push carries an ``Idempotency-Key``, so a retry after a lost answer
    is stored once.

    Two kinds of failure are told apart. The server being away (no connection,
    401/403, 408, 429, 502-504) holds the whole queue: every profile would
    meet it. A 500 (or another 5xx) is this profile's own problem, perhaps
    one the server cannot store: the profile steps out of the queue, is retried
    with its own backoff while the rest flows, and after ``max_failures`` it
    is set aside, logged with its target, and counted in
    ``stackyard_sink_set_aside_total``, so one poison profile never jams a
    collector.
    """

    def __init__(
        self,
        url: str,
        metrics: CollectorMetrics,
        buffer_size: int = 10_000,
        checks: Checks | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: dict[str, str] | None = None,
        max_failures: int = 5,
        failure_backoff_s: float = 1.0,
    ) -> None:
        self._url = url.rstrip("/") + "/api/v1/ingest"
        self._dump_url = url.rstrip("/") + "/api/v1/goroutines/ingest"
        self._buffer: deque[_Queued] = deque()
        self._later: list[_Queued] = []  # failed items waiting for their own retry, in due order
        self._size = buffer_size
        self._metrics = metrics
        self._checks = checks if checks is not None else Checks()
        self._max_failures = max_failures
        self._failure_backoff_s = failure_backoff_s
        self._client = httpx.AsyncClient(transport=transport, timeout=30.0, headers=headers)
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def _ensure_running(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._drain(), name="push-sink")

    async def send(self, profile: ScrapedProfile) -> None:
        await asyncio.to_thread(self._checks.run, profile)
        self._ensure_running()
        if self.buffered() >= self._size:
            # The oldest goes: a failed item waiting for its retry was at the head before the rest.
            if self._later:
                self._later.pop(0)
            else:
                self._buffer.popleft()
            self._metrics.sink_dropped.inc()
        self._buffer.append(_Queued(profile))
        self._metrics.sink_buffered.set(self.buffered())
        self._wakeup.set()

    def _next(self) -> _Queued | None:
        """A failed item whose wait is over first (it is older), else the head of the queue."""
        if self._later and self._later[0].due <= time.monotonic():
            return self._later[0]
        return self._buffer[0] if self._buffer else None

    async def _idle(self) -> None:
        """Wait for a new profile, or for the next failed item's retry time."""
        self._wakeup.clear()
        if not self._later:
            await self._wakeup.wait()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), max(0.0, self._later[0].due - time.monotonic()))

    async def _drain(self) -> None:
        backoff = 0.5
        while True:
            item = self._next()
            if item is None:
                if self._closing and not self._later:
                    return
                await self._idle()
                continue
            outcome = await self._post(item.profile)
            if outcome == "retry":
                if self._closing:
                    return
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            backoff = 0.5
            self._remove(item)
            if outcome == "failed":
                self._failed(item)
            self._metrics.sink_buffered.set(self.buffered())

    def _remove(self, item: _Queued) -> None:
        if self._later and self._later[0] is item:
            self._later.pop(0)
        elif self._buffer and self._buffer[0] is item:
            self._buffer.popleft()

    def _failed(self, item: _Queued) -> None:
        item.failures += 1
        if item.failures >= self._max_failures:
            self._metrics.sink_set_aside.inc()
            log.error(
                "push set aside after repeated server errors",
                extra={
                    "url": self._url,
                    "target": item.profile.target_key,
                    "kind": item.profile.kind,
                    "failures": item.failures,
                    "outcome": "set_aside",
                },
            )
            return
        item.due = time.monotonic() + min(self._failure_backoff_s * 2 ** (item.failures - 1), 60.0)
        self._later.append(item)
        self._later.sort(key=lambda queued: queued.due)

    async def _post(self, profile: ScrapedProfile) -> str:
        params: list[tuple[str, str | int | float | bool | None]] = [
            ("service", profile.labels.get("service", "")),
            ("type", profile.kind),
        ]
        params += [("label", f"{k}={v}") for k, v in profile.labels.items() if k != "service"]
        params.append(("time", f"{profile.time_ns / 1e9:.9f}"))
        url = self._url
        if profile.kind == DUMP_KIND:
            url = self._dump_url
            params = [p for p in params if p[0] != "type"]
        try:
            response = await self._client.post(
                url, params=params, content=profile.data, headers={"Idempotency-Key": profile.idempotency_key}
            )
        except httpx.HTTPError as exc:
            log.warning("push failed", extra={"url": self._url, "error": str(exc), "outcome": "retry"})
            return "retry"
        if response.status_code in (401, 403):
            # A missing or wrong STACKYARD_API_TOKEN is fixed by the operator, not by the profile:
            # keep it buffered (bounded) rather than drop every profile until then.
            log.error(
                "push unauthorized; check STACKYARD_API_TOKEN", extra={"url": self._url, "status": response.status_code}
            )
            return "retry"
        # 503 is the server saying its database is away: the profile waits here until it is back.
        # 502 and 504 come from a proxy in front of a server that is away.
        if response.status_code in (408, 429, 502, 503, 504):
            log.warning("push failed", extra={"url": self._url, "status": response.status_code, "outcome": "retry"})
            return "retry"
        if response.status_code >= 500:
            log.warning(
                "push failed",
                extra={
                    "url": self._url,
                    "status": response.status_code,
                    "error": response.text[:300],
                    "target": profile.target_key,
                    "kind": profile.kind,
                    "outcome": "failed",
                },
            )
            return "failed"
        if response.status_code >= 400:
            self._metrics.sink_rejected.inc()
            log.error(
                "push rejected",
                extra={
                    "url": self._url,
                    "status": response.status_code,
                    "error": response.text[:300],
                    "target": profile.target_key,
                    "kind": profile.kind,
                },
            )
            return "rejected"
        self._metrics.sink_sent.inc()
        return "sent"

    async def close(self, deadline_s: float) -> None:
        """Flush what is buffered within the deadline, then stop."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=max(0.0, deadline_s))
            except TimeoutError:
                self._task.cancel()
                log.warning("push sink closed with profiles unsent", extra={"unsent": self.buffered()})
        await self._client.aclose()

    def buffered(self) -> int:
        return len(self._buffer) + len(self._later)


def now_ns() -> int:
    return time.time_ns()
