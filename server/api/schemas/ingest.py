"""The answer to a pushed profile."""

from __future__ import annotations

from pydantic import BaseModel, Field

from server.ingest.profile import IngestAnswer
from server.syntax.times import format_time


class SeriesRefOut(BaseModel):
    id: int
    labels: dict[str, str]


class IngestOut(BaseModel):
    """The stored profile; ``replayed`` only on a repeat of an idempotency key (absent otherwise)."""

    id: int
    series: SeriesRefOut
    type: str
    time: str
    samples: int
    totals: dict[str, int] = Field(description="per sample type")
    replayed: bool | None = Field(
        default=None,
        exclude_if=lambda v: v is None,
        description="true: stored before under this idempotency key, the same profile, not a new one",
    )

    @classmethod
    def of(cls, answer: IngestAnswer) -> IngestOut:
        return cls(
            id=answer.id,
            series=SeriesRefOut(id=answer.series_id, labels=answer.labels),
            type=answer.kind,
            time=format_time(answer.time_ns),
            samples=answer.samples,
            totals=answer.totals,
            replayed=True if answer.replayed else None,
        )
