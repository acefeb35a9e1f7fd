"""Query endpoints: top table, flame graph and merged pprof over a selector and a time range."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from server.api.deps import QueryDep, SettingsDep, StoreDep, TrendQueryDep
from server.errors import InvalidParameter
from server.query import history, service
from server.query import timeseries as trends
from server.query.diff import compare, diff_flamegraph, diff_top
from server.query.request import ProfileQuery

router = APIRouter(prefix="/api/v1", tags=["query"])


@router.get("/top")
def top(
    q: QueryDep, store: StoreDep, settings: SettingsDep, limit: Annotated[int | None, Query(ge=1)] = None
) -> dict[str, Any]:
    return service.top(store, settings, q, limit)


@router.get("/flamegraph")
def flamegraph(
    q: QueryDep, store: StoreDep, settings: SettingsDep, max_nodes: Annotated[int | None, Query(ge=1)] = None
) -> dict[str, Any]:
    nodes = max_nodes or settings.default_flamegraph_nodes
    if nodes > settings.max_flamegraph_nodes:
        raise InvalidParameter("max_nodes", f"at most {settings.max_flamegraph_nodes}")
    return service.flame(store, settings, q, nodes)


@router.get("/pprof")
def pprof(q: QueryDep, store: StoreDep, settings: SettingsDep) -> Response:
    data = service.pprof_export(store, settings, q)
    filename = f"{q.kind}.pb.gz"
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/diff")
def diff(
    q: QueryDep,
    store: StoreDep,
    settings: SettingsDep,
    base_query: Annotated[str | None, Query(description="selector of the base; default: query")] = None,
    base_from: Annotated[str | None, Query()] = None,
    base_to: Annotated[str | None, Query()] = None,
    format: Annotated[str, Query(pattern="^(top|flamegraph)$")] = "top",
    normalize: bool = False,
    limit: Annotated[int | None, Query(ge=1)] = None,
    max_nodes: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
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
    comparison = compare(store, settings, q, base, normalize)
    names = store.functions.names(set(comparison.tree.function.tolist()))
    if format == "flamegraph":
        nodes = max_nodes or settings.default_flamegraph_nodes
        if nodes > settings.max_flamegraph_nodes:
            raise InvalidParameter("max_nodes", f"at most {settings.max_flamegraph_nodes}")
        return diff_flamegraph(comparison, names, nodes)
    return diff_top(comparison, names, limit)


@router.get("/timeseries")
def timeseries(
    q: TrendQueryDep,
    store: StoreDep,
    settings: SettingsDep,
    step: Annotated[str | None, Query(description="e.g. 60s, 1h; default: about 240 points")] = None,
    group_by: Annotated[str | None, Query(description="comma-separated label names")] = None,
    aggregation: Annotated[str, Query(description="avg, sum or max over time within each series")] = "avg",
) -> dict[str, Any]:
    names = [name.strip() for name in (group_by or "").split(",") if name.strip()]
    return trends.timeseries(store, settings, q, step, names, aggregation)


@router.get("/functions/{name:path}/history")
def function_history(
    name: str,
    q: TrendQueryDep,
    store: StoreDep,
    settings: SettingsDep,
    step: Annotated[str | None, Query(description="e.g. 1h; default: about 240 points")] = None,
    aggregation: Annotated[str, Query(description="sum, or avg per profile")] = "sum",
) -> dict[str, Any]:
    return history.function_history(store, settings, q, name, step, aggregation)
