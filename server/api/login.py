"""``POST /api/v1/login`` and ``/logout``: the dashboard's token, kept in an HttpOnly cookie.

The cookie holds the token itself (the server keeps no sessions to lose on a
restart or to share between replicas); ``HttpOnly`` keeps page scripts from
reading it, ``SameSite=Strict`` keeps other sites from sending it, and
``Secure`` is set whenever the request came over HTTPS.

Failed logins count against the client's address (:mod:`server.auth.ratelimit`);
past the limit the answer is 429 with ``Retry-After``, whatever the token.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from server.api.deps import SettingsDep, ThrottleDep, TokensDep
from server.api.errors import error_response
from server.api.schemas.auth import LoginIn, LoginOut
from server.auth.middleware import COOKIE_NAME
from server.auth.ratelimit import client_address, retry_after_header, too_many_body

router = APIRouter(prefix="/api/v1", tags=["auth"])
log = logging.getLogger(__name__)


@router.post("/login", response_model=LoginOut)
def login(
    body: LoginIn,
    request: Request,
    response: Response,
    settings: SettingsDep,
    tokens: TokensDep,
    throttle: ThrottleDep,
) -> LoginOut | Response:
    if not tokens:
        return error_response(400, "authentication is not enabled on this server (no tokens configured)")
    client = client_address(request.scope.get("client"))
    wait = throttle.blocked(client, "login")
    if wait is not None:
        log.info("login throttled", extra={"client": client})
        return JSONResponse(too_many_body(wait), status_code=429, headers={"Retry-After": retry_after_header(wait)})
    principal = tokens.authenticate(body.token)
    if principal is None:
        throttle.failed(client)
        return error_response(401, "authentication required")
    response.set_cookie(
        COOKIE_NAME,
        body.token,
        max_age=int(settings.auth_cookie_max_age),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return LoginOut(scopes=sorted(principal.scopes))


@router.post("/logout", status_code=204)
def logout(request: Request) -> Response:
    response = Response(status_code=204)
    response.delete_cookie(
        COOKIE_NAME, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )
    return response
