"""The garbage-collection epoch and the node generation: how a process learns its dedup caches may be out of date.

The epoch moves with every collection: a cache filled before it may name rows that are gone, so a writer
whose caches predate it appends nothing (:class:`~server.store.appends.EpochMoved`). The node generation moves
only when a collection renumbers the stack tree's nodes (:mod:`server.store.gc`): a cache filled before it
names other nodes by the same ids, so a reader must not mix what it holds with what it reads
(:mod:`server.store.cachemarks`).
"""

from __future__ import annotations

from sqlalchemy import Connection, insert, select, text, update

from server.store.models import StoreState

EPOCH = "gc_epoch"
GENERATION = "node_generation"  # no row until the first renumbering: generation 0
GC_LOCK = 7_299_999_999

# Built once: every profile's transaction runs them, and building a statement costs more than running it.
_READ = select(StoreState.value).where(StoreState.key == EPOCH)
#: SQLite's no-op write, which takes the write lock and answers the epoch it holds in one statement.
_HOLD = update(StoreState).where(StoreState.key == EPOCH).values(value=StoreState.value).returning(StoreState.value)
_SHARED = text("SELECT pg_advisory_xact_lock_shared(:key)")


_MARKS = select(StoreState.key, StoreState.value).where(StoreState.key.in_([EPOCH, GENERATION]))
_READ_GENERATION = select(StoreState.value).where(StoreState.key == GENERATION)


def read_epoch(conn: Connection) -> int:
    return int(conn.execute(_READ).scalar() or 0)


def read_marks(conn: Connection) -> tuple[int, int]:
    """The GC epoch and the node generation, in one statement."""
    found = {str(key): int(value or 0) for key, value in conn.execute(_MARKS)}
    return found.get(EPOCH, 0), found.get(GENERATION, 0)


def read_generation(conn: Connection) -> int:
    return int(conn.execute(_READ_GENERATION).scalar() or 0)


def next_generation(conn: Connection) -> int:
    """Inside the collection's transaction (which holds its lock): move the node generation on; returns it."""
    generation = read_generation(conn) + 1
    moved = conn.execute(update(StoreState).where(StoreState.key == GENERATION).values(value=generation))
    if not moved.rowcount:
        conn.execute(insert(StoreState).values(key=GENERATION, value=generation))
    return generation


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
