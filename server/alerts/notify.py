"""Sending the outbox: webhooks and Alertmanager, retried with capped exponential backoff, never blocking.

Each due notification is sent by its own task under ``notify_timeout``, so a
receiver that hangs or answers 500 delays only its own messages; the
evaluator runs in another job and never waits for a send. A failed try is
retried after ``notify_backoff_initial * 2**(tries - 1)`` seconds (at most
``notify_backoff_max``), and given up after ``notify_max_attempts`` tries.

Delivery is at least once: a notification is marked sent after the receiver
answered 2xx, so a crash between the answer and the mark sends it again. A
claimed notification is leased for the request's timeout plus a margin; a
process that dies mid-send loses the lease, and another picks it up.

Webhooks and Alertmanager are URLs users typed, so they are posted to the way
scrapes are fetched: through :class:`server.network.guard.GuardedTransport`, which
resolves the name, checks every address against the network policy and
connects to the address it checked; no proxy from the environment
(``HTTP_PROXY`` would choose the address instead), only the one configured
in ``STACKYARD_NOTIFY_PROXY``; no redirects. A reply is never read: only its
status line is kept (in the outbox and the logs), so a receiver cannot fill
either with its body.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any

import httpx

from server.alerts.payload import alert_json, alertmanager_body, external_url, generator_url
from server.network.guard import AddressRefused, GuardedTransport
from server.network.redact import redact_credentials
from server.settings import Settings
from server.store.alerting import Notification
from server.store.repository import Store

log = logging.getLogger(__name__)

BATCH = 100
LEASE_MARGIN_S = 5.0
#: The longest reason phrase kept from a reply's status line.
MAX_REASON = 60


def backoff_s(settings: Settings, attempts: int) -> float:
    """Wait after the ``attempts``-th failed try."""
    return float(min(settings.notify_backoff_max, settings.notify_backoff_initial * 2 ** max(0, attempts - 1)))


def notify_transport(settings: Settings) -> httpx.AsyncBaseTransport:
    """The guarded network path, or the configured proxy (then the proxy chooses the address, and is trusted to)."""
    if settings.notify_proxy:
        return httpx.AsyncHTTPTransport(proxy=settings.notify_proxy, trust_env=False)
    return GuardedTransport(settings.network_policy(), ssl.create_default_context())


def status_line(response: httpx.Response) -> str:
    """``HTTP 500 Internal Server Error``: all that is kept of a reply (the reason phrase cut short, printable)."""
    reason = "".join(ch for ch in response.reason_phrase[:MAX_REASON] if ch.isprintable())
    return f"HTTP {response.status_code} {reason}".rstrip()


def failure(exc: Exception) -> str:
    """One line about a failed request that says nothing the receiver sent.

    Connection failures and timeouts are described by this side; a protocol
    error may quote the reply, so only its type is kept.
    """
    if isinstance(exc, AddressRefused):
        return str(exc)
    if isinstance(exc, httpx.ConnectError | httpx.TimeoutException) and str(exc):
        return redact_credentials(f"{type(exc).__name__}: {str(exc)[:200]}")
    return type(exc).__name__


class Dispatcher:
    """``transport`` replaces the network path (tests of protocol handling); by default it is guarded."""

    def __init__(self, store: Store, settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._store = store
        self._settings = settings
        self._client = httpx.AsyncClient(
            timeout=settings.notify_timeout,
            transport=transport or notify_transport(settings),
            follow_redirects=False,
            trust_env=False,
        )
        self._in_flight: dict[int, asyncio.Task[None]] = {}

    async def run_once(self) -> int:
        """Start sending every due notification; returns how many were started."""
        now = time.time_ns()
        lease_ns = int((self._settings.notify_timeout + LEASE_MARGIN_S) * 1e9)
        due = await asyncio.to_thread(self._store.alerts.claim_due, now, lease_ns, BATCH)
        started = 0
        for notification in due:
            if notification.id in self._in_flight:
                continue
            task = asyncio.create_task(self._deliver(notification))
            self._in_flight[notification.id] = task
            task.add_done_callback(self._finished(notification.id))
            started += 1
        return started

    def _finished(self, key: int) -> Callable[[asyncio.Task[None]], None]:
        def forget(_task: asyncio.Task[None]) -> None:
            self._in_flight.pop(key, None)

        return forget

    async def drain(self) -> None:
        """Wait for the sends in flight (tests, and a clean shutdown)."""
        while self._in_flight:
            await asyncio.gather(*list(self._in_flight.values()), return_exceptions=True)

    async def resend(self) -> int:
        return await resend_to_alertmanager(self._store, self._settings, self._client)

    async def close(self) -> None:
        for task in list(self._in_flight.values()):
            task.cancel()
        await asyncio.gather(*list(self._in_flight.values()), return_exceptions=True)
        await self._client.aclose()

    async def _deliver(self, notification: Notification) -> None:
        error = ""
        try:
            status, line = await post(self._client, notification.url, notification.body)
            if 200 <= status < 300:
                await asyncio.to_thread(self._store.alerts.delivered, notification.id, time.time_ns())
                log.info(
                    "notification sent",
                    extra={
                        "receiver": notification.receiver,
                        "rule": notification.rule,
                        "status": notification.status,
                        "attempt": notification.attempts + 1,
                    },
                )
                return
            error = line
        except (httpx.HTTPError, AddressRefused) as exc:
            error = failure(exc)
        attempts = notification.attempts + 1
        give_up = attempts >= self._settings.notify_max_attempts
        next_ns = None if give_up else time.time_ns() + int(backoff_s(self._settings, attempts) * 1e9)
        await asyncio.to_thread(self._store.alerts.failed_attempt, notification.id, error, next_ns)
        log.warning(
            "notification failed" if not give_up else "notification given up",
            extra={
                "receiver": notification.receiver,
                "rule": notification.rule,
                "status": notification.status,
                "attempt": attempts,
                "error": error,
            },
        )


async def resend_to_alertmanager(store: Store, settings: Settings, client: httpx.AsyncClient) -> int:
    """Post every firing alert to Alertmanager again; returns how many.

    Alertmanager forgets an alert nobody repeats (``resolve_timeout``), so
    like Prometheus we re-send firing alerts every
    ``alertmanager_resend_interval`` with an endsAt four intervals ahead.
    This is not a notification: Alertmanager deduplicates, and a failure here
    is only logged, since the next re-send comes soon.
    """
    if not settings.alertmanager_url:
        return 0
    base = external_url(settings)
    now = time.time_ns()
    valid_until = now + int(4 * settings.alertmanager_resend_interval * 1e9)
    body: list[dict[str, object]] = []
    for record in await asyncio.to_thread(store.alerts.states):
        if record.state != "firing":
            continue
        starts = record.active_ns if record.active_ns is not None else now
        alert = alert_json("firing", record.labels, record.annotations, starts, None, generator_url(base, record.rule))
        body.extend(alertmanager_body(alert, valid_until))
    if not body:
        return 0
    url = settings.alertmanager_url.rstrip("/") + "/api/v2/alerts"
    try:
        status, line = await post(client, url, body)
        if status >= 300:
            log.warning("alertmanager re-send refused", extra={"status": line, "alerts": len(body)})
    except (httpx.HTTPError, AddressRefused) as exc:
        log.warning("alertmanager re-send failed", extra={"error": failure(exc)})
    return len(body)


async def post(client: httpx.AsyncClient, url: str, body: Any) -> tuple[int, str]:
    """POST ``body`` as JSON; the reply's status and status line. Its body is never read."""
    async with client.stream("POST", url, json=body) as response:
        return response.status_code, status_line(response)
