"""The garbage-collection epoch: how a process learns its dedup caches may name collected rows."""

from __future__ import annotations

from sqlalchemy import Connection, select, text, update

from server.store.models import StoreState

EPOCH = "gc_epoch"
GC_LOCK = 7_299_999_999

# Built once: every profile's transaction runs them, and building a statement costs more than running it.
_READ = select(StoreState.value).where(StoreState.key == EPOCH)
#: SQLite's no-op write, which takes the write lock and answers the epoch it holds in one statement.
_HOLD = update(StoreState).where(StoreState.key == EPOCH).values(value=StoreState.value).returning(StoreState.value)
_SHARED = text("SELECT pg_advisory_xact_lock_shared(:key)")


def read_epoch(conn: Connection) -> int:
    return int(conn.execute(_READ).scalar() or 0)


def lock_against_gc(conn: Connection) -> int:
    """Inside a writing transaction: wait out a running collection, then return the current epoch.

    PostgreSQL: a shared advisory lock (collection takes it exclusively).
    SQLite: a no-op write first, so the transaction holds the write lock and
    reads the latest snapshot (a collection is one write transaction too).
    """
    if conn.dialect.name == "postgresql":
        # Two statements: one would read the epoch from a snapshot taken before the lock was granted.
        conn.execute(_SHARED, {"key": GC_LOCK})
        return read_epoch(conn)
    return int(conn.execute(_HOLD).scalar() or 0)


def lock_for_gc(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": GC_LOCK})
    conn.execute(update(StoreState).where(StoreState.key == EPOCH).values(value=StoreState.value + 1))
