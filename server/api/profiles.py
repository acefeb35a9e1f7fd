"""Series and individual profiles: list them, and open one as pprof, top table (of functions or lines),
flame graph, sandwich or a function's line table (frame filters apply)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from server.api.deps import FiltersDep, QueryDep, ReaderDep, SettingsDep
from server.api.schemas.files import PPROF_FILE
from server.api.schemas.profiles import ProfileFlameGraphOut, ProfileListOut, ProfileTopOut, SeriesListOut
from server.api.schemas.query import SandwichOut, SourceOut
from server.errors import InvalidParameter
from server.ingest.profile import check_kind
from server.query import service
from server.query.selector import parse_selector

router = APIRouter(prefix="/api/v1", tags=["profiles"])


@router.get("/series")
def series(
    store: ReaderDep,
    query: Annotated[str | None, Query()] = None,
    type: Annotated[str | None, Query()] = None,
) -> SeriesListOut:
    return SeriesListOut.of(service.series_list(store, check_kind(type), parse_selector(query)))


@router.get("/profiles")
def profiles(q: QueryDep, store: ReaderDep, limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> ProfileListOut:
    return ProfileListOut.of(service.profile_list(store, q, limit))


@router.get("/profiles/{profile_id}/pprof", response_class=Response, responses=PPROF_FILE)
def profile_pprof(profile_id: int, store: ReaderDep, filters: FiltersDep) -> Response:
    return Response(
        service.profile_pprof(store, profile_id, filters),
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="profile-{profile_id}.pb.gz"'},
    )


@router.get("/profiles/{profile_id}/top")
def profile_top(
    profile_id: int,
    store: ReaderDep,
    filters: FiltersDep,
    sample: Annotated[str | None, Query()] = None,
    granularity: Annotated[
        Literal["functions", "lines"],
        Query(description="lines: a row per (function, file, line), as go tool pprof -top -lines"),
    ] = "functions",
) -> ProfileTopOut:
    return ProfileTopOut.of(service.profile_top(store, profile_id, sample, filters, granularity))


@router.get("/profiles/{profile_id}/source")
def profile_source(
    profile_id: int,
    store: ReaderDep,
    settings: SettingsDep,
    filters: FiltersDep,
    function: Annotated[str, Query(min_length=1, max_length=4096, description="the function's exact name")],
    sample: Annotated[str | None, Query()] = None,
) -> SourceOut:
    """``GET /api/v1/source`` of one stored profile."""
    return SourceOut.of(service.profile_source(store, settings, profile_id, sample, function, filters))


@router.get("/profiles/{profile_id}/flamegraph")
def profile_flamegraph(
    profile_id: int,
    store: ReaderDep,
    settings: SettingsDep,
    filters: FiltersDep,
    sample: Annotated[str | None, Query()] = None,
    max_nodes: Annotated[int | None, Query(ge=1)] = None,
) -> ProfileFlameGraphOut:
    nodes = min(max_nodes or settings.default_flamegraph_nodes, settings.max_flamegraph_nodes)
    return ProfileFlameGraphOut.of(service.profile_flamegraph(store, profile_id, sample, nodes, filters))


@router.get("/profiles/{profile_id}/sandwich")
def profile_sandwich(
    profile_id: int,
    store: ReaderDep,
    settings: SettingsDep,
    filters: FiltersDep,
    function: Annotated[str | None, Query(description="the function's exact name, as top shows it")] = None,
    sample: Annotated[str | None, Query()] = None,
    max_nodes: Annotated[int | None, Query(ge=1, description="per side")] = None,
) -> SandwichOut:
    """``GET /api/v1/sandwich`` of one stored profile."""
    if not function:
        raise InvalidParameter("function", "required: the function's exact name, as top shows it")
    nodes = max_nodes or settings.default_flamegraph_nodes
    if nodes > settings.max_flamegraph_nodes:
        raise InvalidParameter("max_nodes", f"at most {settings.max_flamegraph_nodes}")
    return SandwichOut.of(service.profile_sandwich(store, profile_id, sample, function, nodes, filters))
