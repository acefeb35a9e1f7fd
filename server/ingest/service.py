"""Pushed profiles and dumps, from whichever route took them, to the store: one service for every push path.

``POST /api/v1/ingest``, ``POST /api/v1/goroutines/ingest`` and Pyroscope's
push routes all store through :class:`Ingestion`, so they share the same
limits, idempotency, refusals and rejection counters, and the same choice of
where the work runs: the ingest worker processes when
``STACKYARD_INGEST_PROCESSES`` starts them, else this process's threads within
the app's ingest concurrency (``STACKYARD_INGEST_CONCURRENCY``: ingest holds the
interpreter lock most of its time, so more at once only slows every request).
Goroutine dumps always stay in this process.
"""

from __future__ import annotations

from anyio import CapacityLimiter, to_thread
from prometheus_client import Counter

from server.ingest.dumps import ingest_dump
from server.ingest.profile import ingest
from server.ingest.workers import IngestWorkers, PushAnswer, RemoteRefusal
from server.pprof.select import SampleView
from server.settings import Settings
from server.store.dumps import DumpInfo
from server.store.repository import Store


class Ingestion:
    """The app's push path: its store and settings, the rejection counter, the worker pool (if any), the limiter."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        rejections: Counter,
        workers: IngestWorkers | None,
        limiter: CapacityLimiter,
    ) -> None:
        self.store = store
        self.settings = settings
        self.rejections = rejections
        self.workers = workers
        self.limiter = limiter

    async def profile(
        self,
        data: bytes,
        labels: dict[str, str],
        kind: str | None,
        time_ns: int | None,
        key: str | None,
        view: SampleView | None = None,
    ) -> PushAnswer:
        """Store one pprof profile; refusals raise the same errors wherever it was stored."""
        if self.workers is not None:
            try:
                return await self.workers.ingest(data, labels, kind, time_ns, key, view)
            except RemoteRefusal as exc:
                if exc.limit is not None:  # counted here: a worker's registry is not the one /metrics shows
                    self.rejections.labels(exc.limit).inc()
                raise
        result = await to_thread.run_sync(
            lambda: ingest(self.store, self.settings, data, labels, kind, time_ns, self.rejections, key, view),
            limiter=self.limiter,
        )
        return PushAnswer(result.answer(), result.stored.created)

    async def dump(self, data: bytes, labels: dict[str, str], time_ns: int | None) -> DumpInfo:
        """Store one goroutine dump (the text of ``goroutine?debug=2``)."""
        return await to_thread.run_sync(
            lambda: ingest_dump(self.store, self.settings, data, labels, time_ns, self.rejections)
        )
