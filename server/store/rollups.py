"""Hourly and daily rollups: what is pending, building one, invalidating on late data, reading them back.

Hourly rollups merge a series' raw profiles of one hour; daily ones merge
its hourly rollups of one day. One row per (series, width, bucket, shape),
its blob in the same sample-key format as a profile's, so queries treat a
rollup as one more (heavier) profile.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, and_, delete, or_, select, text
from sqlalchemy.exc import OperationalError

from server.store import blob
from server.store.database import chunks, insert_ignoring_conflicts
from server.store.models import ProfileBlob, ProfileRow, Rollup
from server.store.profiles import ProfileMeta, ProfileTable

log = logging.getLogger(__name__)

HOUR_S = 3600
DAY_S = 86400
NS = 1_000_000_000


def bucket_of(time_ns: int, width_s: int) -> int:
    return time_ns - time_ns % (width_s * NS)


def lock_series(conn: Connection, series_id: int) -> None:
    """Serialise rollup builds and late-data invalidation per series (PostgreSQL; SQLite writers already are)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": 7_300_000_000 + series_id})


def invalidate(conn: Connection, series_id: int, time_ns: int) -> None:
    """A profile arrived for a bucket that may be rolled up already: drop its hour's and day's rollups."""
    lock_series(conn, series_id)
    conn.execute(
        delete(Rollup).where(
            Rollup.series_id == series_id,
            or_(
                and_(Rollup.width_s == HOUR_S, Rollup.bucket_ns == bucket_of(time_ns, HOUR_S)),
                and_(Rollup.width_s == DAY_S, Rollup.bucket_ns == bucket_of(time_ns, DAY_S)),
            ),
        )
    )


_COLUMNS = (
    Rollup.id,
    Rollup.series_id,
    Rollup.shape_id,
    Rollup.bucket_ns,
    Rollup.duration_ns,
    Rollup.period,
    Rollup.samples,
    Rollup.totals,
    Rollup.profiles,
    Rollup.width_s,
    Rollup.max_totals,
)


class RollupTable:
    def __init__(self, engine: Engine, profiles: ProfileTable) -> None:
        self._engine = engine
        self._profiles = profiles

    def pending(self, width_s: int, closed_before_ns: int, since_ns: int = 0) -> list[tuple[int, int]]:
        """(series, bucket) pairs with data in closed buckets but no rollup of this width yet."""
        width = width_s * NS
        if width_s == HOUR_S:
            source = select(ProfileRow.series_id, ProfileRow.time_ns - ProfileRow.time_ns % width).where(
                ProfileRow.time_ns < closed_before_ns, ProfileRow.time_ns >= since_ns
            )
        else:
            source = select(Rollup.series_id, Rollup.bucket_ns - Rollup.bucket_ns % width).where(
                Rollup.width_s == HOUR_S, Rollup.bucket_ns < closed_before_ns, Rollup.bucket_ns >= since_ns
            )
        with self._engine.connect() as conn:
            candidates = {(int(s), int(b)) for s, b in conn.execute(source.distinct())}
            done = {
                (int(s), int(b))
                for s, b in conn.execute(
                    select(Rollup.series_id, Rollup.bucket_ns).where(Rollup.width_s == width_s).distinct()
                )
            }
        return sorted(candidates - done, key=lambda pair: (pair[1], pair[0]))

    def build(self, series_id: int, width_s: int, bucket_ns: int) -> int:
        """Merge one bucket into rollup rows (one per shape); returns how many were written.

        Reading the inputs and writing the rollup happen in one transaction, so
        a late profile cannot slip in between (SQLite refuses the write on a
        stale snapshot; PostgreSQL waits on the series lock).
        """
        end_ns = bucket_ns + width_s * NS
        try:
            with self._engine.begin() as conn:
                lock_series(conn, series_id)
                parts = self._inputs(conn, series_id, width_s, bucket_ns, end_ns)
                rows = [self._merge(series_id, width_s, bucket_ns, group) for group in _by_shape(parts).values()]
                insert_ignoring_conflicts(conn, Rollup.__table__, rows)  # type: ignore[arg-type]
        except OperationalError as exc:
            # Only contention is expected here (another writer won the race); anything else is a real fault.
            if not any(word in str(exc.orig).lower() for word in ("locked", "busy", "serializ", "deadlock")):
                raise
            log.info("rollup deferred", extra={"series_id": series_id, "bucket_ns": bucket_ns, "error": str(exc.orig)})
            return 0
        return len(rows)

    def _inputs(
        self, conn: Connection, series_id: int, width_s: int, bucket_ns: int, end_ns: int
    ) -> list[tuple[ProfileMeta, bytes]]:
        if width_s == HOUR_S:
            query = (
                select(*ProfileTable.COLUMNS, ProfileBlob.data)
                .join(ProfileBlob, ProfileBlob.profile_id == ProfileRow.id)
                .where(ProfileRow.series_id == series_id, ProfileRow.time_ns >= bucket_ns, ProfileRow.time_ns < end_ns)
            )
            return [(self._profiles.meta(row[:8]), bytes(row[8])) for row in conn.execute(query)]
        hourly = select(*_COLUMNS, Rollup.data).where(
            Rollup.series_id == series_id,
            Rollup.width_s == HOUR_S,
            Rollup.bucket_ns >= bucket_ns,
            Rollup.bucket_ns < end_ns,
        )
        return [(self._meta(tuple(row)[:11]), bytes(tuple(row)[11])) for row in conn.execute(hourly)]

    def _merge(
        self, series_id: int, width_s: int, bucket_ns: int, parts: list[tuple[ProfileMeta, bytes]]
    ) -> dict[str, Any]:
        decoded = [blob.decode(data) for _, data in parts]
        merged = blob.aggregate(np.concatenate([d.keys for d in decoded]), np.concatenate([d.values for d in decoded]))
        metas = [meta for meta, _ in parts]
        return {
            "series_id": series_id,
            "width_s": width_s,
            "bucket_ns": bucket_ns,
            "shape_id": metas[0].shape_id,
            "profiles": sum(m.profiles for m in metas),
            "duration_ns": sum(m.duration_ns for m in metas),
            "period": max(m.period for m in metas),
            "samples": len(merged),
            "totals": [int(v) for v in np.sum([m.totals for m in metas], axis=0)],
            "max_totals": [int(v) for v in np.max([m.max_totals or m.totals for m in metas], axis=0)],
            "data": blob.encode(merged),
        }

    def _meta(self, row: Sequence[Any]) -> ProfileMeta:
        rid, sid, shape_id, bucket, duration, period, samples, totals, profiles, width, max_totals = row
        meta = self._profiles.meta(
            (rid, sid, shape_id, bucket, duration, period, samples, totals), int(profiles), int(width)
        )
        return replace(meta, max_totals=[int(v) for v in max_totals])

    def list(
        self, series_ids: Sequence[int], width_s: int, first_bucket_ns: int, last_bucket_ns: int
    ) -> list[ProfileMeta]:
        """Rollups of this width with ``first <= bucket <= last``."""
        found: list[ProfileMeta] = []
        with self._engine.connect() as conn:
            for part in chunks(list(series_ids), 500):
                query = select(*_COLUMNS).where(
                    Rollup.series_id.in_(part),
                    Rollup.width_s == width_s,
                    Rollup.bucket_ns >= first_bucket_ns,
                    Rollup.bucket_ns <= last_bucket_ns,
                )
                found.extend(self._meta(row) for row in conn.execute(query))
        return found

    def blobs(self, rollup_ids: Sequence[int]) -> dict[int, bytes]:
        found: dict[int, bytes] = {}
        with self._engine.connect() as conn:
            for part in chunks(list(rollup_ids), 500):
                query = select(Rollup.id, Rollup.data).where(Rollup.id.in_(part))
                found.update({int(rid): bytes(data) for rid, data in conn.execute(query)})
        return found


def _by_shape(parts: list[tuple[ProfileMeta, bytes]]) -> dict[int, list[tuple[ProfileMeta, bytes]]]:
    groups: dict[int, list[tuple[ProfileMeta, bytes]]] = {}
    for meta, data in parts:
        groups.setdefault(meta.shape_id, []).append((meta, data))
    return groups
