"""``POST /api/v1/ingest``: push a pprof profile (gzip or not) as the request body.

An ``Idempotency-Key`` header (or ``idempotency_key`` parameter) makes a retry
safe: the first write answers 201, every repeat 200 with the same profile.
"""

from __future__ import annotations

from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse

from server.api.body import read_body
from server.api.deps import SettingsDep, StoreDep
from server.ingest.profile import ingest
from server.ingest.storelimits import limit_rejections
from server.ingest.workers import IngestWorkers, RemoteRefusal
from server.syntax.labels import parse_label_pairs
from server.syntax.times import parse_time_ns

router = APIRouter(prefix="/api/v1", tags=["ingest"])


@router.post("/ingest", status_code=201)
async def push(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    service: Annotated[str, Query(min_length=1, max_length=256)],
    type: Annotated[str | None, Query()] = None,
    label: Annotated[list[str] | None, Query()] = None,
    time: Annotated[str | None, Query()] = None,
    idempotency_key: Annotated[str | None, Query()] = None,
    idempotency_header: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    labels = parse_label_pairs(label or [])
    labels["service"] = service
    time_ns = parse_time_ns(time, "time") if time else None
    body = await read_body(request, settings.max_body_bytes)
    rejections = limit_rejections(request.app.state.metrics_registry)
    key = idempotency_header if idempotency_header is not None else idempotency_key
    workers: IngestWorkers | None = request.app.state.ingest_workers
    if workers is not None:
        try:
            answer = await workers.ingest(body, labels, type, time_ns, key)
        except RemoteRefusal as exc:
            if exc.limit is not None:
                rejections.labels(exc.limit).inc()
            raise
        return JSONResponse(answer.body, status_code=201 if answer.created else 200)
    result = await to_thread.run_sync(
        ingest, store, settings, body, labels, type, time_ns, rejections, key, limiter=request.app.state.ingest_limiter
    )
    return JSONResponse(result.answer(), status_code=201 if result.stored.created else 200)
