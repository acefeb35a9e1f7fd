"""Every rejected request answers JSON ``{"error": "...", "status": N}`` naming the problem."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException

from server.errors import StackyardError
from server.pprof.errors import ProfileError, ProfileTooLargeError

log = logging.getLogger(__name__)


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status)


def install(app: FastAPI) -> None:
    @app.exception_handler(StackyardError)
    async def _stackyard(_request: Request, exc: StackyardError) -> JSONResponse:
        return error_response(exc.status_code, exc.message)

    @app.exception_handler(ProfileError)
    async def _profile(_request: Request, exc: ProfileError) -> JSONResponse:
        return error_response(413 if isinstance(exc, ProfileTooLargeError) else 400, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error.get("loc", ()) if part not in ("query", "body", "path"))
            problems.append(f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg")))
        return error_response(422, "; ".join(problems) or "invalid request")

    @app.exception_handler(HTTPException)
    async def _http(_request: Request, exc: HTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail))

    @app.exception_handler(OperationalError)
    async def _database(_request: Request, exc: OperationalError) -> JSONResponse:
        log.error("database unavailable", extra={"error": str(exc.orig)})
        return error_response(503, "database unavailable; try again shortly")
