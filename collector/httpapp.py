"""The HTTP side of ``stackyard collect``: its own /metrics, behind the same access control as the server.

A collector's metrics name every target it scrapes (``stackyard_target_up``
carries service and instance labels), which is a map of the fleet. So the
collector follows the server's rule (:mod:`server.auth.binding`): without
tokens it listens on loopback only, unless ``--insecure`` says otherwise; with
``STACKYARD_AUTH_TOKENS`` every request needs a token with the ``read``
scope, checked by the server's own middleware, tokens and failure limit.

The exposition is this process's registry only: a scrape-only process has no
stored data to report, so it serves the page itself (a small Starlette app)
rather than the server's API router, and loads none of the API or the store.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.auth.middleware import AuthMiddleware, failure_counter
from server.auth.ratelimit import AuthThrottle
from server.auth.tokens import TokenSet
from server.settings import Settings

DEFAULT_HOST = "127.0.0.1"


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:4181`` for IPv6; ``:4181`` means loopback) → host and port, or ValueError."""
    host, sep, port_text = listen.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"--listen {listen!r}: expected HOST:PORT, like 127.0.0.1:4181")
    return host.strip("[]") or DEFAULT_HOST, int(port_text)


def metrics_app(registry: CollectorRegistry, settings: Settings) -> Starlette:
    """``GET /metrics`` of ``registry``; with tokens configured, only for a ``read`` token."""

    async def metrics(request: Request) -> Response:
        """The exposition; ``HEAD`` answers with the same status and headers, and no body (monitors probe with it)."""
        body = generate_latest(registry)
        if request.method == "HEAD":
            return Response(media_type=CONTENT_TYPE_LATEST, headers={"content-length": str(len(body))})
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    auth = Middleware(
        AuthMiddleware,
        tokens=TokenSet(settings.auth_tokens),
        failures=failure_counter(registry),
        throttle=AuthThrottle.create(settings.login_max_failures, settings.login_window, registry),
        pages=False,  # no login page here: a browser gets the 401 too
    )
    return Starlette(routes=[Route("/metrics", metrics, methods=["GET", "HEAD"])], middleware=[auth])
