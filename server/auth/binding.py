"""Where a server without tokens may listen: loopback only, unless the operator says ``--insecure``.

Without tokens every route is open, which is fine for a laptop and a hole
on a network. Refusing to bind elsewhere makes an open server a decision
someone typed, not a default someone forgot.
"""

from __future__ import annotations

import ipaddress


class InsecureBind(Exception):
    """Binding a non-loopback address with no tokens configured and no ``--insecure``."""


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere, so it counts as the network


def check_bind(host: str, has_tokens: bool, insecure: bool) -> str | None:
    """Raise :class:`InsecureBind` for an open server on the network; else a warning to log, or None."""
    if has_tokens:
        return None
    if is_loopback(host):
        return "no API tokens configured: access control is off, so serving on loopback only"
    if not insecure:
        raise InsecureBind(
            f"refusing to serve on {host} without API tokens: set STACKYARD_AUTH_TOKENS "
            "(docs/config.md#access-control), "
            "bind to 127.0.0.1, or pass --insecure to serve openly"
        )
    return f"no API tokens configured and --insecure given: every route on {host} is open to anyone who can reach it"
