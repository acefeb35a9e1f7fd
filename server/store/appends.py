"""The write locks of the append-only tables, and the one transaction a profile's new rows go in.

Segments (functions, sample keys, their line vectors, the stack tree's nodes; one
kind each in the ``segments`` table) have no unique index: a process answers
dedup from memory, and two writers stay correct because each appends under
its kind's lock, after reading what
others appended since it last looked (the rule of the stack tree's
segments, :mod:`server.store.stacks`). A lock ends with its transaction.

A profile that brings new rows stores all of them (functions, the stack
tree's nodes, sample keys and their line vectors) in one :class:`Appends` transaction
rather than one each: every such transaction paid a begin, a lock, a
commit; the profile's own row and blob join it (:mod:`server.store.repository`).
It takes every append lock at once when it opens, in the order
garbage collection takes them (:mod:`server.store.gc`: the collection lock,
then sample keys, the stack tree, line vectors, functions), so a collection and any
number of writers can never wait on each other in a circle. Ids enter the
memory caches only after the commit (:meth:`Appends.after_commit`): a
rollback anywhere leaves none behind.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, text, update

from server.store.database import SqliteStatement
from server.store.models import SegmentKind, SegmentRow, StoreState
from server.store.state import EPOCH, GC_LOCK

#: PostgreSQL advisory lock keys (the stack trees use 7_299_999_900 + tree, garbage collection 7_299_999_999).
SAMPLE_KEYS = 7_299_999_910
LINE_VECTORS = 7_299_999_911
FUNCTIONS = 7_299_999_912
#: Stack tree ``t``'s appends: ``TREES + t`` (:mod:`server.store.stacks`; only tree 0 is still written).
TREES = 7_299_999_900
#: The order every writer takes the append locks in: the order garbage collection takes them.
ORDER = (SAMPLE_KEYS, TREES, LINE_VECTORS, FUNCTIONS)
# One statement for the four: a round trip each would cost more than the locks. PostgreSQL evaluates a
# select list left to right, so they are taken in ORDER, after the collection lock, shared, as garbage
# collection takes it (exclusively) first: its sweep bumps the epoch and reads the newest blobs under that
# lock alone, before it waits for the append locks, so a writer holding only those could commit a profile
# that names rows the sweep is about to delete (a profile's row joins this transaction, see
# server.store.repository).
_LOCK_ALL = text(
    f"SELECT pg_advisory_xact_lock_shared({GC_LOCK}), " + ", ".join(f"pg_advisory_xact_lock({key})" for key in ORDER)
)


def lock_appends(conn: Connection, key: int) -> None:
    """Inside a writing transaction: wait for, then hold until commit, the right to append to a table."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    else:  # a no-op write takes SQLite's one write lock, and the reads after it see every commit
        conn.execute(update(StoreState).where(StoreState.key == EPOCH).values(value=StoreState.value))


#: The first id of the newest segment of sample keys, of line vectors, of the stack tree and of functions, read
#: with the epoch: a table whose newest segment is one it has loaded skips its catch-up read (four statements a
#: profile; each is an index seek here).
_TOPS = tuple(
    select(func.max(SegmentRow.first_id)).where(SegmentRow.kind == kind).scalar_subquery()
    for kind in (
        SegmentKind.SAMPLE_KEYS,
        SegmentKind.LINE_VECTORS,
        SegmentKind.FUNCTION_STACKS,
        SegmentKind.FUNCTIONS,
    )
)
_TOP_KEYS = (SAMPLE_KEYS, LINE_VECTORS, TREES, FUNCTIONS)
_HOLD_WITH_TOPS = (
    update(StoreState).where(StoreState.key == EPOCH).values(value=StoreState.value).returning(StoreState.value, *_TOPS)
)
_READ_WITH_TOPS = select(StoreState.value, *_TOPS).where(StoreState.key == EPOCH)
#: SQLite runs it once a profile that brings something new: without SQLAlchemy's per-statement work (database.py).
_SQLITE_HOLD_WITH_TOPS = SqliteStatement(_HOLD_WITH_TOPS)
#: The one statement a transaction's segments are written with (built once: building costs more than running).
_INSERT_SEGMENTS = SqliteStatement(insert(SegmentRow), ("kind", "first_id", "last_id", "items", "data"))


def lock_all_appends(conn: Connection) -> tuple[int, dict[int, int]]:
    """Inside a writing transaction: the collection lock (shared) and every append lock, in :data:`ORDER`;
    returns the GC epoch read under them (a collection holds its lock from its epoch bump to its commit, so
    the epoch cannot move until this transaction commits, nor is a sweep half done), and the
    first id of the newest segment of each table in :data:`_TOP_KEYS` (by lock key; 0: none), read in the
    same statement: under the locks, no other writer appends to them until commit.

    PostgreSQL reads them in a statement of its own, whose snapshot is taken once the locks are held;
    SQLite takes its one write lock and reads them in one statement.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(_LOCK_ALL)
        row = conn.execute(_READ_WITH_TOPS).one_or_none()
    else:
        row = _SQLITE_HOLD_WITH_TOPS.run(conn).one_or_none()
    if row is None:  # no epoch stored yet: epoch 0, and every table catches up as before
        return 0, {}
    return int(row[0] or 0), {key: int(top or 0) for key, top in zip(_TOP_KEYS, row[1:], strict=True)}


class EpochMoved(Exception):
    """Garbage collection ran since the caller resolved its ids: the rows it would append may name rows gone."""

    def __init__(self, epoch: int) -> None:
        super().__init__(f"garbage collection ran (epoch {epoch})")
        self.epoch = epoch


class Appends:
    """One write transaction for the new rows of a profile, begun at first need.

    The tables take :meth:`connection` when they find rows to append (so a
    profile with nothing new never begins one), catch up on what other
    writers appended under the locks it holds, insert, and register with
    :meth:`after_commit` what their memory gains; that runs only once the
    commit succeeded. Their segments (:meth:`add_segment`) are written
    together, in one statement just before the commit: a steady profile's
    five small segments cost five statements' overhead (~50 µs each on
    SQLite, most of it SQLAlchemy's), more than their rows. A table appends at most once in a transaction
    (:meth:`segments`): a second catch-up would read its own uncommitted rows.

    With ``epoch`` (the GC epoch the caller's cached ids belong to), no
    segment is appended once a collection has run since (:class:`EpochMoved`):
    a new node's parent, a line frame's function or a key's node might be
    gone. (New functions name nothing, but they share the transaction that
    would fail: they are not appended either.)
    """

    def __init__(self, engine: Engine, epoch: int | None = None) -> None:
        self._engine = engine
        self._expected = epoch
        self._begun: AbstractContextManager[Connection] | None = None
        self._conn: Connection | None = None
        self._actions: list[Callable[[], None]] = []
        self._claimed: set[object] = set()
        self._segments: list[dict[str, Any]] = []
        #: The GC epoch read under the locks (set once :meth:`connection` began the transaction).
        self.epoch = 0
        self._tops: dict[int, int] = {}

    @property
    def begun(self) -> bool:
        return self._conn is not None

    @property
    def guarded(self) -> bool:
        """Whether the transaction refuses appends once a collection has run since the caller's caches were
        filled (it was given their epoch): what a table catches up on under its locks is then of their node
        generation, since only a collection renumbers."""
        return self._expected is not None

    def connection(self) -> Connection:
        """The transaction's connection, holding every append lock (begun and locked on first call)."""
        if self._conn is None:
            begun = self._engine.begin()
            conn = begun.__enter__()
            try:
                self.epoch, self._tops = lock_all_appends(conn)
            except BaseException as exc:
                begun.__exit__(type(exc), exc, exc.__traceback__)
                raise
            self._begun, self._conn = begun, conn
        return self._conn

    def segments(self, table: object) -> Connection:
        """:meth:`connection`, for ``table`` to append its segment: once a transaction, and only if no collection
        ran since the caller's ids were resolved."""
        if table in self._claimed:
            raise RuntimeError(f"{type(table).__name__} appends twice in one transaction")
        conn = self.connection()
        if self._expected is not None and self.epoch != self._expected:
            raise EpochMoved(self.epoch)
        self._claimed.add(table)
        return conn

    def appended_past(self, key: int, high: int) -> bool:
        """Whether the table of append lock ``key`` (:data:`SAMPLE_KEYS`, :data:`LINE_VECTORS`, ``TREES + t``,
        :data:`FUNCTIONS`) may hold a segment starting past id ``high``: False only when the newest one, read under
        the locks, does not.
        Call it once :meth:`segments` has begun the transaction."""
        top = self._tops.get(key)
        return top is None or top > high

    def add_segment(self, row: dict[str, Any]) -> None:
        """Write ``row`` (a ``segments`` row) in this transaction, before it commits. Call it once :meth:`segments`
        has begun the transaction: nothing in it reads back a segment it appends (a table appends once, after its
        catch-up read)."""
        if self._conn is None:
            raise RuntimeError("a segment is added to a transaction not begun")
        self._segments.append(row)

    def after_commit(self, action: Callable[[], None]) -> None:
        """Run ``action`` once the transaction has committed (never if it rolls back)."""
        self._actions.append(action)

    def __enter__(self) -> Appends:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        begun, conn, actions, segments = self._begun, self._conn, self._actions, self._segments
        self._begun, self._conn, self._actions, self._claimed, self._tops = None, None, [], set(), {}
        self._segments = []
        if begun is not None and conn is not None:
            if exc_type is None and segments:
                try:
                    _INSERT_SEGMENTS.run_many(conn, segments)
                except BaseException as failed:
                    begun.__exit__(type(failed), failed, failed.__traceback__)  # rolls back
                    raise
            begun.__exit__(exc_type, exc, traceback)  # commits, or rolls back; a failed commit raises here
        if exc_type is None:
            for action in actions:
                action()
