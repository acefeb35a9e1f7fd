"""Goroutine dumps in the database: one row per dump, its groups, and deduplicated stacks.

A dump of a leaking service holds thousands of goroutines but a few dozen
distinct (state, stack) groups, and the stacks repeat from dump to dump, so a
stored dump is one ``goroutine_dumps`` row plus one small row per group; each
stack is stored once (by content hash) and only referenced afterwards.

Stacks are looked up per write inside the writing transaction rather than
cached: a dump has few groups, and the lookup under ``lock_against_gc`` can
never hand out a stack that retention is deleting at the same moment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, delete, exists, func, insert, select

from server.goroutines.groups import Group
from server.store.database import chunks, insert_ignoring_conflicts
from server.store.models import GoroutineDump, GoroutineGroup, GoroutineStack
from server.store.partitions import DUMPS, drop_before, is_partitioned
from server.store.state import lock_against_gc, lock_for_gc


@dataclass(frozen=True, slots=True)
class DumpInfo:
    id: int
    series_id: int
    time_ns: int
    goroutines: int


@dataclass(frozen=True, slots=True)
class StackInfo:
    id: int
    function: str
    location: str
    created_by: str
    created_at: str
    frames: list[tuple[str, str, int]]


@dataclass(frozen=True, slots=True)
class StoredGroup:
    dump_id: int
    stack_id: int
    state: str
    count: int
    max_wait_minutes: int
    median_wait_minutes: float
    locked: int


@dataclass(frozen=True, slots=True)
class StackPoint:
    """One stack in one dump, all states together: what leak detection follows over time."""

    dump_id: int
    stack_id: int
    count: int
    max_wait_minutes: int


class GoroutineTable:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def write(self, series_id: int, time_ns: int, goroutines: int, groups: Sequence[Group]) -> DumpInfo:
        """Store one dump; a second dump of the same series at the same time (a retried push) is ignored."""
        stacks = {g.stack.hash: g.stack for g in groups}
        rows = []
        for key, stack in stacks.items():
            blocking = stack.blocking_frame
            created = stack.created_by
            rows.append(
                {
                    "hash": key,
                    "function": blocking.function if blocking else "",
                    "location": blocking.location if blocking else "",
                    "created_by": created.function if created else "",
                    "created_at": created.location if created else "",
                    "frames": [[f.function, f.file, f.line] for f in stack.frames],
                }
            )
        with self._engine.begin() as conn:
            lock_against_gc(conn)
            existing = conn.execute(
                select(GoroutineDump.id, GoroutineDump.goroutines).where(
                    GoroutineDump.series_id == series_id, GoroutineDump.time_ns == time_ns
                )
            ).first()
            if existing is not None:
                return DumpInfo(existing[0], series_id, time_ns, existing[1])
            insert_ignoring_conflicts(conn, GoroutineStack.__table__, rows)  # type: ignore[arg-type]
            ids = _stack_ids(conn, list(stacks))
            dump_id = conn.execute(
                insert(GoroutineDump)
                .values(series_id=series_id, time_ns=time_ns, goroutines=goroutines)
                .returning(GoroutineDump.id)
            ).scalar_one()
            if groups:
                conn.execute(
                    insert(GoroutineGroup),
                    [
                        {
                            "dump_id": dump_id,
                            "stack_id": ids[g.stack.hash],
                            "state": g.state[:128],
                            "count": g.count,
                            "max_wait_minutes": g.max_wait_minutes,
                            "median_wait_minutes": g.median_wait_minutes,
                            "locked": g.locked,
                            "time_ns": time_ns,
                            "series_id": series_id,
                        }
                        for g in groups
                    ],
                )
        return DumpInfo(dump_id, series_id, time_ns, goroutines)

    def latest_at(self, series_ids: Sequence[int], at_ns: int) -> list[DumpInfo]:
        """The newest dump at or before ``at_ns`` of each series that has one."""
        found = []
        with self._engine.connect() as conn:
            for series_id in series_ids:
                row = conn.execute(
                    select(GoroutineDump.id, GoroutineDump.time_ns, GoroutineDump.goroutines)
                    .where(GoroutineDump.series_id == series_id, GoroutineDump.time_ns <= at_ns)
                    .order_by(GoroutineDump.time_ns.desc())
                    .limit(1)
                ).first()
                if row is not None:
                    found.append(DumpInfo(row[0], series_id, row[1], row[2]))
        return found

    def newest(self, series_ids: Sequence[int]) -> list[DumpInfo]:
        """The newest dump of each series that has one."""
        if not series_ids:
            return []
        newest = (
            select(GoroutineDump.series_id, func.max(GoroutineDump.time_ns).label("time_ns"))
            .where(GoroutineDump.series_id.in_(series_ids))
            .group_by(GoroutineDump.series_id)
            .subquery()
        )
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(GoroutineDump.id, GoroutineDump.series_id, GoroutineDump.time_ns, GoroutineDump.goroutines).join(
                    newest,
                    (GoroutineDump.series_id == newest.c.series_id) & (GoroutineDump.time_ns == newest.c.time_ns),
                )
            ).all()
        return [DumpInfo(*row) for row in rows]

    def dumps(self, series_ids: Sequence[int], start_ns: int, end_ns: int, limit: int) -> list[DumpInfo]:
        """Dumps of the series in ``[start_ns, end_ns]``, oldest first, at most ``limit + 1`` (to detect more)."""
        if not series_ids:
            return []
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(GoroutineDump.id, GoroutineDump.series_id, GoroutineDump.time_ns, GoroutineDump.goroutines)
                .where(
                    GoroutineDump.series_id.in_(series_ids),
                    GoroutineDump.time_ns >= start_ns,
                    GoroutineDump.time_ns <= end_ns,
                )
                .order_by(GoroutineDump.time_ns, GoroutineDump.id)
                .limit(limit + 1)
            ).all()
        return [DumpInfo(*row) for row in rows]

    def groups(self, dump_ids: Sequence[int]) -> list[StoredGroup]:
        result: list[StoredGroup] = []
        with self._engine.connect() as conn:
            for chunk in chunks(list(dump_ids), 500):
                rows = conn.execute(
                    select(
                        GoroutineGroup.dump_id,
                        GoroutineGroup.stack_id,
                        GoroutineGroup.state,
                        GoroutineGroup.count,
                        GoroutineGroup.max_wait_minutes,
                        GoroutineGroup.median_wait_minutes,
                        GoroutineGroup.locked,
                    ).where(GoroutineGroup.dump_id.in_(chunk))
                ).all()
                result.extend(StoredGroup(*row) for row in rows)
        return result

    def stack_points(self, dump_ids: Sequence[int]) -> list[StackPoint]:
        """Per dump and stack: goroutines in any state, and the longest wait among them."""
        result: list[StackPoint] = []
        with self._engine.connect() as conn:
            for chunk in chunks(list(dump_ids), 500):
                rows = conn.execute(
                    select(
                        GoroutineGroup.dump_id,
                        GoroutineGroup.stack_id,
                        func.sum(GoroutineGroup.count),
                        func.max(GoroutineGroup.max_wait_minutes),
                    )
                    .where(GoroutineGroup.dump_id.in_(chunk))
                    .group_by(GoroutineGroup.dump_id, GoroutineGroup.stack_id)
                ).all()
                result.extend(StackPoint(int(d), int(s), int(c), int(w)) for d, s, c, w in rows)
        return result

    def stacks(self, stack_ids: Sequence[int]) -> dict[int, StackInfo]:
        result: dict[int, StackInfo] = {}
        with self._engine.connect() as conn:
            for chunk in chunks(sorted(set(stack_ids)), 500):
                rows = conn.execute(
                    select(
                        GoroutineStack.id,
                        GoroutineStack.function,
                        GoroutineStack.location,
                        GoroutineStack.created_by,
                        GoroutineStack.created_at,
                        GoroutineStack.frames,
                    ).where(GoroutineStack.id.in_(chunk))
                ).all()
                for stack_id, function, location, created_by, created_at, frames in rows:
                    result[stack_id] = StackInfo(
                        stack_id,
                        function,
                        location,
                        created_by,
                        created_at,
                        [(str(f[0]), str(f[1]), int(f[2])) for f in frames],  # type: ignore[call-overload]
                    )
        return result

    def delete_before(self, time_ns: int, batch: int = 5000) -> int:
        """Delete dumps older than ``time_ns`` with their groups: whole partitions on PostgreSQL, else in batches."""
        with self._engine.begin() as conn:
            if is_partitioned(conn):
                return drop_before(conn, DUMPS, time_ns)
        total = 0
        while True:
            with self._engine.begin() as conn:
                ids = (
                    conn.execute(select(GoroutineDump.id).where(GoroutineDump.time_ns < time_ns).limit(batch))
                    .scalars()
                    .all()
                )
                if not ids:
                    return total
                conn.execute(delete(GoroutineGroup).where(GoroutineGroup.dump_id.in_(ids)))
                conn.execute(delete(GoroutineDump).where(GoroutineDump.id.in_(ids)))
            total += len(ids)

    def collect_stacks(self) -> int:
        """Delete stacks no group references, excluding concurrent writers (see :func:`lock_for_gc`)."""
        with self._engine.begin() as conn:
            lock_for_gc(conn)
            unused = ~exists().where(GoroutineGroup.stack_id == GoroutineStack.id)
            result = conn.execute(delete(GoroutineStack).where(unused))
        return int(result.rowcount or 0)


def _stack_ids(conn: Connection, hashes: list[int]) -> dict[int, int]:
    ids: dict[int, int] = {}
    for chunk in chunks(hashes, 500):
        for stack_id, key in conn.execute(
            select(GoroutineStack.id, GoroutineStack.hash).where(GoroutineStack.hash.in_(chunk))
        ).all():
            ids[key] = stack_id
    return ids
