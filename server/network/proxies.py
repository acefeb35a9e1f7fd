"""Which peers may speak for the client: ``STACKYARD_TRUSTED_PROXIES``, handed to uvicorn.

Behind a reverse proxy every request comes from the proxy's address, and the
proxy says who the client was in ``X-Forwarded-For`` (and whether it came
over HTTPS in ``X-Forwarded-Proto``). Anyone else can write those headers
too, so they are believed only from the proxies the operator names. uvicorn
itself believes them from 127.0.0.1 unless told otherwise, which let any
local process (or anything a local proxy forwards) choose the address the
login throttle counts against. Stackyard therefore always passes its own
setting: no trusted proxies (the default) turns uvicorn's proxy headers
handling off altogether; otherwise uvicorn replaces the peer address and the
scheme from the headers of those peers only (the right-most address in
``X-Forwarded-For`` that is not itself a trusted proxy).

The login throttle (:mod:`server.auth.ratelimit`) and the cookie's
``Secure`` flag then see what uvicorn put in the ASGI scope.
"""

from __future__ import annotations

from typing import Any

from server.settings import Settings


def uvicorn_proxy_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments of ``uvicorn.run``/``uvicorn.Config`` that carry ``settings.trusted_proxies``."""
    if not settings.trusted_proxies:
        return {"proxy_headers": False, "forwarded_allow_ips": ""}
    return {"proxy_headers": True, "forwarded_allow_ips": list(settings.trusted_proxies)}
