"""Which scope a request needs, from its method and path alone.

Deciding from the path rather than per router keeps one table to review and
makes the safe answer the default: an unknown read of ``/api/...`` needs
``read``, an unknown write anywhere needs ``admin``. ``None`` means open.

    GET/HEAD /healthz, /readyz, /login.html, /login,
             static assets (.js, .css, images, fonts
             under /css/, /js/, /img/, /fonts/)            open
    POST     /api/v1/login, /api/v1/logout                 open
    GET/HEAD anything else (API, pages, /metrics)          read
    POST     /querier.v1.QuerierService/... (Connect)      read
    POST/PUT any path with an ``ingest`` segment           ingest
    any other method on any path                           admin
"""

from __future__ import annotations

from server.auth.tokens import Scope

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUSH_METHODS = frozenset({"POST", "PUT"})
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/login.html", "/login", "/favicon.svg", "/favicon.ico"})
#: Assets are open only in these folders: a page route with a path parameter (``/services/{name}``)
#: must not become open because someone asks for ``/services/x.js``.
ASSET_DIRS = ("/css/", "/js/", "/img/", "/fonts/")
OPEN_POSTS = frozenset({"/api/v1/login", "/api/v1/logout"})
#: Connect services whose every method only reads (Pyroscope's querier: Grafana POSTs its queries).
READ_SERVICES = ("/querier.v1.QuerierService/",)
ASSET_SUFFIXES = (".js", ".mjs", ".css", ".map", ".svg", ".png", ".jpg", ".ico", ".woff", ".woff2")
LOGIN_PAGE = "/login.html"


def is_api(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


def is_asset(path: str) -> bool:
    return path.startswith(ASSET_DIRS) and path.lower().endswith(ASSET_SUFFIXES)


def required_scope(method: str, path: str) -> Scope | None:
    method = method.upper()
    if method in READ_METHODS:
        if path in OPEN_PATHS or is_asset(path):
            return None
        return Scope.READ
    if method == "POST" and path in OPEN_POSTS:
        return None
    if method == "POST" and path.startswith(READ_SERVICES):
        return Scope.READ
    if method in PUSH_METHODS and "ingest" in path.split("/"):
        return Scope.INGEST
    return Scope.ADMIN


def is_connect(path: str) -> bool:
    """A Connect call (``/<package>.<Service>/<Method>``), whose clients read errors as ``{"code", "message"}``."""
    service, _, method = path.removeprefix("/").partition("/")
    return "." in service and bool(method) and "/" not in method


def is_page(method: str, path: str, accept: str) -> bool:
    """A browser asking for a page (which gets redirected to log in, where an API client gets a 401)."""
    return method.upper() in ("GET", "HEAD") and not is_api(path) and path != "/metrics" and "text/html" in accept
