"""``GET /metrics``: Prometheus text exposition of this process's registry, and of the stored data."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.concurrency import run_in_threadpool

from server.api.deps import OptionalStoreDep, RegistryDep
from server.api.schemas.files import METRICS_TEXT
from server.query.storedmetrics import StoredDataCollector
from server.store.availability import describe, is_unavailable
from server.store.repository import Store

router = APIRouter(tags=["metrics"])
log = logging.getLogger(__name__)
#: How long the stored-data part of a scrape may take; past it (a database that hangs) it is left out.
STORED_METRICS_TIMEOUT_S = 2.0


@router.get("/metrics", response_class=Response, responses=METRICS_TEXT)
@router.head("/metrics", include_in_schema=False)  # one operation in the schema (two would share an id)
async def metrics(request: Request, registry: RegistryDep, store: OptionalStoreDep) -> Response:
    """The exposition; ``HEAD`` answers with the same status and headers, and no body (monitors probe with it)."""
    body = generate_latest(registry)
    if store is not None:  # a scrape-only `stackyard collect` process has no database
        body += await _stored_metrics(request, store)
    if request.method == "HEAD":
        return Response(media_type=CONTENT_TYPE_LATEST, headers={"content-length": str(len(body))})
    return Response(body, media_type=CONTENT_TYPE_LATEST)


async def _stored_metrics(request: Request, store: Store) -> bytes:
    """The stored-data part of a scrape, or nothing while the database is away or slow.

    The process's own metrics (buffers, scrapes) matter most during an outage,
    so a hanging database must not fail the scrape. A read that outlives its
    timeout keeps its worker thread until the database answers; one read at a
    time (single flight) keeps frequent scrapes from piling such threads up
    and starving the API's thread pool.
    """
    pending: asyncio.Future[bytes] | None = getattr(request.app.state, "stored_metrics_read", None)
    if pending is not None and not pending.done():
        log.warning("stored metrics left out", extra={"error": "the previous read has not finished"})
        return b""
    stored = CollectorRegistry(auto_describe=False)
    stored.register(StoredDataCollector(store))
    read = asyncio.ensure_future(run_in_threadpool(generate_latest, stored))
    read.add_done_callback(lambda done: done.cancelled() or done.exception())  # a late failure is not news
    request.app.state.stored_metrics_read = read
    try:
        return await asyncio.wait_for(asyncio.shield(read), STORED_METRICS_TIMEOUT_S)
    except TimeoutError:
        log.warning("stored metrics left out", extra={"error": f"database slower than {STORED_METRICS_TIMEOUT_S}s"})
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        log.warning("stored metrics left out", extra={"error": describe(exc)})
    return b""
