"""The one place requests are authenticated: an ASGI middleware in front of every route and the static files.

It runs before routing, so a request for a route that does not exist is
refused like one that does (a 404 would tell an anonymous caller which paths
are real). Refusals say no more than ``authentication required`` (401) or
``forbidden`` (403): no token names, no scope names, no hint which part was
wrong. A browser asking for a page is sent to the login page instead.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import quote

from prometheus_client import CollectorRegistry, Counter
from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from server.auth.policy import LOGIN_PAGE, is_page, required_scope
from server.auth.tokens import Principal, TokenSet

log = logging.getLogger(__name__)

COOKIE_NAME = "stackyard_token"


def presented_token(headers: Headers) -> str | None:
    """The bearer token of the ``Authorization`` header, else the login cookie's."""
    authorization = headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    cookie = cookie_parser(headers.get("cookie", "")).get(COOKIE_NAME)
    return cookie or None


def failure_counter(registry: CollectorRegistry) -> Counter:
    return Counter(
        "stackyard_auth_failures_total",
        "Requests refused by access control, by HTTP status (401 unauthenticated, 403 wrong scope).",
        ["status"],
        registry=registry,
    )


class AuthMiddleware:
    def __init__(self, app: ASGIApp, tokens: TokenSet, failures: Counter) -> None:
        self.app = app
        self.tokens = tokens
        self.failures = failures

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.tokens:
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        path: str = scope["path"]
        needed = required_scope(method, path)
        headers = Headers(scope=scope)
        token = presented_token(headers)
        principal: Principal | None = self.tokens.authenticate(token) if token is not None else None
        if principal is not None:
            scope.setdefault("state", {})["principal"] = principal
        if needed is None or (principal is not None and principal.allows(needed)):
            await self.app(scope, receive, send)
            return
        status = 401 if principal is None else 403
        self.failures.labels(str(status)).inc()
        log.info(
            "access refused",
            extra={"method": method, "path": path, "status": status, "token": principal.name if principal else None},
        )
        if status == 401 and is_page(method, path, headers.get("accept", "")):
            target = path + ("?" + scope["query_string"].decode("latin-1") if scope.get("query_string") else "")
            await _send(send, 303, b"", [(b"location", f"{LOGIN_PAGE}?next={quote(target, safe='')}".encode())])
            return
        message = "authentication required" if status == 401 else "forbidden"
        body = json.dumps({"error": message, "status": status}).encode()
        extra = [(b"www-authenticate", b"Bearer")] if status == 401 else []
        await _send(send, status, body, [(b"content-type", b"application/json"), *extra])


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
