"""Dependencies shared by routers, as ``Annotated`` aliases so handler signatures read like prose."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from server.auth.tokens import Principal, Scope
from server.query.request import ProfileQuery
from server.settings import Settings
from server.store.repository import Store


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def reveals_credentials(request: Request) -> bool:
    """Whether this caller sees passwords written into URLs: those who may use them, else they are redacted.

    A collector (``ingest``) scrapes with them and an ``admin`` wrote them; a
    ``read`` token (a dashboard viewer, a script) sees ``http://user:xxxxx@host/``.
    Without access control every caller may do everything, so nothing is hidden.
    """
    if not request.app.state.tokens:
        return True
    principal: Principal | None = getattr(request.state, "principal", None)
    return principal is not None and principal.allows(Scope.INGEST)


def profile_query(
    type: Annotated[str | None, Query(description="cpu, heap, allocs, goroutine, mutex, block, threadcreate")] = None,
    query: Annotated[str | None, Query(description='selector, e.g. {service="api"}')] = None,
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: Annotated[str | None, Query()] = None,
    sample: Annotated[str | None, Query(description="sample type; default: the profile's default")] = None,
    aggregation: Annotated[str | None, Query(description="sum or avg")] = None,
) -> ProfileQuery:
    """The parameters every profile query shares: type, selector, time range, sample type, aggregation."""
    return ProfileQuery.parse(type, query, from_, to, sample, aggregation)


def trend_query(
    type: Annotated[str | None, Query(description="cpu, heap, allocs, goroutine, mutex, block, threadcreate")] = None,
    query: Annotated[str | None, Query(description='selector, e.g. {service="api"}')] = None,
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: Annotated[str | None, Query()] = None,
    sample: Annotated[str | None, Query(description="sample type; default: the profile's default")] = None,
) -> ProfileQuery:
    """The common parameters without ``aggregation``, which trend endpoints define their own way."""
    return ProfileQuery.parse(type, query, from_, to, sample)


StoreDep = Annotated[Store, Depends(_store)]
SettingsDep = Annotated[Settings, Depends(_settings)]
QueryDep = Annotated[ProfileQuery, Depends(profile_query)]
TrendQueryDep = Annotated[ProfileQuery, Depends(trend_query)]
