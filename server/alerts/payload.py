"""The JSON receivers get: Alertmanager's webhook format (version 4), and Alertmanager's own API format.

Any integration written for Alertmanager webhooks reads these unchanged.
Each notification carries one alert, grouped by ``alertname``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import quote

from server.settings import Settings
from server.syntax.times import format_time

#: Alertmanager's "not ended yet": Go's zero time.
ZERO_TIME = "0001-01-01T00:00:00Z"


def fingerprint(labels: dict[str, str]) -> str:
    """16 hex digits identifying an alert by its labels, stable across processes and restarts."""
    text = json.dumps(sorted(labels.items()), separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def external_url(settings: Settings) -> str:
    """Where people reach this server: links in notifications point there."""
    return settings.external_url or f"http://{settings.host}:{settings.port}"


def generator_url(external_url: str, rule: str) -> str:
    return f"{external_url.rstrip('/')}/alerts?rule={quote(rule)}"


def alert_json(
    status: str,
    labels: dict[str, str],
    annotations: dict[str, str],
    starts_ns: int,
    ends_ns: int | None,
    url: str,
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": labels,
        "annotations": annotations,
        "startsAt": format_time(starts_ns),
        "endsAt": format_time(ends_ns) if ends_ns is not None else ZERO_TIME,
        "generatorURL": url,
        "fingerprint": fingerprint(labels),
    }


def webhook_body(receiver: str, alert: dict[str, Any], external_url: str) -> dict[str, Any]:
    rule = alert["labels"].get("alertname", "")
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{rule}"}}',
        "truncatedAlerts": 0,
        "status": alert["status"],
        "receiver": receiver,
        "groupLabels": {"alertname": rule},
        "commonLabels": dict(alert["labels"]),
        "commonAnnotations": dict(alert["annotations"]),
        "externalURL": external_url,
        "alerts": [alert],
    }


def alertmanager_body(alert: dict[str, Any], valid_until_ns: int | None = None) -> list[dict[str, Any]]:
    """``POST /api/v2/alerts``: a list of postable alerts; a resolved one carries its endsAt.

    A firing alert may carry ``valid_until_ns`` as its endsAt, as Prometheus
    does: Alertmanager then keeps it firing until then, and the periodic
    re-send moves it on (see :func:`server.alerts.notify.resend_to_alertmanager`).
    """
    item: dict[str, Any] = {
        "labels": alert["labels"],
        "annotations": alert["annotations"],
        "startsAt": alert["startsAt"],
        "generatorURL": alert["generatorURL"],
    }
    if alert["status"] == "resolved":
        item["endsAt"] = alert["endsAt"]
    elif valid_until_ns is not None:
        item["endsAt"] = format_time(valid_until_ns)
    return [item]
