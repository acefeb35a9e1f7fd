"""``GET /metrics``: Prometheus text exposition of this process's registry, and of the stored data."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.concurrency import run_in_threadpool

from server.stored_metrics import StoredDataCollector

router = APIRouter(tags=["metrics"])


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.metrics_registry
    body = generate_latest(registry)
    store = getattr(request.app.state, "store", None)
    if store is not None:  # a scrape-only `stackyard collect` process has no database
        stored = CollectorRegistry(auto_describe=False)
        stored.register(StoredDataCollector(store))
        body += await run_in_threadpool(generate_latest, stored)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
