"""Retention: raw profiles, hourly and daily rollups each kept for their own period, deleted in bounded batches.

Deleting in batches keeps every transaction short, so ingest and queries go
on while a month of data expires. Rows no longer referenced by anything
(functions, stack nodes, sample keys, label sets) are collected afterwards.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import delete, select

from server.settings import Settings
from server.store.gc import collect_garbage
from server.store.models import ProfileRow, Rollup
from server.store.repository import Store
from server.store.rollups import DAY_S, HOUR_S, NS
from server.syntax.times import parse_duration_ns

log = logging.getLogger(__name__)
BATCH = 5000


def _delete_batches(store: Store, table: type[ProfileRow] | type[Rollup], condition: object) -> int:
    total = 0
    while True:
        with store.engine.begin() as conn:
            ids = conn.execute(select(table.id).where(condition).limit(BATCH)).scalars().all()  # type: ignore[arg-type]
            if not ids:
                return total
            conn.execute(delete(table).where(table.id.in_(ids)))
        total += len(ids)


def apply_retention(
    store: Store, settings: Settings, now_ns: int | None = None, collect: bool = True
) -> dict[str, int]:
    now = time.time_ns() if now_ns is None else now_ns
    deleted = {
        "raw": _delete_batches(store, ProfileRow, ProfileRow.time_ns < now - parse_duration_ns(settings.retention_raw)),
        "hourly": _delete_batches(
            store,
            Rollup,
            (Rollup.width_s == HOUR_S)
            & (Rollup.bucket_ns + HOUR_S * NS <= now - parse_duration_ns(settings.retention_hourly)),
        ),
        "daily": _delete_batches(
            store,
            Rollup,
            (Rollup.width_s == DAY_S)
            & (Rollup.bucket_ns + DAY_S * NS <= now - parse_duration_ns(settings.retention_daily)),
        ),
    }
    # Goroutine dumps follow raw retention; their stacks are collected when dumps went.
    deleted["goroutine_dumps"] = store.goroutines.delete_before(now - parse_duration_ns(settings.retention_raw))
    if collect and deleted["goroutine_dumps"]:
        deleted["goroutine_stacks"] = store.goroutines.collect_stacks()
    if collect and any(deleted.values()):
        deleted.update(collect_garbage(store))
    if any(deleted.values()):
        log.info("retention applied", extra=deleted)
    return deleted
