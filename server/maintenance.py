"""Background upkeep of the store: rollups after each hour and day closes (and after late data), retention.

Runs on APScheduler inside the server's event loop; the work itself runs in
a worker thread, so queries and ingest are never blocked by it.
"""

from __future__ import annotations

import asyncio
import logging
import time

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from server.retention import apply_retention
from server.settings import Settings
from server.store.repository import Store
from server.store.rollups import DAY_S, HOUR_S, bucket_of

log = logging.getLogger(__name__)


def build_rollups(store: Store, now_ns: int | None = None) -> dict[str, int]:
    """Build every missing rollup of a closed bucket: hours from raw profiles, then days from hours.

    Late data deletes the rollups it lands in, so this is also the back-fill.
    """
    now = time.time_ns() if now_ns is None else now_ns
    written = {"hourly": 0, "daily": 0}
    for series_id, bucket in store.rollups.pending(HOUR_S, bucket_of(now, HOUR_S)):
        written["hourly"] += store.rollups.build(series_id, HOUR_S, bucket)
    # A day is rolled from its hours, so only once every hour of it is (its last hour has closed).
    for series_id, bucket in store.rollups.pending(DAY_S, bucket_of(now, DAY_S)):
        written["daily"] += store.rollups.build(series_id, DAY_S, bucket)
    if written["hourly"] or written["daily"]:
        log.info("rollups built", extra=written)
    return written


class Maintenance:
    def __init__(self, store: Store, settings: Settings) -> None:
        self._store = store
        self._settings = settings
        self._scheduler: AsyncIOScheduler | None = None

    async def start(self) -> None:
        self._scheduler = AsyncIOScheduler(job_defaults={"coalesce": True, "max_instances": 1})
        self._scheduler.add_job(self._rollups, "interval", seconds=self._settings.rollup_interval)
        self._scheduler.add_job(self._retention, "interval", seconds=self._settings.retention_interval)
        self._scheduler.start()
        asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self._rollups()))

    async def _rollups(self) -> None:
        try:
            await asyncio.to_thread(build_rollups, self._store)
        except Exception:  # upkeep must never take the server down; the next run retries
            log.exception("rollup job failed")

    async def _retention(self) -> None:
        try:
            await asyncio.to_thread(apply_retention, self._store, self._settings)
        except Exception:  # likewise
            log.exception("retention job failed")

    async def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
