"""The one place requests are authenticated: an ASGI middleware in front of every route and the static files.

It runs before routing, so a request for a route that does not exist is
refused like one that does (a 404 would tell an anonymous caller which paths
are real). Refusals say no more than ``authentication required`` (401) or
``forbidden`` (403): no token names, no scope names, no hint which part was
wrong. A browser asking for a page is sent to the login page instead.

A client presenting tokens that do not match, again and again, is guessing:
with a throttle (:mod:`server.auth.ratelimit`) each such refusal counts
against its address, and past the limit its token-bearing requests are
answered 429 before the token is even looked at.

Writes carried by the login cookie are checked for cross-site forgery
(:mod:`server.auth.origin`) before anything else; WebSocket connections are
refused outright, since no route serves one (the scope never reaches a
router or the static files).
"""

from __future__ import annotations

import json
import logging
from urllib.parse import quote

from prometheus_client import CollectorRegistry, Counter
from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from server.auth.origin import forgery
from server.auth.policy import LOGIN_PAGE, is_connect, is_page, required_scope
from server.auth.ratelimit import AuthThrottle, client_address, retry_after_header, too_many_body
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
    """``throttle``: limit wrong tokens per client address; ``pages``: send browsers to the login page on 401
    (False for a process that has no login page, such as ``stackyard collect``'s /metrics)."""

    def __init__(
        self,
        app: ASGIApp,
        tokens: TokenSet,
        failures: Counter,
        throttle: AuthThrottle | None = None,
        pages: bool = True,
    ) -> None:
        self.app = app
        self.tokens = tokens
        self.failures = failures
        self.throttle = throttle
        self.pages = pages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await _refuse_websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        path: str = scope["path"]
        needed = required_scope(method, path) if self.tokens else None
        headers = Headers(scope=scope)
        token = presented_token(headers) if self.tokens else None
        # A request with a bearer token is an API client's: unaffected. One the cookie would authorise
        # must prove it comes from our own pages; any other write is refused only when the browser itself
        # says it comes from another site.
        by_cookie = token is not None and needed is not None
        forged = None if _has_bearer(headers) else forgery(method, scope, headers, strict=by_cookie)
        if forged is not None:
            log.info("cross-site write refused", extra={"method": method, "path": path, "why": forged})
            body = json.dumps({"error": f"cross-site request refused: {forged}", "status": 403}).encode()
            await _send(send, 403, body, [(b"content-type", b"application/json")])
            return
        if not self.tokens:
            await self.app(scope, receive, send)
            return
        client = client_address(scope.get("client"))
        # A token where one is needed is a guess until it matches; none, or on an open path, is not.
        throttle = self.throttle if token is not None and needed is not None else None
        if throttle is not None:
            wait = throttle.blocked(client, "token")
            if wait is not None:
                log.info("access throttled", extra={"method": method, "path": path, "client": client})
                body = json.dumps(too_many_body(wait)).encode()
                retry = retry_after_header(wait).encode()
                await _send(send, 429, body, [(b"content-type", b"application/json"), (b"retry-after", retry)])
                return
        principal: Principal | None = self.tokens.authenticate(token) if token is not None else None
        if principal is not None:
            scope.setdefault("state", {})["principal"] = principal
        if needed is None or (principal is not None and principal.allows(needed)):
            await self.app(scope, receive, send)
            return
        status = 401 if principal is None else 403
        if throttle is not None and principal is None:
            throttle.failed(client)
        self.failures.labels(str(status)).inc()
        log.info(
            "access refused",
            extra={"method": method, "path": path, "status": status, "token": principal.name if principal else None},
        )
        # A cookie that matches no token (one rotated away) is dropped, so a dashboard left open keeps
        # no stream of failures going that would count against its address's login limit.
        forget = [_expired_cookie(scope)] if status == 401 and token is not None and _from_cookie(headers) else []
        if status == 401 and self.pages and is_page(method, path, headers.get("accept", "")):
            target = path + ("?" + scope["query_string"].decode("latin-1") if scope.get("query_string") else "")
            location = f"{LOGIN_PAGE}?next={quote(target, safe='')}".encode()
            await _send(send, 303, b"", [(b"location", location), *forget])
            return
        message = "authentication required" if status == 401 else "forbidden"
        if is_connect(path):
            code = "unauthenticated" if status == 401 else "permission_denied"
            body = json.dumps({"code": code, "message": message}).encode()
        else:
            body = json.dumps({"error": message, "status": status}).encode()
        extra = [(b"www-authenticate", b"Bearer"), *forget] if status == 401 else []
        await _send(send, status, body, [(b"content-type", b"application/json"), *extra])


def _has_bearer(headers: Headers) -> bool:
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and bool(credentials.strip())


def _from_cookie(headers: Headers) -> bool:
    """Whether :func:`presented_token` took the token from the cookie (no bearer header was sent)."""
    return not _has_bearer(headers)


def _expired_cookie(scope: Scope) -> tuple[bytes, bytes]:
    """The ``Set-Cookie`` that removes the login cookie, with the attributes it was set with."""
    secure = "; Secure" if scope.get("scheme") == "https" else ""
    value = f'{COOKIE_NAME}=""; Max-Age=0; Path=/; HttpOnly; SameSite=strict{secure}'
    return (b"set-cookie", value.encode())


async def _refuse_websocket(scope: Scope, receive: Receive, send: Send) -> None:
    """Close the handshake before accepting it (the server answers 403): no route serves a WebSocket."""
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close", "code": 1008})
    log.info("websocket refused", extra={"path": scope.get("path")})


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
