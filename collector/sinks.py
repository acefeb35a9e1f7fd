"""Where scraped profiles go: the in-process ingest path, or a remote server's push API.

A sink's ``send`` either accepts the profile or raises
:class:`~collector.errors.InvalidProfile`, so the target's health says when a
target serves something that is not a profile, whichever sink is in use.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import httpx

from collector.errors import InvalidProfile
from collector.metrics import CollectorMetrics
from server.errors import StackyardError
from server.goroutines.dump import DumpError, parse_dump
from server.goroutines.ingest import DUMP_KIND
from server.pprof.decode import decode_columns
from server.pprof.errors import ProfileError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ScrapedProfile:
    kind: str
    labels: dict[str, str]
    data: bytes
    time_ns: int
    target_key: str


class Sink(Protocol):
    async def send(self, profile: ScrapedProfile) -> None: ...

    async def close(self, deadline_s: float) -> None: ...


IngestFunction = Callable[[bytes, dict[str, str], str, int], object]


class InProcessSink:
    """Hands profiles to ``server.ingest`` in a worker thread (``stackyard serve``)."""

    def __init__(self, ingest: IngestFunction) -> None:
        self._ingest = ingest

    async def send(self, profile: ScrapedProfile) -> None:
        try:
            await asyncio.to_thread(self._ingest, profile.data, profile.labels, profile.kind, profile.time_ns)
        except DumpError as exc:
            raise InvalidProfile(exc.message.removeprefix("body: ")) from None
        except (ProfileError, StackyardError) as exc:
            raise InvalidProfile(f"not a pprof profile: {exc}") from None

    async def close(self, deadline_s: float) -> None:
        return None


class HttpPushSink:
    """Pushes to ``POST /api/v1/ingest`` of a remote server, through a bounded buffer.

    Profiles are validated here first, so a broken target shows in health
    even though the server is remote. When the server is down, profiles wait
    in the buffer and are retried with backoff; when the buffer is full the
    oldest profile is dropped and counted, so memory never grows without bound.
    """

    def __init__(
        self,
        url: str,
        metrics: CollectorMetrics,
        buffer_size: int = 10_000,
        max_decompressed: int = 256 * 1024 * 1024,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._url = url.rstrip("/") + "/api/v1/ingest"
        self._dump_url = url.rstrip("/") + "/api/v1/goroutines/ingest"
        self._buffer: deque[ScrapedProfile] = deque()
        self._size = buffer_size
        self._metrics = metrics
        self._max_decompressed = max_decompressed
        self._client = httpx.AsyncClient(transport=transport, timeout=30.0, headers=headers)
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def _ensure_running(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._drain(), name="push-sink")

    async def send(self, profile: ScrapedProfile) -> None:
        try:
            if profile.kind == DUMP_KIND:
                await asyncio.to_thread(parse_dump, profile.data)
            else:
                await asyncio.to_thread(decode_columns, profile.data, self._max_decompressed)
        except DumpError as exc:
            raise InvalidProfile(exc.message.removeprefix("body: ")) from None
        except ProfileError as exc:
            raise InvalidProfile(f"not a pprof profile: {exc}") from None
        self._ensure_running()
        if len(self._buffer) >= self._size:
            self._buffer.popleft()
            self._metrics.sink_dropped.inc()
        self._buffer.append(profile)
        self._metrics.sink_buffered.set(len(self._buffer))
        self._wakeup.set()

    async def _drain(self) -> None:
        backoff = 0.5
        while True:
            if not self._buffer:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            profile = self._buffer[0]
            outcome = await self._post(profile)
            if outcome == "retry":
                if self._closing:
                    return
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            backoff = 0.5
            if self._buffer and self._buffer[0] is profile:
                self._buffer.popleft()
            self._metrics.sink_buffered.set(len(self._buffer))

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
            response = await self._client.post(url, params=params, content=profile.data)
        except httpx.HTTPError as exc:
            log.warning("push failed", extra={"url": self._url, "error": str(exc), "outcome": "retry"})
            return "retry"
        if response.status_code in (408, 429) or response.status_code >= 500:
            log.warning("push failed", extra={"url": self._url, "status": response.status_code, "outcome": "retry"})
            return "retry"
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
                log.warning("push sink closed with profiles unsent", extra={"unsent": len(self._buffer)})
        await self._client.aclose()

    def buffered(self) -> int:
        return len(self._buffer)


def now_ns() -> int:
    return time.time_ns()
