"""Answers of the series and single-profile endpoints."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from server.api.schemas import Number
from server.api.schemas.query import TopRowOut, graph_fields, top_rows
from server.query.service import OneProfile, ProfileFlameGraph, ProfileList, ProfileTop
from server.store.series import SeriesInfo
from server.syntax.times import format_time


class SeriesOut(TypedDict):
    id: int
    type: str
    labels: dict[str, str]


class SeriesListOut(BaseModel):
    series: list[SeriesOut]

    @classmethod
    def of(cls, series: list[SeriesInfo]) -> SeriesListOut:
        return cls.model_construct(series=[{"id": s.id, "type": s.kind, "labels": s.labels} for s in series])


class ProfileOut(TypedDict):
    id: int
    series_id: int
    labels: dict[str, str]
    time: str
    time_ns: int
    duration_ns: int
    samples: int
    totals: dict[str, int]


class ProfileListOut(BaseModel):
    """Stored profiles, oldest first; ``truncated`` when more matched than ``limit``."""

    profiles: list[ProfileOut]
    truncated: bool

    @classmethod
    def of(cls, found: ProfileList) -> ProfileListOut:
        profiles: list[ProfileOut] = [
            {
                "id": p.id,
                "series_id": p.series_id,
                "labels": found.series[p.series_id].labels,
                "time": format_time(p.time_ns),
                "time_ns": p.time_ns,
                "duration_ns": p.duration_ns,
                "samples": p.samples,
                "totals": {
                    entry.split("/", 1)[0]: total for entry, total in zip(p.sample_types, p.totals, strict=True)
                },
            }
            for p in found.profiles
        ]
        return cls.model_construct(profiles=profiles, truncated=found.truncated)


def _profile_fields(profile: OneProfile) -> dict[str, Any]:
    return {
        "id": profile.meta.id,
        "type": profile.kind,
        "sample_type": profile.sample_type,
        "unit": profile.unit,
        "time": format_time(profile.meta.time_ns),
    }


class ProfileTopOut(BaseModel):
    """One stored profile's top table."""

    id: int
    type: str
    sample_type: str
    unit: str
    time: str
    total: int = Field(description="the unfiltered total, which pprof's percentages divide by")
    shown: int = Field(description="what the filters kept (pprof's 'accounting for'); total without filters")
    rows: list[TopRowOut]

    @classmethod
    def of(cls, answer: ProfileTop) -> ProfileTopOut:
        fields = _profile_fields(answer.profile)
        return cls.model_construct(**fields, total=answer.total, shown=answer.shown, rows=top_rows(answer.rows))


class ProfileFlameGraphOut(BaseModel):
    """One stored profile's flame graph, in the format of ``GET /api/v1/flamegraph``."""

    id: int
    type: str
    sample_type: str
    unit: str
    time: str
    names: list[str]
    levels: list[list[Number]]
    total: Number
    max_self: Number
    nodes: int
    truncated: bool

    @classmethod
    def of(cls, answer: ProfileFlameGraph) -> ProfileFlameGraphOut:
        return cls.model_construct(**_profile_fields(answer.profile), **graph_fields(answer.graph))
