"""Storing what a Pyroscope client sent, through the same ingest path as ``POST /api/v1/ingest``.

The same limits, idempotency, refusals and rejection counters: in this
process's threads (within the app's ingest concurrency), or in the ingest
worker processes when ``STACKYARD_INGEST_PROCESSES`` starts them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from anyio import to_thread
from starlette.datastructures import State

from server.errors import InvalidParameter
from server.ingest.profile import ingest
from server.ingest.storelimits import limit_rejections
from server.ingest.workers import IngestWorkers, RemoteRefusal
from server.pprof.select import SampleView
from server.settings import Settings


@dataclass(frozen=True, slots=True)
class Write:
    """One profile to store: bytes as received (or a computed delta), and where they go."""

    data: bytes
    labels: dict[str, str]
    kind: str | None
    view: SampleView | None = None
    time_ns: int | None = None
    key: str | None = None


@dataclass(frozen=True, slots=True)
class Written:
    answer: dict[str, Any]
    created: bool


async def store(state: State, write: Write) -> Written:
    """Store one profile; refusals raise what ``/api/v1/ingest`` would raise for it.

    Except one: a profile whose kind cannot be told is refused without ``/api/v1/ingest``'s
    advice to pass ``type=``, which Pyroscope's clients have no way to send.
    """
    try:
        return await _store(state, write)
    except InvalidParameter as exc:
        if write.kind is not None or exc.parameter != "type":
            raise
        message = exc.message.removeprefix("type: ").removesuffix("; pass type=")
        raise InvalidParameter(
            "profile", f"{message}; Stackyard stores Go's CPU, heap, goroutine, mutex and block profiles"
        ) from None


async def _store(state: State, write: Write) -> Written:
    settings: Settings = state.settings
    rejections = limit_rejections(state.metrics_registry)
    workers: IngestWorkers | None = state.ingest_workers
    if workers is not None:
        try:
            answer = await workers.ingest(write.data, write.labels, write.kind, write.time_ns, write.key, write.view)
        except RemoteRefusal as exc:
            if exc.limit is not None:
                rejections.labels(exc.limit).inc()
            raise
        return Written(answer.body, answer.created)
    result = await to_thread.run_sync(
        lambda: ingest(
            state.store,
            settings,
            write.data,
            write.labels,
            write.kind,
            write.time_ns,
            rejections,
            write.key,
            write.view,
        ),
        limiter=state.ingest_limiter,
    )
    return Written(result.answer(), result.stored.created)
