"""Receivers: named webhook endpoints that get Alertmanager's webhook JSON.

A webhook URL is a place the server will post to, so it passes the same
network policy as a scrape target: a URL whose host is written as an address
the policy refuses is refused here, when the receiver is created (API) or the
config file is loaded; names are checked when they are resolved, at every
connection (:mod:`server.network.guard`), and config-file names also at load.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from server.alerts.rules import MAX_NAME, RULE_NAME
from server.errors import InvalidParameter
from server.network.policy import NetworkPolicy
from server.network.redact import redact_credentials

RECEIVER_KEYS = ("name", "webhook_url")


@dataclass(frozen=True, slots=True)
class Receiver:
    name: str
    webhook_url: str
    source: str = "api"


def check_webhook_url(url: str, policy: NetworkPolicy | None = None, parameter: str = "webhook_url") -> str:
    """Refuse what cannot be posted to, naming ``parameter``; with ``policy``, a host written as a refused address."""
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise InvalidParameter(parameter, "must not contain spaces or control characters")
    shown = redact_credentials(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise InvalidParameter(parameter, f"{shown!r} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidParameter(parameter, f"{shown!r} is not an http:// or https:// URL")
    if policy is not None:
        refusal = policy.literal_refusal(parts.hostname)
        if refusal is not None:
            raise InvalidParameter(parameter, f"refused: {refusal}")
    return url


def parse_receiver(data: dict[str, Any], source: str = "api", policy: NetworkPolicy | None = None) -> Receiver:
    if not isinstance(data, dict):
        raise InvalidParameter("receiver", "expected a JSON object")
    for key in data:
        if key not in RECEIVER_KEYS:
            raise InvalidParameter(str(key), f"unknown field; a receiver has {', '.join(RECEIVER_KEYS)}")
    name, url = data.get("name"), data.get("webhook_url")
    if not isinstance(name, str) or not name:
        raise InvalidParameter("name", "required: a non-empty string")
    if len(name) > MAX_NAME or not RULE_NAME.fullmatch(name):
        raise InvalidParameter("name", f"{name!r} must be letters, digits and _ : . - (at most {MAX_NAME})")
    if not isinstance(url, str) or not url:
        raise InvalidParameter("webhook_url", "required: an http:// or https:// URL")
    return Receiver(name, check_webhook_url(url.strip(), policy), source)
