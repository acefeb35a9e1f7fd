"""Hourly and daily rollups: what is pending, building one, invalidating on late data, reading them back.

Hourly rollups merge a series' raw profiles of one hour; daily ones merge
its hourly rollups of one day. One row per (series, width, bucket, shape),
its blob in the same sample-key format as a profile's, so queries treat a
rollup as one more (heavier) profile. The blob also carries the same values
summed per stack leaf node (:func:`server.store.blob.encode` with ``nodes``):
what a flame graph or top table over a long range needs, without resolving
every sample key of the range to its node first.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Engine, and_, bindparam, delete, insert, or_, select, text, update
from sqlalchemy.exc import OperationalError

from server.errors import Renumbered
from server.pprof.checked import SATURATED, clamp
from server.store import blob
from server.store.cachemarks import CacheMarks
from server.store.database import SqliteStatement, chunks, insert_returning
from server.store.models import ProfileBlob, ProfileRow, Rollup, RollupBlob, RollupDirty, StoreState
from server.store.profiles import ProfileMeta, ProfileTable
from server.store.samples import aggregate_saturating
from server.store.state import lock_against_gc

IntArray = npt.NDArray[np.int64]
#: Sample key ids to their stack leaf nodes (the store's cache of ``sample_keys``).
LeafNodes = Callable[[IntArray], IntArray]
#: The store's current caches, as a build needs them: its keys' leaf nodes, and the marks they were read under.
NodeCaches = Callable[[], tuple[LeafNodes, CacheMarks]]

log = logging.getLogger(__name__)
#: ``store_state`` key: raw profiles before this time have been scanned for rollups (late ones are dirty rows).
SCAN_KEY = "rollup_scan_ns"

HOUR_S = 3600
DAY_S = 86400
NS = 1_000_000_000


def bucket_of(time_ns: int, width_s: int) -> int:
    return time_ns - time_ns % (width_s * NS)


@dataclass(frozen=True)
class HourScan:
    """One run's view of what needs rolling up: pairs to build, the dirty rows it answers, where it scanned from."""

    pairs: list[tuple[int, int]]
    dirty_ids: list[int]
    late_days: set[tuple[int, int]]
    since_ns: int


def lock_series(conn: Connection, series_id: int) -> None:
    """Serialise rollup builds and late-data invalidation per series (PostgreSQL; SQLite writers already are)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": 7_300_000_000 + series_id})


#: Built once: every late profile's transaction runs it (the hour's and the day's rollups in one statement): a
#: back-fill, a push of old profiles. On SQLite without SQLAlchemy's per-statement work (database.SqliteStatement).
_DROP_ROLLUPS = SqliteStatement(
    delete(Rollup)
    .where(
        Rollup.series_id == bindparam("series"),
        or_(
            and_(Rollup.width_s == HOUR_S, Rollup.bucket_ns == bindparam("hour")),
            and_(Rollup.width_s == DAY_S, Rollup.bucket_ns == bindparam("day")),
        ),
    )
    .returning(Rollup.id, Rollup.width_s)
)


def invalidate(
    conn: Connection, series_id: int, time_ns: int, marked: Container[tuple[int, int]] = frozenset()
) -> bool:
    """A profile arrived for a bucket that may be rolled up already: drop its hour's and day's rollups.

    The hour is also marked dirty, so the next rollup run rebuilds it even
    though it lies behind the scan watermark; returns whether it was. One mark
    per hour is enough, not one per profile: ``marked`` holds the hours this
    process marked before (committed). Such a mark is still pending when no
    rollup of the hour or day was there to drop, because a run answers a mark
    only by building the hour (under the series lock, after reading the
    profiles: a later profile finds that rollup and marks again) and forgets it
    only when no build was deferred. A back-fill of a past hour, one profile
    after another, then costs one DELETE a profile instead of a new row each.
    """
    lock_series(conn, series_id)
    hour = bucket_of(time_ns, HOUR_S)
    buckets = {HOUR_S: hour, DAY_S: bucket_of(time_ns, DAY_S)}
    # Width and bucket name the partition on PostgreSQL (it prunes to the two the condition names), the series
    # a shard on Citus; the blobs go by hand (no foreign key cascades).
    gone = _DROP_ROLLUPS.run(conn, {"series": series_id, "hour": hour, "day": buckets[DAY_S]}).all()
    dropped = len(gone)
    for width_s, bucket in buckets.items():
        ids = [int(rollup_id) for rollup_id, width in gone if width == width_s]
        if ids:
            conn.execute(
                delete(RollupBlob).where(
                    RollupBlob.series_id == series_id,
                    RollupBlob.width_s == width_s,
                    RollupBlob.bucket_ns == bucket,
                    RollupBlob.rollup_id.in_(ids),
                )
            )
    if dropped or (series_id, hour) not in marked:
        conn.execute(insert(RollupDirty).values(series_id=series_id, bucket_ns=hour))
        return True
    return False


class LateMarks:
    """The (series, hour) pairs this process has marked dirty, for :func:`invalidate` (bounded: forgetting
    costs only a redundant mark)."""

    LIMIT = 100_000

    def __init__(self) -> None:
        self._pairs: set[tuple[int, int]] = set()
        self._lock = threading.Lock()

    def __contains__(self, pair: object) -> bool:
        """Whether ``pair`` was marked (asked of the set itself: a back-fill marks an hour every ~15 profiles, and a
        copy of up to :data:`LIMIT` pairs for every late profile would cost more than its DELETE)."""
        with self._lock:
            return pair in self._pairs

    def add(self, pairs: Iterable[tuple[int, int]]) -> None:
        """Pairs whose marks have committed (a rolled-back mark must not be remembered)."""
        with self._lock:
            if len(self._pairs) > self.LIMIT:
                self._pairs.clear()
            self._pairs.update(pairs)


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
    def __init__(self, engine: Engine, profiles: ProfileTable, caches: NodeCaches) -> None:
        self._engine = engine
        self._profiles = profiles
        self._caches = caches

    def pending_hours(self, closed_before_ns: int) -> HourScan:
        """Closed hours with raw profiles and no hourly rollup: new ones past the watermark, and dirty ones."""
        width = HOUR_S * NS
        with self._engine.connect() as conn:
            since = read_state(conn, SCAN_KEY)
            new = select(ProfileRow.series_id, ProfileRow.time_ns - ProfileRow.time_ns % width).where(
                ProfileRow.time_ns >= since, ProfileRow.time_ns < closed_before_ns
            )
            candidates = {(int(s), int(b)) for s, b in conn.execute(new.distinct())}
            dirty = conn.execute(
                select(RollupDirty.id, RollupDirty.series_id, RollupDirty.bucket_ns).where(
                    RollupDirty.bucket_ns < closed_before_ns
                )
            ).all()
            late = {(int(s), int(b)) for _, s, b in dirty}
            done = _existing(conn, HOUR_S, candidates | late)
        return HourScan(
            pairs=sorted((candidates | late) - done, key=lambda pair: (pair[1], pair[0])),
            dirty_ids=[int(row[0]) for row in dirty],
            late_days={(s, bucket_of(b, DAY_S)) for s, b in late},
            since_ns=since,
        )

    def pending_days(self, closed_before_ns: int, scan: HourScan) -> list[tuple[int, int]]:
        """Closed days with hourly rollups and no daily one, among the days the hour scan could have changed."""
        width = DAY_S * NS
        first_day = bucket_of(scan.since_ns, DAY_S)
        with self._engine.connect() as conn:
            source = select(Rollup.series_id, Rollup.bucket_ns - Rollup.bucket_ns % width).where(
                Rollup.width_s == HOUR_S, Rollup.bucket_ns < closed_before_ns, Rollup.bucket_ns >= first_day
            )
            candidates = {(int(s), int(b)) for s, b in conn.execute(source.distinct())}
            candidates |= {(s, b) for s, b in scan.late_days if b < closed_before_ns}
            done = _existing(conn, DAY_S, candidates)
        return sorted(candidates - done, key=lambda pair: (pair[1], pair[0]))

    def finish_scan(self, scan: HourScan, watermark_ns: int) -> None:
        """Move the watermark and forget the dirty hours this run rebuilt (later ones keep their own rows)."""
        with self._engine.begin() as conn:
            for part in chunks(scan.dirty_ids, 500):
                conn.execute(delete(RollupDirty).where(RollupDirty.id.in_(part)))
            conn.execute(update(StoreState).where(StoreState.key == SCAN_KEY).values(value=watermark_ns))

    def build(self, series_id: int, width_s: int, bucket_ns: int) -> int:
        """Merge one bucket into rollup rows (one per shape); returns how many were written."""
        return max(0, self.try_build(series_id, width_s, bucket_ns) or 0)

    def try_build(self, series_id: int, width_s: int, bucket_ns: int) -> int | None:
        """Like :meth:`build`, but None when another writer held the series and the build must be retried.

        Reading the inputs and writing the rollup happen in one transaction, so
        a late profile cannot slip in between (SQLite refuses the write on a
        stale snapshot; PostgreSQL waits on the series lock). Its node tables come from
        one set of the store's caches, and are written only if the tree has not been renumbered since
        they were filled (checked holding the collection lock, which keeps a renumbering out until commit):
        else None as well, and the store has fresh caches for the retry.
        """
        end_ns = bucket_ns + width_s * NS
        leaf_nodes, marks = self._caches()
        try:
            with self._engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    # The collection lock (shared) before the series lock, in the order writers take them (a late
                    # profile's transaction holds the first when it takes the second): no cycle with a collection.
                    lock_against_gc(conn)
                lock_series(conn, series_id)
                parts = self._inputs(conn, series_id, width_s, bucket_ns, end_ns)
                rows = [
                    self._merge(series_id, width_s, bucket_ns, group, leaf_nodes) for group in _by_shape(parts).values()
                ]
                data = {row["shape_id"]: row.pop("data") for row in rows}
                if conn.dialect.name != "postgresql":
                    lock_against_gc(conn)  # SQLite: the write lock the insert needs anyway, and the latest snapshot
                marks.check(conn)
                written = insert_returning(
                    conn,
                    Rollup.__table__,  # type: ignore[arg-type]
                    rows,
                    (Rollup.id, Rollup.shape_id),
                )
                blobs = [
                    {
                        "rollup_id": int(rid),
                        "width_s": width_s,
                        "bucket_ns": bucket_ns,
                        "series_id": series_id,
                        "data": data[int(shape_id)],
                    }
                    for rid, shape_id in written
                ]
                if blobs:
                    conn.execute(insert(RollupBlob), blobs)
        except Renumbered:
            log.info("rollup deferred", extra={"series_id": series_id, "bucket_ns": bucket_ns, "error": "renumbered"})
            return None
        except OperationalError as exc:
            # Only contention is expected here (another writer won the race); anything else is a real fault.
            if not any(word in str(exc.orig).lower() for word in ("locked", "busy", "serializ", "deadlock")):
                raise
            log.info("rollup deferred", extra={"series_id": series_id, "bucket_ns": bucket_ns, "error": str(exc.orig)})
            return None
        return len(written)

    def _inputs(
        self, conn: Connection, series_id: int, width_s: int, bucket_ns: int, end_ns: int
    ) -> list[tuple[ProfileMeta, bytes]]:
        if width_s == HOUR_S:
            query = (
                select(*ProfileTable.COLUMNS, ProfileBlob.data)
                .join(
                    ProfileBlob,
                    (ProfileBlob.profile_id == ProfileRow.id)
                    & (ProfileBlob.time_ns == ProfileRow.time_ns)
                    & (ProfileBlob.series_id == ProfileRow.series_id),
                )
                .where(ProfileRow.series_id == series_id, ProfileRow.time_ns >= bucket_ns, ProfileRow.time_ns < end_ns)
            )
            return [(self._profiles.meta(row[:8]), bytes(row[8])) for row in conn.execute(query)]
        hourly = (
            select(*_COLUMNS, RollupBlob.data)
            .join(
                RollupBlob,
                (RollupBlob.rollup_id == Rollup.id)
                & (RollupBlob.width_s == Rollup.width_s)
                & (RollupBlob.bucket_ns == Rollup.bucket_ns)
                & (RollupBlob.series_id == Rollup.series_id),
            )
            .where(
                Rollup.series_id == series_id,
                Rollup.width_s == HOUR_S,
                Rollup.bucket_ns >= bucket_ns,
                Rollup.bucket_ns < end_ns,
            )
        )
        return [(self._meta(tuple(row)[:11]), bytes(tuple(row)[11])) for row in conn.execute(hourly)]

    def _merge(
        self,
        series_id: int,
        width_s: int,
        bucket_ns: int,
        parts: list[tuple[ProfileMeta, bytes]],
        leaf_nodes: LeafNodes,
    ) -> dict[str, Any]:
        decoded = [blob.decode(data) for _, data in parts]
        merged, saturated = aggregate_saturating(
            np.concatenate([d.keys for d in decoded]), np.concatenate([d.values for d in decoded])
        )
        # Summed per stack leaf node (keys differing only in addresses, lines or labels share one), as a flame
        # graph or a function-level top table reads them.
        per_node, node_saturated = aggregate_saturating(leaf_nodes(merged.keys), merged.values)
        saturated = saturated or node_saturated
        metas = [meta for meta, _ in parts]
        # Python's integers add exactly; what does not fit is stored saturated, so a query meeting it refuses.
        totals = [clamp(sum(column)) for column in zip(*(m.totals for m in metas), strict=True)]
        if saturated or any(abs(total) == SATURATED for total in totals):
            log.warning(
                "rollup sums past the 64-bit range stored saturated",
                extra={"series_id": series_id, "width_s": width_s, "bucket_ns": bucket_ns},
            )
        return {
            "series_id": series_id,
            "width_s": width_s,
            "bucket_ns": bucket_ns,
            "shape_id": metas[0].shape_id,
            "profiles": sum(m.profiles for m in metas),
            "duration_ns": clamp(sum(m.duration_ns for m in metas)),
            "period": max(m.period for m in metas),
            "samples": len(merged),
            "totals": totals,
            "max_totals": [max(column) for column in zip(*(m.max_totals or m.totals for m in metas), strict=True)],
            "data": blob.encode(merged, per_node, level=blob.ROLLUP_LEVEL),
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

    def blobs(self, rollup_ids: Sequence[int], marks: CacheMarks | None = None) -> dict[int, bytes]:
        """The blobs of these rollups by id. With ``marks`` (the reader's caches: their node tables are read),
        refused with :class:`~server.errors.Renumbered` unless of the caches' node generation."""

        def read() -> dict[int, bytes]:
            found: dict[int, bytes] = {}
            for part in chunks(list(rollup_ids), 500):
                query = select(RollupBlob.rollup_id, RollupBlob.data).where(RollupBlob.rollup_id.in_(part))
                found.update({int(rid): bytes(data) for rid, data in conn.execute(query)})
            return found

        if not rollup_ids:
            return {}
        with self._engine.connect() as conn:
            return read() if marks is None else marks.read(conn, read, nodes=True)


def _existing(conn: Connection, width_s: int, pairs: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """Which of these (series, bucket) pairs already have a rollup of this width (asked per bucket, not per row)."""
    buckets = sorted({bucket for _, bucket in pairs})
    found: set[tuple[int, int]] = set()
    for part in chunks(buckets, 500):
        query = select(Rollup.series_id, Rollup.bucket_ns).where(Rollup.width_s == width_s, Rollup.bucket_ns.in_(part))
        found.update((int(s), int(b)) for s, b in conn.execute(query.distinct()))
    return found & pairs


def read_state(conn: Connection, key: str) -> int:
    return int(conn.execute(select(StoreState.value).where(StoreState.key == key)).scalar() or 0)


def _by_shape(parts: list[tuple[ProfileMeta, bytes]]) -> dict[int, list[tuple[ProfileMeta, bytes]]]:
    groups: dict[int, list[tuple[ProfileMeta, bytes]]] = {}
    for meta, data in parts:
        groups.setdefault(meta.shape_id, []).append((meta, data))
    return groups
