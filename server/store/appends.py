"""The write lock of an append-only segment table (sample keys, line frames).

Those tables have no unique index: a process answers dedup from memory, and
two writers stay correct because each appends under this lock, after reading
what others appended since it last looked (the rule of the stack tree's
segments, :mod:`server.store.stacks`). The lock ends with the transaction.
"""

from __future__ import annotations

from sqlalchemy import Connection, text, update

from server.store.models import StoreState
from server.store.state import EPOCH

#: PostgreSQL advisory lock keys (the stack trees use 7_299_999_900 + tree, garbage collection 7_299_999_999).
SAMPLE_KEYS = 7_299_999_910
LINE_FRAMES = 7_299_999_911


def lock_appends(conn: Connection, key: int) -> None:
    """Inside a writing transaction: wait for, then hold until commit, the right to append to a table."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    else:  # a no-op write takes SQLite's one write lock, and the reads after it see every commit
        conn.execute(update(StoreState).where(StoreState.key == EPOCH).values(value=StoreState.value))
