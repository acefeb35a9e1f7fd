"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from server import __version__
from server.api.deps import StoreDep
from server.store.availability import describe

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, Any]:
    return {"status": "ok", "version": __version__}


@router.get("/readyz")
def readyz(request: Request, store: StoreDep) -> JSONResponse:
    """Ready means migrated and answering now: not before the start-up migration, nor during an outage."""
    gate = getattr(request.app.state, "database_gate", None)
    if gate is not None and not gate.ready:
        return JSONResponse(
            {"status": "unavailable", "error": f"database unavailable: {gate.reason} (migration pending)"},
            status_code=503,
        )
    try:
        with store.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to reach the database means not ready
        return JSONResponse(
            {"status": "unavailable", "error": f"database unavailable: {describe(exc)}"}, status_code=503
        )
    return JSONResponse({"status": "ok"})
