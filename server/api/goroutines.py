"""Goroutine endpoints: push a dump, the groups at a time, leak suspects, one stack's trend."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from server.api.body import read_body
from server.api.deps import IngestionDep, ReaderDep, SettingsDep
from server.api.schemas.goroutines import DumpStoredOut, GroupsOut, LeaksOut, StackTrendOut
from server.query import dumpviews as views
from server.query.selector import parse_selector
from server.scrape.spec import DUMP_KIND
from server.syntax.labels import parse_label_pairs
from server.syntax.times import parse_time_ns, time_range_ns

router = APIRouter(prefix="/api/v1/goroutines", tags=["goroutines"])
SelectorParam = Annotated[str | None, Query(description='selector, e.g. {service="api"}')]


@router.post("/ingest", status_code=201)
async def push_dump(
    request: Request,
    ingestion: IngestionDep,
    settings: SettingsDep,
    service: Annotated[str, Query(min_length=1, max_length=256)],
    label: Annotated[list[str] | None, Query()] = None,
    time: Annotated[str | None, Query()] = None,
) -> DumpStoredOut:
    """The text of ``goroutine?debug=2`` as the body; stored under kind ``goroutine_dump``."""
    labels = parse_label_pairs(label or [])
    labels["service"] = service
    time_ns = parse_time_ns(time, "time") if time else None
    body = await read_body(request, settings.max_body_bytes)
    stored = await ingestion.dump(body, labels, time_ns)
    return DumpStoredOut.of(stored, labels, DUMP_KIND)


@router.get("/groups")
def groups(
    store: ReaderDep,
    query: SelectorParam = None,
    at: Annotated[str | None, Query(description="time; default now")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
) -> GroupsOut:
    at_ns = parse_time_ns(at, "at") if at else parse_time_ns("now", "at")
    return GroupsOut.of(views.groups_at(store, parse_selector(query), at_ns, limit))


@router.get("/leaks")
def leaks(
    store: ReaderDep,
    query: SelectorParam = None,
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> LeaksOut:
    start_ns, end_ns = time_range_ns(from_, to)
    parse_selector(query)  # a bad selector is a 400 naming the query before any work
    return LeaksOut.of(views.leaks(store, query or "", start_ns, end_ns, limit))


@router.get("/stacks/{stack_id}/trend")
def stack_trend(
    stack_id: int,
    store: ReaderDep,
    query: SelectorParam = None,
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: Annotated[str | None, Query()] = None,
) -> StackTrendOut:
    start_ns, end_ns = time_range_ns(from_, to)
    return StackTrendOut.of(views.stack_trend(store, parse_selector(query), stack_id, start_ns, end_ns))
