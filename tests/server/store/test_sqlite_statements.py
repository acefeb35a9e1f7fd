"""SQLite's hot statements run as the driver's SQL (``database.SqliteStatement``) write what SQLAlchemy's Core
path writes, take part in the connection's transaction, and fail as ``sqlalchemy.exc`` errors do."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from server.store.appends import lock_all_appends
from server.store.database import make_engine
from server.store.models import ProfileBlob, ProfileRow
from server.store.profiles import ProfileTable


def _row(series_id: int, time_ns: int) -> dict[str, Any]:
    return {
        "series_id": series_id,
        "shape_id": 1,
        "time_ns": time_ns,
        "duration_ns": 10_000_000_000,
        "period": 10_000_000,
        "samples": 3,
        "totals": [7, 2**40],
        "idempotency_key": None,
    }


def _stored(url: str) -> list[tuple[Any, ...]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT time_ns, totals, typeof(totals) FROM profiles ORDER BY time_ns")
            return [tuple(r) for r in rows]
    finally:
        engine.dispose()


def test_one_row_is_stored_as_the_core_path_stores_it(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")  # no series or shape rows: only the columns are compared
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        epoch, tops = lock_all_appends(conn)  # the driver's SQL: the lock, the epoch and the newest segments
        assert epoch == 0 and set(tops.values()) == {0}
        (fast,) = ProfileTable.insert_rows(conn, [(_row(1, 100), b"one")])  # one row without a key: the driver
        core = ProfileTable.insert_rows(conn, [(_row(1, 200), b"two"), (_row(1, 300), b"three")])  # Core
        assert fast == (1, True) and core == [(2, True), (3, True)]
        assert conn.execute(select(ProfileRow.totals).order_by(ProfileRow.id)).scalars().all() == [[7, 2**40]] * 3
        blobs = conn.execute(select(ProfileBlob.profile_id, ProfileBlob.data).order_by(ProfileBlob.profile_id)).all()
        assert [tuple(b) for b in blobs] == [(1, b"one"), (2, b"two"), (3, b"three")]
    stored = _stored(sqlite_url)
    assert [s[1:] for s in stored] == [stored[1][1:]] * 3  # the same JSON text, byte for byte
    engine.dispose()


def test_a_rolled_back_transaction_keeps_no_row_and_errors_are_sqlalchemy_s(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        conn.commit()
        assert ProfileTable.insert_rows(conn, [(_row(1, 100), b"one")]) == [(1, True)]
        conn.rollback()  # the driver's statements were in the connection's transaction
        assert _stored(sqlite_url) == []
        # A blob already stored for the id the next row gets: the driver's error arrives as SQLAlchemy's.
        conn.exec_driver_sql("INSERT INTO profile_blobs (profile_id, time_ns, series_id, data) VALUES (1, 0, 1, x'00')")
        conn.commit()
        with pytest.raises(IntegrityError, match="profile_blobs"):
            ProfileTable.insert_rows(conn, [(_row(1, 200), b"two")])
        conn.rollback()
    assert _stored(sqlite_url) == []
    engine.dispose()
