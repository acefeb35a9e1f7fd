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
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import httpx

from server.alerts.payload import alert_json, alertmanager_body, external_url, generator_url
from server.settings import Settings
from server.store.alerting import Notification
from server.store.repository import Store

log = logging.getLogger(__name__)

BATCH = 100
LEASE_MARGIN_S = 5.0


def backoff_s(settings: Settings, attempts: int) -> float:
    """Wait after the ``attempts``-th failed try."""
    return float(min(settings.notify_backoff_max, settings.notify_backoff_initial * 2 ** max(0, attempts - 1)))


class Dispatcher:
    def __init__(self, store: Store, settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._store = store
        self._settings = settings
        self._client = httpx.AsyncClient(timeout=settings.notify_timeout, transport=transport, follow_redirects=False)
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
            response = await self._client.post(notification.url, json=notification.body)
            if 200 <= response.status_code < 300:
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
            error = f"HTTP {response.status_code}: {response.text[:200]}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
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
        response = await client.post(url, json=body)
        if response.status_code >= 300:
            log.warning("alertmanager re-send refused", extra={"status": response.status_code, "alerts": len(body)})
    except httpx.HTTPError as exc:
        log.warning("alertmanager re-send failed", extra={"error": f"{type(exc).__name__}: {exc}"})
    return len(body)
