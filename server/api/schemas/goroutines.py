"""Answers of the goroutine endpoints: a stored dump, the groups at a time, leak suspects, one stack's trend."""

from __future__ import annotations

from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from server.api.schemas import Number
from server.api.schemas.ingest import SeriesRefOut
from server.query.dumpviews import GroupsAt, GroupView, InstanceGroups, LeakReport, StackTrend, SuspectView
from server.store.dumps import DumpInfo, StackInfo
from server.syntax.times import format_time


class DumpStoredOut(BaseModel):
    id: int
    series: SeriesRefOut
    type: str = Field(description="always goroutine_dump")
    time: str
    goroutines: int

    @classmethod
    def of(cls, dump: DumpInfo, labels: dict[str, str], kind: str) -> DumpStoredOut:
        return cls(
            id=dump.id,
            series=SeriesRefOut(id=dump.series_id, labels=labels),
            type=kind,
            time=format_time(dump.time_ns),
            goroutines=dump.goroutines,
        )


class FrameOut(TypedDict):
    function: str
    file: str
    line: int


def _frames(stack: StackInfo | None) -> list[FrameOut]:
    return [{"function": f, "file": file, "line": line} for f, file, line in stack.frames] if stack else []


class GroupOut(TypedDict):
    """Goroutines of one dump in one state on one stack: where they wait (``function``, the first frame
    outside the runtime, at ``location``), how many are locked to their thread, who created them."""

    stack_id: int
    state: str
    count: int
    max_wait_minutes: int
    median_wait_minutes: Number
    locked: int
    function: str
    location: str
    created_by: str
    created_at: str
    frames: list[FrameOut]


def _group(view: GroupView) -> GroupOut:
    group, stack = view.group, view.stack
    return {
        "stack_id": group.stack_id,
        "state": group.state,
        "count": group.count,
        "max_wait_minutes": group.max_wait_minutes,
        "median_wait_minutes": group.median_wait_minutes,
        "locked": group.locked,
        "function": stack.function if stack else "",
        "location": stack.location if stack else "",
        "created_by": stack.created_by if stack else "",
        "created_at": stack.created_at if stack else "",
        "frames": _frames(stack),
    }


class InstanceGroupsOut(TypedDict):
    """One instance's newest dump at or before ``at``: its groups, largest first (``truncated``: more than
    ``limit``)."""

    labels: dict[str, str]
    time: str
    time_ns: int
    goroutines: int
    groups: list[GroupOut]
    truncated: bool


def _instance(instance: InstanceGroups) -> InstanceGroupsOut:
    return {
        "labels": instance.labels,
        "time": format_time(instance.dump.time_ns),
        "time_ns": instance.dump.time_ns,
        "goroutines": instance.dump.goroutines,
        "groups": [_group(g) for g in instance.groups],
        "truncated": instance.truncated,
    }


class GroupsOut(BaseModel):
    """Per matching instance, its newest dump at or before ``at`` and that dump's groups."""

    at: str
    instances: list[InstanceGroupsOut]

    @classmethod
    def of(cls, found: GroupsAt) -> GroupsOut:
        return cls.model_construct(at=format_time(found.at_ns), instances=[_instance(i) for i in found.instances])


class SuspectOut(BaseModel):
    """A stack whose goroutine count grows steadily on one instance."""

    labels: dict[str, str]
    stack_id: int
    function: str
    location: str
    created_by: str
    state: str
    count_start: int
    count_end: int
    growth_per_hour: Number = Field(description="least-squares slope")
    rising_fraction: Number = Field(description="share of the range in which the count rose")
    waits_growing: bool
    score: Number
    frames: list[FrameOut]

    @classmethod
    def of(cls, view: SuspectView) -> SuspectOut:
        s = view.suspect
        return cls(
            labels=s.labels,
            stack_id=s.stack_id,
            function=s.function,
            location=s.location,
            created_by=s.created_by,
            state=s.state,
            count_start=s.count_start,
            count_end=s.count_end,
            growth_per_hour=round(s.growth_per_hour, 3),
            rising_fraction=round(s.rising_fraction, 4),
            waits_growing=s.waits_growing,
            score=round(s.score, 3),
            frames=_frames(view.stack),
        )


class LeaksOut(BaseModel):
    from_: str = Field(serialization_alias="from")
    to: str
    suspects: list[SuspectOut] = Field(description="highest score first")

    @classmethod
    def of(cls, report: LeakReport) -> LeaksOut:
        return cls(
            from_=format_time(report.start_ns),
            to=format_time(report.end_ns),
            suspects=[SuspectOut.of(s) for s in report.suspects],
        )


class TrendPointOut(TypedDict):
    """One dump: the stack's goroutines in it (``count``, 0 when none) beside all of the instance's."""

    time: str
    time_ns: int
    count: int
    max_wait_minutes: int
    goroutines: int


class InstanceTrendOut(TypedDict):
    labels: dict[str, str]
    points: list[TrendPointOut]


class StackTrendOut(BaseModel):
    """One stack's goroutines per dump, per instance."""

    stack_id: int
    function: str
    location: str
    created_by: str
    created_at: str
    frames: list[FrameOut]
    series: list[InstanceTrendOut]

    @classmethod
    def of(cls, trend: StackTrend) -> StackTrendOut:
        stack = trend.stack
        series: list[InstanceTrendOut] = [
            {
                "labels": line.labels,
                "points": [
                    {
                        "time": format_time(p.dump.time_ns),
                        "time_ns": p.dump.time_ns,
                        "count": p.point.count if p.point else 0,
                        "max_wait_minutes": p.point.max_wait_minutes if p.point else 0,
                        "goroutines": p.dump.goroutines,
                    }
                    for p in line.points
                ],
            }
            for line in trend.series
        ]
        return cls.model_construct(
            stack_id=stack.id,
            function=stack.function,
            location=stack.location,
            created_by=stack.created_by,
            created_at=stack.created_at,
            frames=_frames(stack),
            series=series,
        )
