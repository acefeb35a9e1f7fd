"""Query endpoints: top table, flame graph and merged pprof over a selector and a time range."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from server.api.deps import FiltersDep, QueryDep, ReaderDep, SettingsDep, TrendQueryDep
from server.api.schemas.files import PPROF_FILE
from server.api.schemas.query import (
    DiffFlameGraphOut,
    DiffTopOut,
    FlameGraphOut,
    FunctionHistoryOut,
    SandwichOut,
    SourceOut,
    TimeseriesOut,
    TopOut,
)
from server.errors import InvalidParameter
from server.query import history, service
from server.query import timeseries as trends
from server.query.diff import compare, diff_flamegraph, diff_top
from server.query.request import ProfileQuery
from server.settings import Settings

router = APIRouter(prefix="/api/v1", tags=["query"])


def _max_nodes(settings: Settings, max_nodes: int | None) -> int:
    nodes = max_nodes or settings.default_flamegraph_nodes
    if nodes > settings.max_flamegraph_nodes:
        raise InvalidParameter("max_nodes", f"at most {settings.max_flamegraph_nodes}")
    return nodes


@router.get("/top")
def top(
    q: QueryDep,
    store: ReaderDep,
    settings: SettingsDep,
    filters: FiltersDep,
    limit: Annotated[int | None, Query(ge=1)] = None,
    granularity: Annotated[
        Literal["functions", "lines"],
        Query(description="lines: a row per (function, file, line), as go tool pprof -top -lines"),
    ] = "functions",
) -> TopOut:
    return TopOut.of(service.top(store, settings, q, limit, filters, granularity))


@router.get("/source")
def source(
    q: QueryDep,
    store: ReaderDep,
    settings: SettingsDep,
    filters: FiltersDep,
    function: Annotated[str, Query(min_length=1, max_length=4096, description="the function's exact name")],
) -> SourceOut:
    return SourceOut.of(service.source(store, settings, q, function, filters))


@router.get("/flamegraph")
def flamegraph(
    q: QueryDep,
    store: ReaderDep,
    settings: SettingsDep,
    filters: FiltersDep,
    max_nodes: Annotated[int | None, Query(ge=1)] = None,
) -> FlameGraphOut:
    nodes = _max_nodes(settings, max_nodes)
    return FlameGraphOut.of(service.flame(store, settings, q, nodes, filters=filters))


@router.get("/sandwich")
def sandwich(
    q: QueryDep,
    store: ReaderDep,
    settings: SettingsDep,
    filters: FiltersDep,
    function: Annotated[str | None, Query(description="the function's exact name, as top shows it")] = None,
    max_nodes: Annotated[int | None, Query(ge=1, description="per side")] = None,
) -> SandwichOut:
    if not function:
        raise InvalidParameter("function", "required: the function's exact name, as top shows it")
    nodes = _max_nodes(settings, max_nodes)
    return SandwichOut.of(service.sandwich_view(store, settings, q, function, nodes, filters))


@router.get("/pprof", response_class=Response, responses=PPROF_FILE)
def pprof(q: QueryDep, store: ReaderDep, settings: SettingsDep, filters: FiltersDep) -> Response:
    data = service.pprof_export(store, settings, q, filters)
    filename = f"{q.kind}.pb.gz"
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/diff")
def diff(
    q: QueryDep,
    store: ReaderDep,
    settings: SettingsDep,
    filters: FiltersDep,
    base_query: Annotated[str | None, Query(description="selector of the base; default: query")] = None,
    base_from: Annotated[str | None, Query()] = None,
    base_to: Annotated[str | None, Query()] = None,
    format: Annotated[str, Query(pattern="^(top|flamegraph)$")] = "top",
    normalize: bool = False,
    limit: Annotated[int | None, Query(ge=1)] = None,
    max_nodes: Annotated[int | None, Query(ge=1)] = None,
) -> DiffTopOut | DiffFlameGraphOut:
    base = ProfileQuery.parse(
        q.kind,
        base_query,
        base_from,
        base_to,
        q.sample,
        q.aggregation,
        default_selector=q.selector,
        default_range=(q.start_ns, q.end_ns),
        names=("base_query", "base_from", "base_to"),
    )
    comparison = compare(store, settings, q, base, normalize, filters)
    if format == "flamegraph":
        return DiffFlameGraphOut.of(diff_flamegraph(comparison, _max_nodes(settings, max_nodes)))
    return DiffTopOut.of(diff_top(comparison, limit))


@router.get("/timeseries")
def timeseries(
    q: TrendQueryDep,
    store: ReaderDep,
    settings: SettingsDep,
    step: Annotated[str | None, Query(description="e.g. 60s, 1h; default: about 240 points")] = None,
    group_by: Annotated[str | None, Query(description="comma-separated label names")] = None,
    aggregation: Annotated[str, Query(description="avg, sum or max over time within each series")] = "avg",
) -> TimeseriesOut:
    names = [name.strip() for name in (group_by or "").split(",") if name.strip()]
    return TimeseriesOut.of(trends.timeseries(store, settings, q, step, names, aggregation))


@router.get("/functions/{name:path}/history")
def function_history(
    name: str,
    q: TrendQueryDep,
    store: ReaderDep,
    settings: SettingsDep,
    step: Annotated[str | None, Query(description="e.g. 1h; default: about 240 points")] = None,
    aggregation: Annotated[str, Query(description="sum, or avg per profile")] = "sum",
) -> FunctionHistoryOut:
    return FunctionHistoryOut.of(history.function_history(store, settings, q, name, step, aggregation))
