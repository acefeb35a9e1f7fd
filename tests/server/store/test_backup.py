"""The backup and restore commands of docs/deploy.md, run for real: the restored copy answers like the original.

SQLite: ``sqlite3 DB ".backup FILE"`` and ``VACUUM INTO``, both taken while the
server's store holds the database open. PostgreSQL: ``pg_dump -Fc`` and
``pg_restore`` into a new database of the throwaway server.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from server.app import create_app
from server.migrate import upgrade
from server.settings import Settings
from server.store.models import Base
from server.store.repository import Store
from tests.conftest import TEST_RETENTION
from tests.support.helpers import push, top
from tests.support.pgserver import PostgresServer
from tests.support.tools import DATA, missing, postgres_bindir

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)


def _fill(url: str) -> None:
    with TestClient(create_app(Settings(database_url=url, retention_raw=TEST_RETENTION))) as client:
        push(client, DATA / "cpu.pb.gz", time="2026-11-01T10:00:00Z")
        push(client, DATA / "cpu2.pb.gz", time="2026-11-01T10:00:10Z")
        push(client, DATA / "heap.pb.gz", time="2026-11-01T10:00:00Z")
        push(client, DATA / "big_cpu.pb.gz", service="big", time="2026-11-01T10:00:00Z")


def _answers(url: str) -> dict[str, Any]:
    """Row counts of every table and the top tables a dashboard shows, for comparing two databases."""
    store = Store.from_url(url)
    try:
        with store.engine.connect() as conn:
            counts = {
                table.name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
                for table in Base.metadata.sorted_tables
            }
        with TestClient(create_app(Settings(database_url=url, retention_raw=TEST_RETENTION), store)) as client:
            tops = {
                "cpu": top(client, type="cpu", query='{service="demo"}'),
                "heap": top(client, type="heap"),
                "big": top(client, type="cpu", query='{service="big"}'),
            }
    finally:
        store.close()
    return {"counts": counts, "tops": tops}


@pytest.fixture
def filled_sqlite(tmp_path: Path) -> Iterator[tuple[Path, Store]]:
    path = tmp_path / "stackyard.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    _fill(url)
    store = Store.from_url(url)  # held open, as a running server would
    yield path, store
    store.close()


def test_sqlite_backup_command_while_open(filled_sqlite: tuple[Path, Store], tmp_path: Path) -> None:
    source, _ = filled_sqlite
    if shutil.which("sqlite3") is None:
        missing("the sqlite3 command-line shell is not installed (apt-get install sqlite3)")
    copy = tmp_path / "backup.db"
    subprocess.run(["sqlite3", str(source), f".backup '{copy}'"], check=True, timeout=60)
    with sqlite3.connect(copy) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    original, restored = _answers(f"sqlite:///{source}"), _answers(f"sqlite:///{copy}")
    assert restored["counts"]["profiles"] == 4
    assert restored == original


def test_sqlite_vacuum_into_while_open(filled_sqlite: tuple[Path, Store], tmp_path: Path) -> None:
    source, _ = filled_sqlite
    copy = tmp_path / "vacuumed.db"
    with sqlite3.connect(source) as conn:
        conn.execute("VACUUM INTO ?", (str(copy),))
    original, restored = _answers(f"sqlite:///{source}"), _answers(f"sqlite:///{copy}")
    assert restored["counts"]["profiles"] == 4
    assert restored == original


@pytest.mark.postgres
def test_pg_dump_and_pg_restore_round_trip(postgres: PostgresServer, tmp_path: Path) -> None:
    bindir = postgres_bindir()
    source = postgres.create_database("backup_source")
    upgrade(source)
    _fill(source)
    dump = tmp_path / "stackyard.dump"
    libpq = source.replace("postgresql+psycopg://", "postgresql://")
    subprocess.run([str(bindir / "pg_dump"), "--format=custom", f"--file={dump}", libpq], check=True, timeout=120)
    target = postgres.create_database("backup_restored")
    subprocess.run(
        [str(bindir / "pg_restore"), "--no-owner", "--exit-on-error", "-d", target.replace("+psycopg", ""), str(dump)],
        check=True,
        timeout=120,
    )
    original, restored = _answers(source), _answers(target)
    assert restored["counts"]["profiles"] == 4
    assert restored == original
    # The restored database is at the head revision: the server starts on it without migrating anything.
    upgrade(target)
    with TestClient(create_app(Settings(database_url=target, retention_raw=TEST_RETENTION))) as client:
        push(client, DATA / "cpu.pb.gz", time="2026-11-01T10:00:20Z")
    assert _answers(target)["counts"]["profiles"] == 5
