"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy import text

from server import __version__
from server.api.deps import GateDep, StoreDep
from server.api.schemas.health import HealthOut, ReadyOut
from server.store.availability import describe

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> HealthOut:
    return HealthOut(status="ok", version=__version__)


@router.get("/readyz", responses={503: {"model": ReadyOut, "description": "Not ready: the database is away."}})
def readyz(response: Response, store: StoreDep, gate: GateDep) -> ReadyOut:
    """Ready means migrated and answering now: not before the start-up migration, nor during an outage."""
    if gate is not None and not gate.ready:
        response.status_code = 503
        return ReadyOut(status="unavailable", error=f"database unavailable: {gate.reason} (migration pending)")
    try:
        with store.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to reach the database means not ready
        response.status_code = 503
        return ReadyOut(status="unavailable", error=f"database unavailable: {describe(exc)}")
    return ReadyOut(status="ok")
