"""``create_app(settings)``: the FastAPI application, built from a settings object, never at import."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

from anyio import CapacityLimiter
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry

from server import __version__
from server.alerts.service import Alerting
from server.api import (
    alerts,
    docs,
    errors,
    fleet,
    goroutines,
    health,
    ingest,
    labels,
    login,
    metrics,
    pages,
    profiles,
    query,
    targets,
)
from server.auth.middleware import AuthMiddleware, failure_counter
from server.auth.ratelimit import AuthThrottle
from server.auth.tokens import TokenSet
from server.gcfreeze import freeze_startup_objects, space_full_collections
from server.ingest.storelimits import limit_rejections
from server.ingest.workers import IngestWorkers
from server.migrate import ROOT
from server.pyroscope import render, sdk
from server.pyroscope.pusher import pusher
from server.pyroscope.querier import querier
from server.query.replicametrics import ReplicaCollector
from server.scrape.protocol import Scraper
from server.settings import Settings
from server.store.repository import Store

WEB_DIR = ROOT / "web"
Hook = Callable[[], Awaitable[None]]


def create_app(
    settings: Settings,
    store: Store | None = None,
    scraper: Scraper | None = None,
    metrics_registry: CollectorRegistry | None = None,
    on_start: Sequence[Hook] = (),
    on_stop: Sequence[Hook] = (),
    alerting: Alerting | None = None,
    ingest_workers: IngestWorkers | None = None,
) -> FastAPI:
    """Build the app.

    ``store`` shares one store (and its caches) with an in-process collector or
    a test; ``scraper`` is whatever schedules scrapes (the server only knows its
    protocol); ``on_start``/``on_stop`` run inside the app's event loop, which
    is where an in-process scraper must live. ``ingest_workers`` shares a pool
    with that scraper's sink; without one, ``settings.ingest_processes`` makes one.
    """
    owned = store is None
    the_store = (
        store
        if store is not None
        else Store.from_url(
            settings.database_url,
            settings.database_pool_size,
            settings.database_read_url,
            settings.read_max_lag_seconds,
            settings.read_check_interval,
        )
    )
    workers = ingest_workers
    if workers is None and settings.ingest_processes:
        workers = IngestWorkers(settings, settings.ingest_processes)
    # Workers first and last: an in-process collector started by ``on_start`` may hand them profiles at once,
    # and its buffer is written out while ``on_stop`` stops it.
    starts = [*([workers.start] if workers else []), *on_start]
    stops = [*on_stop, *([workers.stop] if workers else [])]

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        for hook in starts:
            await hook()
        freeze_startup_objects(settings.gc_freeze)  # started: what exists now lives as long as the process
        space_full_collections(settings.gc_full_collection_every)
        try:
            yield
        finally:
            for hook in stops:
                await hook()
            if owned:
                the_store.close()

    # /docs comes from server/api/docs.py, with its scripts served here rather than from a CDN.
    app = FastAPI(title="Stackyard", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.store = the_store
    app.state.scraper = scraper
    app.state.metrics_registry = metrics_registry or CollectorRegistry()
    limit_rejections(app.state.metrics_registry)  # every store limit in /metrics from the start, at zero
    if the_store.replica is not None:  # the hot standby's lag and who served queries
        app.state.metrics_registry.register(ReplicaCollector(the_store.replica))
    # Ingest holds the GIL for most of its time: more at once only makes every request, queries
    # included, wait longer for it. Pushes beyond the limit wait in the event loop instead.
    app.state.ingest_limiter = CapacityLimiter(settings.ingest_concurrency)
    app.state.ingest_workers = workers
    app.state.tokens = TokenSet(settings.auth_tokens)
    # Every request, routed or static, passes the access policy (server/auth/policy.py).
    # Failed logins and wrong tokens per client address (server/auth/ratelimit.py).
    app.state.auth_throttle = AuthThrottle.create(
        settings.login_max_failures, settings.login_window, app.state.metrics_registry
    )
    app.add_middleware(
        AuthMiddleware,
        tokens=app.state.tokens,
        failures=failure_counter(app.state.metrics_registry),
        throttle=app.state.auth_throttle,
    )
    app.state.alerting = alerting or Alerting(the_store, settings)
    errors.install(app)
    for module in (health, ingest, query, profiles, labels, targets, fleet, metrics, login, goroutines, alerts):
        app.include_router(module.router)
    app.include_router(querier.router())  # Pyroscope's query service, at /querier.v1.QuerierService/...
    app.include_router(render.router)  # and its flamebearer JSON, at /pyroscope/render...
    app.include_router(sdk.router)  # Pyroscope's push clients: POST /ingest (the SDK) and Push (Alloy)
    app.include_router(pusher.router())
    docs.install(app)
    app.include_router(pages.router_for(WEB_DIR))  # /explore, /diff, ... before the static mount
    if WEB_DIR.is_dir():
        app.mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web")
    return app
