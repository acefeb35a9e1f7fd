"""Every rejected request answers JSON ``{"error": "...", "status": N}`` naming the problem."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from server.errors import StackyardError
from server.pprof.errors import ProfileError, ProfileTooLargeError
from server.store.availability import describe, is_unavailable

log = logging.getLogger(__name__)
RETRY_AFTER_S = 5


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status)


def install(app: FastAPI) -> None:
    @app.exception_handler(StackyardError)
    async def _stackyard(_request: Request, exc: StackyardError) -> JSONResponse:
        response = error_response(exc.status_code, exc.message)
        if exc.status_code == 503:
            response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response

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

    @app.exception_handler(DBAPIError)
    async def _database(_request: Request, exc: DBAPIError) -> JSONResponse:
        return _database_error(exc)

    @app.exception_handler(PoolTimeout)
    async def _pool(_request: Request, exc: PoolTimeout) -> JSONResponse:
        return _database_error(exc)

    app.add_middleware(DatabaseGateMiddleware)


class DatabaseGateMiddleware:
    """While the schema is not migrated (the database was away at start), the API answers 503, not 500.

    Plain ASGI rather than ``BaseHTTPMiddleware``: it looks at one attribute
    per request and must not buffer or re-wrap streamed responses.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/"):
            gate = getattr(scope["app"].state, "database_gate", None)
            if gate is not None and not gate.ready:
                await unavailable_response(gate.reason)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def unavailable_response(reason: str) -> JSONResponse:
    response = error_response(503, f"database unavailable: {reason}; try again shortly")
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


def _database_error(exc: Exception) -> JSONResponse:
    """Outages (connection refused, dropped, pool exhausted) are 503: the client retries, nothing is lost."""
    if is_unavailable(exc):
        reason = describe(exc)
        log.error("database unavailable", extra={"error": reason})
        return unavailable_response(reason)
    log.error("database error", exc_info=exc)
    return error_response(500, "internal error in the database layer; see the server log")
