"""Replica membership and leases in the database: heartbeats, who is alive, who holds a job.

Every time here is the database's clock, read in the same transaction that
compares it (``clock_now_ns``): replicas whose own clocks disagree by
minutes still agree on who is alive and who holds a lease, because none of
them brings its own time.

A lease is a row (name, holder, expiry) taken with one conditional UPDATE:
"mine if it is already mine or has expired". Under PostgreSQL's READ
COMMITTED two replicas racing for it serialise on the row lock, and the
second re-checks the condition against the first one's write, so exactly
one wins. Why a row and not an advisory lock: see docs/scaling.md#upkeep-leader.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Engine, delete, insert, or_, select, text, update

from server.store.database import insert_ignoring_conflicts
from server.store.models import LeaseRow, MemberRow

NS = 1_000_000_000
#: Rows of replicas dead this long are deleted (by whichever replica beats next): a day of crashed restarts
#: leaves at most that many rows behind, and nobody needs to see a replica that died an hour ago.
FORGET_AFTER_NS = 3600 * NS

_NOW = {
    "postgresql": text("SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000000 AS BIGINT)"),
    "sqlite": text("SELECT CAST((julianday('now') - 2440587.5) * 86400000000000.0 AS INTEGER)"),
}


def clock_now_ns(conn: Connection) -> int:
    """The database's current time, nanoseconds since the epoch."""
    return int(conn.execute(_NOW[conn.dialect.name]).scalar_one())


@dataclass(frozen=True, slots=True)
class Member:
    id: str
    host: str
    pid: int


@dataclass(frozen=True, slots=True)
class Beat:
    """What one heartbeat saw: the live members (sorted ids, this one included) and the leases it holds."""

    now_ns: int
    members: tuple[str, ...]
    leases: frozenset[str]


class MemberTable:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def beat(self, me: Member, timeout_s: float, leases: tuple[str, ...] = ()) -> Beat:
        """Register or refresh ``me``, read who is alive, and take or renew ``leases``: one transaction.

        A replica is alive while its last heartbeat is younger than ``timeout_s``;
        a lease taken here lasts as long, so a holder that stops beating loses it
        exactly when it is declared dead.
        """
        timeout_ns = int(timeout_s * NS)
        with self.engine.begin() as conn:
            now = clock_now_ns(conn)
            refreshed = conn.execute(update(MemberRow).where(MemberRow.id == me.id).values(heartbeat_ns=now))
            if not refreshed.rowcount:
                conn.execute(
                    insert(MemberRow).values(id=me.id, host=me.host[:256], pid=me.pid, started_ns=now, heartbeat_ns=now)
                )
            conn.execute(delete(MemberRow).where(MemberRow.heartbeat_ns < now - FORGET_AFTER_NS))
            live = conn.execute(
                select(MemberRow.id).where(MemberRow.heartbeat_ns > now - timeout_ns).order_by(MemberRow.id)
            ).scalars()
            members = tuple(live)
            held = frozenset(name for name in leases if _take(conn, name, me.id, now, timeout_ns))
        return Beat(now, members, held)

    def leave(self, member_id: str) -> None:
        """A replica stopping: its row and its leases go now, so the others take over at their next heartbeat."""
        with self.engine.begin() as conn:
            conn.execute(delete(MemberRow).where(MemberRow.id == member_id))
            conn.execute(update(LeaseRow).where(LeaseRow.holder == member_id).values(holder="", expires_ns=0))

    def all(self) -> list[tuple[str, str, int, int, int]]:
        """Every row, live or not, with the database's time: (id, host, pid, started_ns, heartbeat_ns)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(MemberRow.id, MemberRow.host, MemberRow.pid, MemberRow.started_ns, MemberRow.heartbeat_ns)
            ).all()
        return [(r[0], r[1], int(r[2]), int(r[3]), int(r[4])) for r in rows]

    def holder(self, lease: str) -> tuple[str, int] | None:
        """Who holds ``lease`` and until when (database clock); None if nobody ever took it."""
        with self.engine.connect() as conn:
            row = conn.execute(select(LeaseRow.holder, LeaseRow.expires_ns).where(LeaseRow.name == lease)).first()
        return None if row is None else (str(row[0]), int(row[1]))


def _take(conn: Connection, name: str, holder: str, now_ns: int, ttl_ns: int) -> bool:
    row = {"name": name, "holder": "", "expires_ns": 0}
    insert_ignoring_conflicts(conn, LeaseRow.__table__, [row])  # type: ignore[arg-type]
    taken = conn.execute(
        update(LeaseRow)
        .where(LeaseRow.name == name, or_(LeaseRow.holder == holder, LeaseRow.expires_ns < now_ns))
        .values(holder=holder, expires_ns=now_ns + ttl_ns)
    )
    return bool(taken.rowcount)
