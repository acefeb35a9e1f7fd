"""``GET /metrics``: Prometheus text exposition of this process's registry, and of the stored data."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.concurrency import run_in_threadpool

from server.availability import describe, is_unavailable
from server.stored_metrics import StoredDataCollector

router = APIRouter(tags=["metrics"])
log = logging.getLogger(__name__)
#: How long the stored-data part of a scrape may take; past it (a database that hangs) it is left out.
STORED_METRICS_TIMEOUT_S = 2.0


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.metrics_registry
    body = generate_latest(registry)
    store = getattr(request.app.state, "store", None)
    if store is not None:  # a scrape-only `stackyard collect` process has no database
        # The process's own metrics (buffers, scrapes) matter most while the database is away, so
        # an unreachable or hanging database drops only the stored-data part, never the whole scrape.
        stored = CollectorRegistry(auto_describe=False)
        stored.register(StoredDataCollector(store))
        try:
            body += await asyncio.wait_for(run_in_threadpool(generate_latest, stored), STORED_METRICS_TIMEOUT_S)
        except TimeoutError:
            log.warning("stored metrics left out", extra={"error": f"database slower than {STORED_METRICS_TIMEOUT_S}s"})
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            log.warning("stored metrics left out", extra={"error": describe(exc)})
    return Response(body, media_type=CONTENT_TYPE_LATEST)
