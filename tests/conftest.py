"""Shared fixtures: real databases (a SQLite file, a PostgreSQL server), a store, an API client."""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.migrate import upgrade
from server.settings import Settings
from server.store.repository import Store
from tests.support.pgserver import PostgresServer, StandbyServer
from tests.support.tools import DATA, postgres_bindir


def pytest_sessionstart(session: pytest.Session) -> None:
    """The run 400 days ahead (scripts/pytest-later.sh) proves something only if the clock really moved.

    The script passes the real time and the offset it asked faketime for; a plain run sets neither.
    """
    ahead, real = os.environ.get("STACKYARD_CLOCK_AHEAD_DAYS"), os.environ.get("STACKYARD_REAL_TIME")
    if ahead is None or real is None:
        return
    expected = int(real) + int(ahead) * 86400
    if abs(time.time() - expected) > 3600:
        pytest.exit(f"the clock reads {time.time():.0f}, but the run expected about {expected} (faketime)", 1)


@pytest.fixture(autouse=True)
def _terminal_logging_undone() -> Iterator[None]:
    """Undo ``logs.configure`` after a test that ran a ``stackyard`` command in-process (``main([...])``).

    It points the root logger at the ``sys.stderr`` of that moment, which is
    this test's capture stream: once pytest closes it, any later log line
    (from a server thread of another test) fails with "Logging error".
    """
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if type(handler) is logging.StreamHandler and handler not in before:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer(postgres_bindir())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def replicated_postgres() -> Iterator[tuple[PostgresServer, StandbyServer]]:
    """A primary of its own and a hot standby streaming from it, for the read-replica tests only."""
    primary = PostgresServer(postgres_bindir())
    primary.start()
    standby = StandbyServer(postgres_bindir(), primary)
    try:
        standby.start()
        yield primary, standby
    finally:
        standby.stop()
        primary.stop()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once per session; each test gets a copy (the same schema, without the wait)."""
    path = tmp_path_factory.mktemp("template") / "stackyard.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_template(postgres: PostgresServer) -> str:
    """A PostgreSQL database migrated once per session, which each test's database is created from."""
    name = "stackyard_template"
    upgrade(postgres.create_database(name))  # the migration's engine is gone when it returns
    return name


def _database_url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database of ``kind``, migrated: a copy of the session's migrated template.

    A PostgreSQL one is dropped after its test: 200 of them left to the end cost a minute
    or two of deleting files when the server stops.
    """
    if kind == "sqlite":
        path = tmp_path / "stackyard.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    server: PostgresServer = request.getfixturevalue("postgres")
    template: str = request.getfixturevalue("postgres_template")
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = server.create_database(name, template=template)
    request.addfinalizer(lambda: server.drop_database(name))
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, migrated database of each kind."""
    return _database_url(str(request.param), request, tmp_path)


@pytest.fixture
def sqlite_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return _database_url("sqlite", request, tmp_path)


# Tests push profiles stamped at fixed past times (1970, 2026-09): keep raw profiles "forever".
TEST_RETENTION = "36500d"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, retention_raw=TEST_RETENTION)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    the_store = Store.from_url(database_url)
    yield the_store
    the_store.close()


@pytest.fixture
def client(settings: Settings, store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(settings, store)) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA
