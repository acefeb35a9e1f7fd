"""Cross-site request forgery: a write carried by the login cookie must come from this server's own pages.

``SameSite=Strict`` keeps other *sites* from sending the cookie, but a site is
a scheme and a registrable domain, not a port: a page served on another port
of the same host (another service, a developer's test page) is same-site, so
its ``fetch(..., {mode: "no-cors", credentials: "include"})`` or its auto-
submitting form reached Stackyard with the cookie. It could push a goroutine
dump, or start a trace capture with a bodiless ``POST .../trace``.

So every request except ``GET`` and ``HEAD`` is checked against what the
browser says about where it comes from:

- ``Sec-Fetch-Site``, set by the browser itself (Chromium, Firefox, Safari):
  it must be ``same-origin``. It decides when present, because it is exact
  even where a reverse proxy rewrites ``Host`` or the scheme.
- else ``Origin``, which browsers send on every cross-origin request and on
  every same-origin one that is not ``GET``/``HEAD``: it must equal the
  request's own origin (its scheme and ``Host``, default ports made
  explicit).
- neither header: not a browser. That is refused when the request is
  authenticated by the cookie (``strict``: only browsers hold it), and let
  through otherwise (the CLI, a collector, curl with a bearer token).

Requests with a bearer token in ``Authorization`` are not checked at all
(:mod:`server.auth.middleware` skips them): a page cannot make a browser
attach one to another origin without a CORS preflight this server never
grants, so API clients are unaffected.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import Scope

SAFE_METHODS = frozenset({"GET", "HEAD"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(scheme: str, netloc: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) with the default port filled in; None if it does not parse."""
    try:
        parts = urlsplit(f"{scheme}://{netloc}")
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or parts.username is not None or parts.path:
        return None
    scheme = parts.scheme.lower()
    return scheme, parts.hostname.lower(), port if port is not None else _DEFAULT_PORTS.get(scheme, -1)


def own_origin(scope: Scope, headers: Headers) -> tuple[str, str, int] | None:
    """This request's origin as the browser addressed it: the scope's scheme and the ``Host`` header."""
    host = headers.get("host")
    return _origin(str(scope.get("scheme", "http")), host) if host else None


def forgery(method: str, scope: Scope, headers: Headers, strict: bool) -> str | None:
    """Why this request looks forged by another origin (the rest of a sentence), or None if it may proceed."""
    if method.upper() in SAFE_METHODS:
        return None
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None:
        if fetch_site.strip().lower() == "same-origin":
            return None
        return f"Sec-Fetch-Site is {fetch_site[:40]!r}; only same-origin pages may make this request"
    origin = headers.get("origin")
    if origin is not None:
        scheme, _, netloc = origin.strip().partition("://")
        claimed = _origin(scheme, netloc) if netloc else None
        if claimed is not None and claimed == own_origin(scope, headers):
            return None
        return f"Origin {origin[:100]!r} is not this server's origin"
    if strict:
        return "a request authenticated by the login cookie must carry Origin or Sec-Fetch-Site"
    return None
