"""The sink of ``stackyard serve``'s own collector: scraped profiles into this process's ingest path.

The collector is a client of the ingest path and knows no database; this
module is where the two meet, in the composition root. :func:`scraped_ingest`
sends goroutine dumps and pprof profiles down their ingest paths (or to the
ingest worker processes), and :class:`InProcessSink` calls it in a worker
thread, buffering while the database is away.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter

from collector.metrics import CollectorMetrics
from collector.sinks import Checks, ScrapedProfile, invalid_profile
from server.errors import StackyardError
from server.ingest.dumps import ingest_dump
from server.ingest.profile import ingest
from server.ingest.workers import IngestWorkers, RemoteRefusal
from server.pprof.errors import ProfileError
from server.scrape.spec import DUMP_KIND
from server.settings import Settings
from server.store.availability import DatabaseGate, describe, is_unavailable
from server.store.repository import Store

log = logging.getLogger(__name__)

IngestFunction = Callable[[bytes, dict[str, str], str, int, str], object]
"""(data, labels, kind, time_ns, idempotency key) -> whatever; raises on bad profiles or an unreachable database."""


def scraped_ingest(
    store: Store,
    settings: Settings,
    rejections: Counter | None = None,
    gate: DatabaseGate | None = None,
    workers: IngestWorkers | None = None,
) -> IngestFunction:
    """What the in-process sink calls: goroutine dumps to their parser, everything else to pprof ingest.

    ``gate`` refuses writes until the schema is migrated; ``rejections`` counts store-limit refusals;
    ``workers``, if given, store pprof profiles in their processes (dumps stay here, as pushed dumps do).
    """

    def ingest_scraped(data: bytes, labels: dict[str, str], kind: str, time_ns: int, key: str) -> object:
        if gate is not None:
            gate.check()
        if kind == DUMP_KIND:  # one dump per (series, time): a retried dump is not stored twice either
            return ingest_dump(store, settings, data, labels, time_ns, rejections)
        if workers is None:
            return ingest(store, settings, data, labels, kind, time_ns, rejections, idempotency_key=key)
        try:
            return workers.ingest_blocking(data, labels, kind, time_ns, key)
        except RemoteRefusal as exc:
            if exc.limit is not None and rejections is not None:
                rejections.labels(exc.limit).inc()
            raise

    return ingest_scraped


def _servers_condition(exc: Exception) -> bool:
    """A refusal that is the server's condition, not the profile's fault (a full stack tree: 507)."""
    return isinstance(exc, StackyardError) and exc.status_code >= 500


class InProcessSink:
    """Hands profiles to ``server.ingest.profile`` in a worker thread (``stackyard serve``), through a bounded buffer.

    While the database is reachable a profile is stored before ``send``
    returns, so a bad profile shows in the target's health. When the database
    is away (see :func:`server.store.availability.is_unavailable`) profiles wait in
    the buffer, validated first, and are retried with backoff in scrape
    order; past ``buffer_size`` the oldest is dropped and counted. Each
    carries its idempotency key, so a write that committed just before the
    connection broke is not stored twice when retried.
    """

    def __init__(
        self,
        ingest: IngestFunction,
        metrics: CollectorMetrics | None = None,
        buffer_size: int = 10_000,
        checks: Checks | None = None,
        max_backoff_s: float = 10.0,
    ) -> None:
        self._ingest = ingest
        self._metrics = metrics if metrics is not None else CollectorMetrics(CollectorRegistry())
        self._buffer: deque[ScrapedProfile] = deque()
        self._size = buffer_size
        self._checks = checks if checks is not None else Checks()
        self._max_backoff_s = max_backoff_s
        self._task: asyncio.Task[None] | None = None

    async def send(self, profile: ScrapedProfile) -> None:
        if not self._buffer:
            if await self._store(profile, direct=True) != "retry":
                return
        else:
            # Behind a backlog: keep scrape order, but still tell the target's health about a bad profile now.
            await asyncio.to_thread(self._checks.run, profile)
        if len(self._buffer) >= self._size:
            self._buffer.popleft()
            self._metrics.sink_dropped.inc()
        self._buffer.append(profile)
        self._metrics.sink_buffered.set(len(self._buffer))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="ingest-sink")

    async def _store(self, profile: ScrapedProfile, direct: bool) -> str:
        """Returns "sent", "retry" (database away) or "rejected"; a direct send raises InvalidProfile instead."""
        try:
            await asyncio.to_thread(
                self._ingest, profile.data, profile.labels, profile.kind, profile.time_ns, profile.idempotency_key
            )
        except Exception as exc:
            if is_unavailable(exc):
                log.warning("ingest deferred", extra={"target": profile.target_key, "error": describe(exc)})
                return "retry"
            if direct and (not isinstance(exc, (ProfileError, StackyardError)) or _servers_condition(exc)):
                raise  # the scrape reports it as an internal error, not as a bad profile
            if direct:
                raise invalid_profile(exc) from None
            self._metrics.sink_rejected.inc()
            log.error("buffered profile rejected", extra={"target": profile.target_key, "error": str(exc)})
            return "rejected"
        self._metrics.sink_sent.inc()
        return "sent"

    async def _drain(self) -> None:
        backoff = 0.5
        while self._buffer:
            profile = self._buffer[0]
            if await self._store(profile, direct=False) == "retry":
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff_s)
                continue
            backoff = 0.5
            if self._buffer and self._buffer[0] is profile:
                self._buffer.popleft()
            self._metrics.sink_buffered.set(len(self._buffer))

    async def close(self, deadline_s: float) -> None:
        """Write what is buffered within the deadline (the database may be back by now), then stop."""
        if self._task is None or self._task.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=max(0.0, deadline_s))
        except TimeoutError:
            self._task.cancel()
        if self._buffer:
            log.warning("ingest sink closed with profiles unstored", extra={"unstored": len(self._buffer)})

    def buffered(self) -> int:
        return len(self._buffer)
