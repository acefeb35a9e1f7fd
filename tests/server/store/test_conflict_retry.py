"""A profile whose transaction PostgreSQL rolled back to break a deadlock is written again, once.

PostgreSQL aborts one transaction of a lock cycle (``deadlock detected``,
SQLSTATE 40P01) or a conflicting serializable one (40001); nothing of it is
stored, and running it again is the documented answer. A cycle cannot be made
to land on one chosen statement, so the profile row's insert raises the
driver's own deadlock error once, inside the real transaction, which is really
rolled back; the store must then hold the profile exactly once, consistent,
on SQLite and PostgreSQL alike. Any other database error still reaches the caller.
"""

from __future__ import annotations

from typing import Any

import psycopg.errors
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError

from server.ingest.profile import ingest
from server.settings import Settings
from server.store.check import check_store
from server.store.models import ProfileBlob, ProfileRow
from server.store.profiles import ProfileTable
from server.store.repository import Store
from tests.support.tools import DATA

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)

CPU = (DATA / "cpu.pb.gz").read_bytes()
TIME_NS = 1_764_892_800 * 10**9


def _failing_once(monkeypatch: pytest.MonkeyPatch, error: Exception) -> list[int]:
    """``ProfileTable.insert_rows`` raises ``error`` on its first call, then works; returns the call count."""
    calls = [0]
    real = ProfileTable.insert_rows

    def insert_rows(conn: Any, items: Any) -> Any:
        calls[0] += 1
        if calls[0] == 1:
            raise error
        return real(conn, items)

    monkeypatch.setattr(ProfileTable, "insert_rows", staticmethod(insert_rows))
    return calls


def _stored(store: Store) -> tuple[int, int]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(ProfileRow)).scalar_one()
        blobs = conn.execute(select(func.count()).select_from(ProfileBlob)).scalar_one()
    return int(rows), int(blobs)


@pytest.mark.parametrize("key", [None, "push-1"])
def test_a_deadlocked_write_is_written_again_once(
    store: Store, settings: Settings, monkeypatch: pytest.MonkeyPatch, key: str | None
) -> None:
    deadlock = OperationalError("INSERT INTO profiles ...", {}, psycopg.errors.DeadlockDetected("deadlock detected"))
    calls = _failing_once(monkeypatch, deadlock)
    result = ingest(store, settings, CPU, {"service": "api"}, kind="cpu", time_ns=TIME_NS, idempotency_key=key)
    assert calls[0] == 2  # the rolled-back try, and the one that stored it
    assert result.stored.created
    assert _stored(store) == (1, 1)
    assert check_store(store.engine).problems == []
    meta = store.profiles.get(result.stored.id)
    assert meta is not None and meta.totals == result.stored.totals and sum(meta.totals) > 0


def test_other_database_errors_are_not_retried(
    store: Store, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    violation = IntegrityError("INSERT INTO profiles ...", {}, psycopg.errors.UniqueViolation("duplicate key"))
    calls = _failing_once(monkeypatch, violation)
    with pytest.raises(IntegrityError):
        ingest(store, settings, CPU, {"service": "api"}, kind="cpu", time_ns=TIME_NS)
    assert calls[0] == 1
    assert _stored(store) == (0, 0)
