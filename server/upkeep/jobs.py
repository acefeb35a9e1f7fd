"""Background upkeep of the store: rollups after each hour and day closes (and after late data), time
partitions ahead of need (PostgreSQL), retention.

Runs on APScheduler inside the server's event loop; the work itself runs in
a worker thread, so queries and ingest are never blocked by it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from server.settings import Settings
from server.store.availability import log_failure
from server.store.partitions import ensure
from server.store.repository import Store
from server.store.rollups import DAY_S, HOUR_S, NS, bucket_of
from server.syntax.times import parse_duration_ns
from server.upkeep.retention import apply_retention

log = logging.getLogger(__name__)


#: A bucket counts as closed this long after its end, so a profile of its last seconds still in flight
#: (scraped before the hour turned, committed just after) lands before the rollup is built.
CLOSE_GRACE_NS = 120 * NS


def build_rollups(store: Store, now_ns: int | None = None) -> dict[str, int]:
    """Build every missing rollup of a closed bucket: hours from raw profiles, then days from hours.

    Each run scans only raw profiles newer than the last run's watermark;
    late data behind it marks its hour dirty at ingest, so this is also the
    back-fill. A build deferred by a concurrent writer keeps the watermark
    where it was, so the next run tries it again.
    """
    now = (time.time_ns() - CLOSE_GRACE_NS) if now_ns is None else now_ns
    closed_hour, closed_day = bucket_of(now, HOUR_S), bucket_of(now, DAY_S)
    written = {"hourly": 0, "daily": 0, "deferred": 0}
    scan = store.rollups.pending_hours(closed_hour)
    for series_id, bucket in scan.pairs:
        _count(written, "hourly", store.rollups.try_build(series_id, HOUR_S, bucket))
    # A day is rolled from its hours, so only once every hour of it is (its last hour has closed).
    for series_id, bucket in store.rollups.pending_days(closed_day, scan):
        _count(written, "daily", store.rollups.try_build(series_id, DAY_S, bucket))
    if not written["deferred"]:  # else the next run scans the same range again
        store.rollups.finish_scan(scan, closed_hour)
    if written["hourly"] or written["daily"] or written["deferred"]:
        log.info("rollups built", extra=written)
    return written


def maintain_partitions(store: Store, settings: Settings, now_ns: int | None = None) -> list[str]:
    """PostgreSQL: the partitions of the current interval and the next ones, created before data needs them."""
    now = time.time_ns() if now_ns is None else now_ns
    return ensure(store.engine, parse_duration_ns(settings.partition_interval), now, settings.partitions_ahead)


def _count(written: dict[str, int], width: str, built: int | None) -> None:
    if built is None:
        written["deferred"] += 1
    else:
        written[width] += built


class Maintenance:
    """The upkeep jobs on their own APScheduler; ``ready`` tells them whether the database is there yet.

    ``leading`` says whether this replica is the one that runs them (it holds the upkeep lease; always,
    alone on SQLite): the others skip every run, so the work is done once, not once per replica.
    """

    def __init__(
        self,
        store: Store,
        settings: Settings,
        ready: Callable[[], bool] = lambda: True,
        leading: Callable[[], bool] = lambda: True,
    ) -> None:
        self._store = store
        self._settings = settings
        self._ready = ready
        self._leading = leading
        self._scheduler: AsyncIOScheduler | None = None

    async def start(self) -> None:
        self._scheduler = AsyncIOScheduler(job_defaults={"coalesce": True, "max_instances": 1})
        self._scheduler.add_job(self._rollups, "interval", seconds=self._settings.rollup_interval)
        self._scheduler.add_job(self._retention, "interval", seconds=self._settings.retention_interval)
        self._scheduler.start()
        asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self._rollups()))
        asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self._partitions()))

    async def _rollups(self) -> None:
        if not self._ready() or not self._leading():
            return  # not migrated yet, or another replica leads: the next run asks again
        try:
            await asyncio.to_thread(build_rollups, self._store)
        except Exception as exc:  # upkeep must never take the server down; the next run retries
            log_failure(log, "rollup job failed", exc)

    async def _retention(self) -> None:
        if not self._ready() or not self._leading():
            return
        try:
            await asyncio.to_thread(maintain_partitions, self._store, self._settings)
        except Exception as exc:  # likewise; retention goes on without new partitions (the default one takes rows)
            log_failure(log, "partition job failed", exc)
        try:
            await asyncio.to_thread(apply_retention, self._store, self._settings)
        except Exception as exc:  # likewise
            log_failure(log, "retention job failed", exc)

    async def _partitions(self) -> None:
        if not self._ready():
            return
        try:
            await asyncio.to_thread(maintain_partitions, self._store, self._settings)
        except Exception as exc:  # likewise
            log_failure(log, "partition job failed", exc)

    async def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
