"""Dependencies shared by routers, as ``Annotated`` aliases so handler signatures read like prose.

``create_app`` puts the app's store, settings and services on ``app.state``;
this module is the one place that reads them there. FastAPI handlers take the
aliases (``store: StoreDep``); handlers FastAPI does not call with
dependencies (the Connect procedures of :mod:`server.pyroscope`) take the
request and use the ``*_of`` functions.
"""

from __future__ import annotations

from typing import Annotated

from anyio import CapacityLimiter
from fastapi import Depends, Query, Request
from prometheus_client import CollectorRegistry

from server.alerts.service import Alerting
from server.auth.ratelimit import AuthThrottle
from server.auth.tokens import Principal, Scope, TokenSet
from server.ingest.service import Ingestion
from server.ingest.storelimits import limit_rejections
from server.ingest.workers import IngestWorkers
from server.query.filters import Filters, parse_filters
from server.query.request import ProfileQuery
from server.scrape.protocol import Scraper
from server.settings import Settings
from server.store.availability import DatabaseGate
from server.store.repository import Store


def store_of(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def reader_of(request: Request) -> Store:
    """The store queries read from: the hot standby's while it keeps up (``STACKYARD_DATABASE_READ_URL``).

    Only routes that read stored profiles take it; what a caller has just
    written and reads back at once (targets, rules) stays on the primary.
    Its caches are fixed for the request (``Store.pinned``): every id it
    reads goes through one set of them.
    """
    store: Store = request.app.state.store
    if store.replica is not None:
        store.replica.pin()
    return store.reader.pinned()


async def _reader_in_request(request: Request) -> Store:
    """:func:`reader_of` in the request's own context (a sync dependency's would not reach the handler's thread)."""
    return reader_of(request)


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def registry_of(request: Request) -> CollectorRegistry:
    registry: CollectorRegistry = request.app.state.metrics_registry
    return registry


def ingestion_of(request: Request) -> Ingestion:
    """The push path, over this app's store, settings, rejection counter, worker pool and ingest limiter."""
    state = request.app.state
    workers: IngestWorkers | None = state.ingest_workers
    limiter: CapacityLimiter = state.ingest_limiter
    return Ingestion(state.store, state.settings, limit_rejections(state.metrics_registry), workers, limiter)


def optional_store(request: Request) -> Store | None:
    """The store, or None in a scrape-only ``stackyard collect`` process, which has no database."""
    store: Store | None = getattr(request.app.state, "store", None)
    return store


def scraper_of(request: Request) -> Scraper | None:
    """Whatever schedules scrapes in this process; None when the app runs without one (tests, ``--no-scrape``)."""
    scraper: Scraper | None = getattr(request.app.state, "scraper", None)
    return scraper


def alerting_of(request: Request) -> Alerting:
    alerting: Alerting = request.app.state.alerting
    return alerting


def tokens_of(request: Request) -> TokenSet:
    tokens: TokenSet = request.app.state.tokens
    return tokens


def throttle_of(request: Request) -> AuthThrottle:
    throttle: AuthThrottle = request.app.state.auth_throttle
    return throttle


def database_gate(request: Request) -> DatabaseGate | None:
    """The start-up migration's gate (``stackyard serve``); None where the schema was migrated beforehand."""
    gate: DatabaseGate | None = getattr(request.app.state, "database_gate", None)
    return gate


def reveals_credentials(request: Request) -> bool:
    """Whether this caller sees passwords written into URLs: those who may use them, else they are redacted.

    A collector (``ingest``) scrapes with them and an ``admin`` wrote them; a
    ``read`` token (a dashboard viewer, a script) sees ``http://user:xxxxx@host/``.
    Without access control every caller may do everything, so nothing is hidden.
    """
    if not tokens_of(request):
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


_FRAME = "matched (RE2, unanchored) against each frame's function name and file name, as pprof's"


def frame_filters(
    focus: Annotated[str | None, Query(description=f"keep samples with a frame {_FRAME}")] = None,
    ignore: Annotated[str | None, Query(description=f"drop samples with a frame {_FRAME}")] = None,
    hide: Annotated[str | None, Query(description=f"remove the frames {_FRAME}")] = None,
    show: Annotated[str | None, Query(description=f"keep only the frames {_FRAME}")] = None,
    show_from: Annotated[str | None, Query(description=f"cut each stack above its root-most frame {_FRAME}")] = None,
) -> Filters:
    """pprof's -focus, -ignore, -hide, -show and -show_from; a pattern that does not compile is a 400 naming it."""
    return parse_filters({"focus": focus, "ignore": ignore, "hide": hide, "show": show, "show_from": show_from})


def trend_query(
    type: Annotated[str | None, Query(description="cpu, heap, allocs, goroutine, mutex, block, threadcreate")] = None,
    query: Annotated[str | None, Query(description='selector, e.g. {service="api"}')] = None,
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: Annotated[str | None, Query()] = None,
    sample: Annotated[str | None, Query(description="sample type; default: the profile's default")] = None,
) -> ProfileQuery:
    """The common parameters without ``aggregation``, which trend endpoints define their own way."""
    return ProfileQuery.parse(type, query, from_, to, sample)


StoreDep = Annotated[Store, Depends(store_of)]
ReaderDep = Annotated[Store, Depends(_reader_in_request)]
OptionalStoreDep = Annotated[Store | None, Depends(optional_store)]
SettingsDep = Annotated[Settings, Depends(settings_of)]
RegistryDep = Annotated[CollectorRegistry, Depends(registry_of)]
IngestionDep = Annotated[Ingestion, Depends(ingestion_of)]
ScraperDep = Annotated[Scraper | None, Depends(scraper_of)]
AlertingDep = Annotated[Alerting, Depends(alerting_of)]
TokensDep = Annotated[TokenSet, Depends(tokens_of)]
ThrottleDep = Annotated[AuthThrottle, Depends(throttle_of)]
GateDep = Annotated[DatabaseGate | None, Depends(database_gate)]
RevealDep = Annotated[bool, Depends(reveals_credentials)]
QueryDep = Annotated[ProfileQuery, Depends(profile_query)]
TrendQueryDep = Annotated[ProfileQuery, Depends(trend_query)]
FiltersDep = Annotated[Filters, Depends(frame_filters)]
