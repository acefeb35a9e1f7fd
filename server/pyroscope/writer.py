"""Storing what a Pyroscope client sent, through the same ingest path as ``POST /api/v1/ingest``.

The same limits, idempotency, refusals and rejection counters: in this
process's threads (within the app's ingest concurrency), or in the ingest
worker processes when ``STACKYARD_INGEST_PROCESSES`` starts them.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.errors import InvalidParameter
from server.ingest.service import Ingestion
from server.ingest.workers import PushAnswer
from server.pprof.select import SampleView


@dataclass(frozen=True, slots=True)
class Write:
    """One profile to store: bytes as received (or a computed delta), and where they go."""

    data: bytes
    labels: dict[str, str]
    kind: str | None
    view: SampleView | None = None
    time_ns: int | None = None
    key: str | None = None


async def store(ingestion: Ingestion, write: Write) -> PushAnswer:
    """Store one profile; refusals raise what ``/api/v1/ingest`` would raise for it.

    Except one: a profile whose kind cannot be told is refused without ``/api/v1/ingest``'s
    advice to pass ``type=``, which Pyroscope's clients have no way to send.
    """
    try:
        return await ingestion.profile(write.data, write.labels, write.kind, write.time_ns, write.key, write.view)
    except InvalidParameter as exc:
        if write.kind is not None or exc.parameter != "type":
            raise
        message = exc.message.removeprefix("type: ").removesuffix("; pass type=")
        raise InvalidParameter(
            "profile", f"{message}; Stackyard stores Go's CPU, heap, goroutine, mutex and block profiles"
        ) from None
