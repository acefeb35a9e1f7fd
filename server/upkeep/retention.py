"""Retention: raw profiles, hourly and daily rollups and goroutine dumps, each kept for their own period.

Data goes in whole partition intervals (``STACKYARD_PARTITION_INTERVAL``, a
day by default), on both databases alike: what is older than its retention
goes once the whole interval it falls in is (:func:`server.store.partitions.cutoff`).
On PostgreSQL that is a dropped partition, which leaves nothing for vacuum to
clean up; SQLite deletes the same rows in bounded batches, so every
transaction stays short. Rows no longer referenced by anything (functions,
stack nodes, sample keys, label sets) are collected afterwards.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import delete, select

from server.settings import Settings
from server.store.gc import collect_garbage
from server.store.models import ProfileBlob, ProfileRow, Rollup, RollupBlob
from server.store.partitions import DAILY, DAILY_SPAN, HOURLY, RAW, Family, cutoff, drop_before, is_partitioned
from server.store.repository import Store
from server.store.rollups import DAY_S, HOUR_S
from server.syntax.times import parse_duration_ns

log = logging.getLogger(__name__)
BATCH = 5000


def _delete_batches(store: Store, lead: Any, blobs: Any, lead_key: Any, blob_key: Any, condition: Any) -> int:
    """Delete lead rows matching ``condition`` with their blobs (``blob_key`` names their lead's id), in batches."""
    total = 0
    while True:
        with store.engine.begin() as conn:
            ids = conn.execute(select(lead_key).where(condition).limit(BATCH)).scalars().all()
            if not ids:
                return total
            conn.execute(delete(blobs).where(blob_key.in_(ids)))
            conn.execute(delete(lead).where(lead_key.in_(ids)))
        total += len(ids)


def _expire(store: Store, family: Family, before_ns: int) -> int:
    with store.engine.begin() as conn:
        if is_partitioned(conn):
            return drop_before(conn, family, before_ns)
    if family is RAW:
        return _delete_batches(
            store, ProfileRow, ProfileBlob, ProfileRow.id, ProfileBlob.profile_id, ProfileRow.time_ns < before_ns
        )
    width = HOUR_S if family is HOURLY else DAY_S
    return _delete_batches(
        store,
        Rollup,
        RollupBlob,
        Rollup.id,
        RollupBlob.rollup_id,
        (Rollup.width_s == width) & (Rollup.bucket_ns < before_ns),
    )


def cutoffs(settings: Settings, now_ns: int) -> dict[str, int]:
    """Where each kind of data ends being kept: older rows go (see the module's docstring)."""
    interval = parse_duration_ns(settings.partition_interval)
    raw = cutoff(now_ns, parse_duration_ns(settings.retention_raw), interval)
    return {
        "raw": raw,
        "hourly": cutoff(now_ns, parse_duration_ns(settings.retention_hourly), interval),
        "daily": cutoff(now_ns, parse_duration_ns(settings.retention_daily), interval, DAILY_SPAN),
        "goroutine_dumps": raw,
    }


def apply_retention(
    store: Store, settings: Settings, now_ns: int | None = None, collect: bool = True
) -> dict[str, int]:
    now = time.time_ns() if now_ns is None else now_ns
    before = cutoffs(settings, now)
    deleted = {
        "raw": _expire(store, RAW, before["raw"]),
        "hourly": _expire(store, HOURLY, before["hourly"]),
        "daily": _expire(store, DAILY, before["daily"]),
    }
    # Goroutine dumps follow raw retention; their stacks are collected when dumps went.
    deleted["goroutine_dumps"] = store.goroutines.delete_before(before["goroutine_dumps"])
    if collect and deleted["goroutine_dumps"]:
        deleted["goroutine_stacks"] = store.goroutines.collect_stacks()
    if collect and any(deleted.values()):
        deleted.update(collect_garbage(store))
    if any(deleted.values()):
        log.info("retention applied", extra=deleted)
    return deleted
