"""The HTTP side of ``stackyard collect``: its /metrics, behind the same access control as the server.

A collector's metrics name every target it scrapes (``stackyard_target_up``
carries service and instance labels), which is a map of the fleet. So the
collector follows the server's rule (:mod:`server.auth.binding`): without
tokens it listens on loopback only, unless ``--insecure`` says otherwise; with
``STACKYARD_AUTH_TOKENS`` every request needs a token with the ``read``
scope, checked by the server's own middleware, tokens and failure limit.
"""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from server.api import metrics
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


def metrics_app(registry: CollectorRegistry, settings: Settings) -> FastAPI:
    """``GET /metrics`` of ``registry``; with tokens configured, only for a ``read`` token."""
    app = FastAPI(title="Stackyard collector", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.metrics_registry = registry
    app.state.tokens = TokenSet(settings.auth_tokens)
    app.add_middleware(
        AuthMiddleware,
        tokens=app.state.tokens,
        failures=failure_counter(registry),
        throttle=AuthThrottle.create(settings.login_max_failures, settings.login_window, registry),
        pages=False,  # no login page here: a browser gets the 401 too
    )
    app.include_router(metrics.router)
    return app
