"""Engines for SQLite (the embedded default) and PostgreSQL, and the one SQL idiom both need.

SQLite runs in WAL mode with ``synchronous=NORMAL``: a crash can lose the last
commits but never corrupts the file, and commits don't wait for fsync, which
is what lets one process ingest hundreds of profiles per second.
"""

from __future__ import annotations

import enum
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite

SQLITE_BUSY_TIMEOUT_MS = 30_000
#: Between tries of a journal-mode change another opener held off (see ``_use_wal``).
_WAL_RETRY_S = 0.005
# A PostgreSQL host that went away silently (no RST) must fail a connect in seconds, not minutes:
# callers answer 503 or buffer, and /readyz must not hang.
POSTGRES_CONNECT_TIMEOUT_S = 5


def make_engine(url: str, pool_size: int = 20) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            # The connection returned last is handed out next: a connection's page cache holds while it alone
            # writes, and is dropped whole when another connection wrote since. Taken in turns (the pool's
            # default order), two pooled connections re-read every page a profile's write touches.
            pool_use_lifo=True,
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            _use_wal(cursor)
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    # pool_pre_ping: after a database restart, pooled connections are dead; each is tested (and replaced) on checkout.
    return create_engine(
        url,
        pool_pre_ping=True,
        # Connections beyond the pool are opened and closed per use: a PostgreSQL backend per request.
        # The pool is sized for the request threads, the overflow only absorbs bursts.
        pool_size=pool_size,
        max_overflow=pool_size,
        connect_args={"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S},
    )


def _use_wal(cursor: Any) -> None:
    """Put the file in WAL mode (it stays so: the mode is kept in the file), waiting out other openers.

    Connections opening a WAL file at the same moment (a fresh server's threads, ingest workers starting)
    race to set up its shared-memory index, and the losers' ``PRAGMA journal_mode`` fails at once with
    "database is locked": SQLite calls no busy handler there (5 % of four-thread first opens here). So it
    is retried, within the busy timeout, like any other lock wait.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(_WAL_RETRY_S)


def insert_ignoring_conflicts(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert rows, skipping those that collide with a unique key.

    Deduplicated tables are written by concurrent ingests (and by several
    server replicas on PostgreSQL); a collision means another writer stored
    the same content first, which is exactly what we wanted.
    """
    if not rows:
        return
    statement = _dialect_insert(conn, table).on_conflict_do_nothing()
    for chunk in chunks(rows, 1000):
        conn.execute(statement, list(chunk))


def insert_returning(
    conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], returning: Sequence[Any]
) -> list[Any]:
    """Like :func:`insert_ignoring_conflicts`, returning the listed columns of the rows actually inserted.

    Rows skipped because of a conflict are not returned: the caller looks
    those up (they were written by someone else a moment ago).
    """
    if not rows:
        return []
    statement = _dialect_insert(conn, table).on_conflict_do_nothing().returning(*returning)
    result: list[Any] = []
    for chunk in chunks(rows, 1000):
        result.extend(conn.execute(statement, list(chunk)).all())
    return result


def _dialect_insert(conn: Connection, table: Table) -> Any:
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database {dialect}")


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class SqliteStatement:
    """A Core statement compiled for SQLite once, then run with ``exec_driver_sql``: for the few statements a
    profile that brings new stacks runs on SQLite (the append locks, its segments, its row and blob, and a late
    profile's drop of its hour's rollups).

    Why: each ``Connection.execute`` of a Core statement costs SQLAlchemy ~80-140 µs here on top of SQLite's own
    10-30 µs, warm (its cache key, compiled-parameter processing, result set-up), and ingesting a high-churn
    profile is measured against its bare decode; together they saved 0.2-0.3 ms of such a profile's ingest
    (docs/storage-history.md). ``exec_driver_sql`` keeps what matters of SQLAlchemy's path (the
    connection's transaction, ``before_cursor_execute`` events, errors raised as ``sqlalchemy.exc`` types) and
    skips the rest. Values are given as the driver takes them (a JSON column's text, say); the statement's own
    bound constants (an enum's member) are passed as their integers. On PostgreSQL the Core statement runs as
    before, with the same values, so a caller whose values need no conversion names no dialect.
    """

    def __init__(self, statement: Any, column_keys: Sequence[str] | None = None) -> None:
        self.statement = statement
        compiled = statement.compile(dialect=sqlite.dialect(), column_keys=list(column_keys or []) or None)
        self.sql: str = compiled.string
        self._names: tuple[str, ...] = tuple(compiled.positiontup or ())
        constants = {
            name: bound.effective_value
            for name, bound in compiled.binds.items()
            if name in self._names and not bound.required
        }
        self._constants = {
            name: int(value) if isinstance(value, enum.IntEnum) else value for name, value in constants.items()
        }

    def run(self, conn: Connection, values: Mapping[str, Any] | None = None) -> Any:
        """The statement's cursor result in ``conn``, with ``values`` by column key."""
        if conn.dialect.name != "sqlite":
            return conn.execute(self.statement, dict(values or {}))
        given = self._constants if not values else {**self._constants, **values}
        return conn.exec_driver_sql(self.sql, tuple(given[name] for name in self._names))

    def run_many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """The statement once a row (the driver's ``executemany`` on SQLite), each row's values by column key."""
        if conn.dialect.name != "sqlite":
            conn.execute(self.statement, list(rows))
            return
        constants = self._constants
        conn.exec_driver_sql(
            self.sql, [tuple(row[name] if name in row else constants[name] for name in self._names) for row in rows]
        )
