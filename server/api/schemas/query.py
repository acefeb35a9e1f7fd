"""Answers of the query endpoints: top table, flame graph, diff, trends, a function's history."""

from __future__ import annotations

from typing import Any, NotRequired

from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from server.api.schemas import Number
from server.query.diff import DiffFlameGraph, DiffSummary, DiffTable
from server.query.flamegraph import FlameGraph
from server.query.history import FunctionHistory
from server.query.listing import ListedLine
from server.query.service import MergedFlameGraph, MergedSandwich, MergeInfo, SourceListing, TopEntry, TopTable
from server.query.timeseries import Trend


class TopRowOut(TypedDict):
    name: str
    flat: Number
    cum: Number
    file: NotRequired[str]  # granularity=lines only
    line: NotRequired[int]  # granularity=lines only (0: unknown)
    inline: NotRequired[str]  # granularity=lines only: pprof's mark, "inline", "partial-inline" or ""


def top_rows(rows: list[TopEntry]) -> list[TopRowOut]:
    if rows and rows[0].line is not None:
        return [
            {
                "name": r.name,
                "file": r.file or "",
                "line": r.line or 0,
                "inline": r.inline or "",
                "flat": r.flat,
                "cum": r.cum,
            }
            for r in rows
        ]
    return [{"name": r.name, "flat": r.flat, "cum": r.cum} for r in rows]


def _merge_fields(merge: MergeInfo) -> dict[str, Any]:
    return {
        "type": merge.kind,
        "sample_type": merge.sample_type,
        "unit": merge.unit,
        "aggregation": merge.aggregation,
        "profiles": merge.profiles,
    }


def graph_fields(graph: FlameGraph) -> dict[str, Any]:
    return {
        "names": graph.names,
        "levels": graph.levels,
        "total": graph.total,
        "max_self": graph.max_self,
        "nodes": graph.nodes,
        "truncated": graph.truncated,
    }


class TopOut(BaseModel):
    """Flat and cum per function, as ``go tool pprof -top``: largest |flat| first, ties by name."""

    type: str
    sample_type: str
    unit: str
    aggregation: str = Field(description="sum, or avg: values divided by the number of profiles")
    profiles: int = Field(description="raw profiles merged")
    total: Number = Field(description="the unfiltered total, which pprof's percentages divide by")
    shown: Number = Field(description="what the filters kept (pprof's 'accounting for'); total without filters")
    rows: list[TopRowOut]

    @classmethod
    def of(cls, table: TopTable) -> TopOut:
        rows = top_rows(table.rows)
        return cls.model_construct(**_merge_fields(table.merge), total=table.total, shown=table.shown, rows=rows)


class SourceLineOut(TypedDict):
    line: int
    flat: Number
    cum: Number
    text: NotRequired[str]  # only when the source is shown


class RoutineOut(TypedDict):
    function: str
    file: str
    flat: Number  # the function's flat: the lines' flats added up
    cum: Number  # the lines' cums added up, as go tool pprof -list's header (recursion counts per line)
    source: str
    lines: list[SourceLineOut]


class SourceOut(BaseModel):
    """Flat and cum per line of one function, as ``go tool pprof -list``; a routine per file of that name.

    ``source`` is empty when the text is included, else says why not (no ``STACKYARD_SOURCE_ROOTS`` entry
    maps the file, not found, refused because it would leave its root, too large).
    """

    type: str
    sample_type: str
    unit: str
    aggregation: str
    profiles: int
    total: Number
    routines: list[RoutineOut]

    @classmethod
    def of(cls, listing: SourceListing) -> SourceOut:
        d = listing.divisor

        def number(value: int) -> Number:
            return value if d == 1 else value / d

        def line(entry: ListedLine) -> SourceLineOut:
            out: SourceLineOut = {"line": entry.line, "flat": number(entry.flat), "cum": number(entry.cum)}
            if entry.text is not None:
                out["text"] = entry.text
            return out

        routines: list[RoutineOut] = [
            {
                "function": r.function,
                "file": r.file,
                "flat": number(r.flat),
                "cum": number(r.cum),
                "source": r.source,
                "lines": [line(entry) for entry in r.lines],
            }
            for r in listing.routines
        ]
        return cls.model_construct(**_merge_fields(listing.merge), total=listing.total, routines=routines)


class FlameGraphOut(BaseModel):
    """The merged call tree, level by level (docs/api.md: four numbers per node, gap, total, self, name)."""

    type: str
    sample_type: str
    unit: str
    aggregation: str
    profiles: int
    names: list[str]
    levels: list[list[Number]] = Field(description="per depth: [gap, total, self, name index] per node")
    total: Number
    max_self: Number
    nodes: int
    truncated: bool = Field(description="nodes beyond max_nodes were folded into 'other'")

    @classmethod
    def of(cls, answer: MergedFlameGraph) -> FlameGraphOut:
        return cls.model_construct(**_merge_fields(answer.merge), **graph_fields(answer.graph))


class SandwichTreeOut(BaseModel):
    """One side of a sandwich in the flame graph format; the root (level 0, name index 0) is the function."""

    names: list[str]
    levels: list[list[Number]] = Field(description="per depth: [gap, total, self, name index] per node")
    total: Number = Field(description="the function's cum")
    max_self: Number
    nodes: int
    truncated: bool = Field(description="nodes beyond max_nodes were folded into 'other'")


class SandwichOut(BaseModel):
    """A function's callers (an inverted tree: its children are the direct callers) and its callees."""

    type: str
    sample_type: str
    unit: str
    aggregation: str
    profiles: int
    function: str
    flat: Number = Field(description="as go tool pprof -top")
    cum: Number = Field(description="as go tool pprof -top: once per sample under recursion")
    total: Number = Field(description="the unfiltered total, which pprof's percentages divide by")
    callers: SandwichTreeOut
    callees: SandwichTreeOut

    @classmethod
    def of(cls, answer: MergedSandwich) -> SandwichOut:
        return cls.model_construct(
            **_merge_fields(answer.merge),
            function=answer.function,
            flat=answer.flat,
            cum=answer.cum,
            total=answer.total,
            callers=SandwichTreeOut.model_construct(**graph_fields(answer.callers)),
            callees=SandwichTreeOut.model_construct(**graph_fields(answer.callees)),
        )


class DiffRowOut(TypedDict):
    name: str
    base_flat: Number
    flat: Number
    base_cum: Number
    cum: Number
    flat_change: Number
    cum_change: Number


def _summary_fields(summary: DiffSummary, total: Any) -> dict[str, Any]:
    return {
        "sample_type": summary.sample_type,
        "unit": summary.unit,
        "aggregation": summary.aggregation,
        "normalized": summary.normalized,
        "scale": summary.scale,
        "base_profiles": summary.base_profiles,
        "profiles": summary.profiles,
        "base_total": summary.base_total,
        "total": total,
        "total_change": summary.total_change,
    }


class DiffTopOut(BaseModel):
    """Both sides per function; rows ordered by the size of flat_change."""

    sample_type: str
    unit: str
    aggregation: str
    normalized: bool
    scale: float = Field(description="what the comparison was multiplied by (normalize); 1.0 otherwise")
    base_profiles: int
    profiles: int
    base_total: Number
    total: Number
    total_change: Number
    rows: list[DiffRowOut]

    @classmethod
    def of(cls, table: DiffTable) -> DiffTopOut:
        rows: list[DiffRowOut] = [
            {
                "name": r.name,
                "base_flat": r.base_flat,
                "flat": r.flat,
                "base_cum": r.base_cum,
                "cum": r.cum,
                "flat_change": r.flat_change,
                "cum_change": r.cum_change,
            }
            for r in table.rows
        ]
        return cls.model_construct(**_summary_fields(table.summary, table.summary.total), rows=rows)


class DiffFlameGraphOut(BaseModel):
    """Both sides over one tree: per node [gap, base_total, base_self, total, self, name index]."""

    sample_type: str
    unit: str
    aggregation: str
    normalized: bool
    scale: float
    base_profiles: int
    profiles: int
    base_total: Number
    total: list[Number] = Field(description="[base, comparison]")
    total_change: Number
    names: list[str]
    levels: list[list[Number]]
    max_self: Number
    nodes: int
    truncated: bool

    @classmethod
    def of(cls, answer: DiffFlameGraph) -> DiffFlameGraphOut:
        graph = graph_fields(answer.graph)
        return cls.model_construct(**_summary_fields(answer.summary, graph.pop("total")), **graph)


class TrendLineOut(TypedDict):
    labels: dict[str, str]
    points: list[list[Number]]


class TimeseriesOut(BaseModel):
    """Trend lines: ``[unix seconds of the step's start, value]`` per step with data."""

    step: float = Field(description="seconds; the step used")
    sample_type: str | None
    unit: str
    aggregation: str
    series: list[TrendLineOut]

    @classmethod
    def of(cls, trend: Trend) -> TimeseriesOut:
        lines: list[TrendLineOut] = [{"labels": line.labels, "points": line.points} for line in trend.series]
        return cls.model_construct(
            step=trend.step_s,
            sample_type=trend.sample_type,
            unit=trend.unit,
            aggregation=trend.aggregation,
            series=lines,
        )


class FunctionHistoryOut(BaseModel):
    """``[unix seconds of the step's start, flat, cum]`` per step with profiles."""

    name: str
    sample_type: str
    unit: str
    step: float
    aggregation: str
    points: list[list[Number]]

    @classmethod
    def of(cls, history: FunctionHistory) -> FunctionHistoryOut:
        return cls.model_construct(
            name=history.name,
            sample_type=history.sample_type,
            unit=history.unit,
            step=history.step_s,
            aggregation=history.aggregation,
            points=history.points,
        )
