"""``POST /api/v1/ingest``: push a pprof profile (gzip or not) as the request body.

An ``Idempotency-Key`` header (or ``idempotency_key`` parameter) makes a retry
safe: the first write answers 201, every repeat 200 with the same profile.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response

from server.api.body import read_body
from server.api.deps import IngestionDep, SettingsDep
from server.api.schemas.ingest import IngestOut
from server.syntax.labels import parse_label_pairs
from server.syntax.times import parse_time_ns

router = APIRouter(prefix="/api/v1", tags=["ingest"])


@router.post(
    "/ingest",
    status_code=201,
    responses={200: {"model": IngestOut, "description": "A repeat of an idempotency key: the profile stored before."}},
)
async def push(
    request: Request,
    response: Response,
    ingestion: IngestionDep,
    settings: SettingsDep,
    service: Annotated[str, Query(min_length=1, max_length=256)],
    type: Annotated[str | None, Query()] = None,
    label: Annotated[list[str] | None, Query()] = None,
    time: Annotated[str | None, Query()] = None,
    idempotency_key: Annotated[str | None, Query()] = None,
    idempotency_header: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> IngestOut:
    """Store one profile: 201 when stored, 200 for a repeat of an idempotency key (the same profile again)."""
    labels = parse_label_pairs(label or [])
    labels["service"] = service
    time_ns = parse_time_ns(time, "time") if time else None
    body = await read_body(request, settings.max_body_bytes)
    key = idempotency_header if idempotency_header is not None else idempotency_key
    answer = await ingestion.profile(body, labels, type, time_ns, key)
    if not answer.created:
        response.status_code = 200
    return IngestOut.of(answer.body)
