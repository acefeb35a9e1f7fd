"""The scraper as the API sees it on a replica: its own targets' health from memory, the others' from the database.

Each replica keeps the health of the targets it scrapes in memory. Every
``interval`` it publishes what changed (up, error, failures) to the
``scrape_health`` table, and everything once a minute (so last-scrape times
stay fresh without a write per scrape), then reads what the others published.
``GET /api/v1/targets`` and the Fleet page then show every target's health on
every replica: a target of another replica's share with health at most a
minute old (state changes within one interval).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

from collector.manager import ScrapeManager
from server.scrape.protocol import ScrapeHealth
from server.scrape.rendezvous import owner
from server.scrape.spec import TargetSpec
from server.store.availability import log_failure
from server.store.scrapehealth import ScrapeHealthTable, key_hash

log = logging.getLogger(__name__)

#: Everything of this replica's share is published this often, changed or not (last-scrape times).
REFRESH_S = 60.0
#: Rows are read back from this far before the last read: a publication committed late is not missed.
READ_OVERLAP_NS = 30 * 1_000_000_000

_State = tuple[bool | None, str | None, int, bool]


def _state(health: ScrapeHealth) -> _State:
    return (health.up, health.last_error, health.consecutive_failures, health.not_served)


def _as_json(health: ScrapeHealth) -> dict[str, Any]:
    body = dataclasses.asdict(health)
    del body["next_scrape_ns"]  # the scraping replica's schedule; the others do not show it
    return body


class SharedHealth:
    def __init__(
        self,
        manager: ScrapeManager,
        table: ScrapeHealthTable,
        member_id: str,
        interval_s: float,
        ready: Callable[[], bool] = lambda: True,
        members: Callable[[], tuple[str, ...]] = tuple,
    ) -> None:
        """``members``: the live replicas this one sees (its membership's last heartbeat), for :meth:`owner`."""
        self._manager = manager
        self._members = members
        self._table = table
        self._member = member_id
        self._interval_s = interval_s
        self._ready = ready
        self._published: dict[tuple[str, str], _State] = {}
        self._refreshed = float("-inf")
        self._read_ns = 0
        self._others: dict[tuple[int, str], ScrapeHealth] = {}
        self._task: asyncio.Task[None] | None = None

    # -- the Scraper protocol ------------------------------------------------------

    def health(self, target: TargetSpec) -> list[ScrapeHealth]:
        own = self._manager.health(target)
        if own:
            return own
        hashed = key_hash(target.key)
        found = (self._others.get((hashed, spec.kind)) for spec in target.enabled_profiles())
        return [health for health in found if health is not None]

    def targets_changed(self) -> None:
        self._manager.targets_changed()

    async def capture_trace(self, target: TargetSpec, seconds: float) -> bytes:
        return await self._manager.capture_trace(target, seconds)

    def static_targets(self) -> list[TargetSpec]:
        return self._manager.static_targets()

    def owner(self, target: TargetSpec) -> str | None:
        """The member id of the replica whose share ``target`` is, by the rendezvous the scrapers use.

        None when nobody scrapes it (paused), with one replica alone, or while
        this one sees no members (its heartbeat is out of date: it cannot tell).
        """
        members = self._members()
        if target.paused or len(members) < 2:
            return None
        return owner(target.key, members)

    # -- publishing and reading ------------------------------------------------------

    async def exchange(self) -> None:
        """Publish this replica's changed health and read the others'; one round."""
        snapshot = self._manager.scraped_health()  # in the event loop, where the scraper changes it
        full = time.monotonic() - self._refreshed >= REFRESH_S
        changed = [
            (key, health.kind, _as_json(health))
            for key, health in snapshot
            if full or self._published.get((key, health.kind)) != _state(health)
        ]
        since = max(0, self._read_ns - READ_OVERLAP_NS) if not full else 0
        read_ns, rows = await asyncio.to_thread(self._publish_and_read, changed, since)
        self._published = {(key, health.kind): _state(health) for key, health in snapshot}
        if full:
            self._refreshed = time.monotonic()
        others = {} if full else dict(self._others)
        for where, (member, body) in rows.items():
            if member != self._member:
                others[where] = ScrapeHealth(**body)
            else:
                others.pop(where, None)
        self._others = others
        self._read_ns = read_ns

    def _publish_and_read(
        self, changed: list[tuple[str, str, dict[str, Any]]], since_ns: int
    ) -> tuple[int, dict[tuple[int, str], tuple[str, dict[str, Any]]]]:
        self._table.publish(self._member, changed)
        return self._table.read(since_ns)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            if not self._ready():
                continue
            try:
                await self.exchange()
            except Exception as exc:  # the database is away: the health shown waits, scraping does not
                log_failure(log, "sharing scrape health failed", exc)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="shared-health")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
