"""Queries on a real hot standby (``STACKYARD_DATABASE_READ_URL``): served there, skipped when behind or down.

The primary and the standby are two PostgreSQL servers of this session,
replicating by streaming (``pg_basebackup -R``). Which server answered is
proved by what it answers: with the standby's replay paused, a profile just
stored on the primary is missing from a query the standby serves, and there
from one the primary serves.
"""

from __future__ import annotations

import contextvars
import math
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from server.app import create_app
from server.migrate import upgrade
from server.settings import Settings
from server.store import stacks
from server.store.idspace import id_use
from server.store.replica import PRIMARY, STANDBY, ReadReplica, lsn
from server.store.repository import Store
from server.store.rollups import DAY_S, NS
from server.upkeep.jobs import build_rollups
from server.upkeep.retention import apply_retention
from tests.conftest import TEST_RETENTION
from tests.support.helpers import push, top
from tests.support.oracle import pprof_top
from tests.support.pgserver import PostgresServer, StandbyServer
from tests.support.tools import DATA

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)

Pair = tuple[PostgresServer, StandbyServer]


@pytest.fixture(scope="module")
def template(replicated_postgres: Pair) -> str:
    primary, _ = replicated_postgres
    upgrade(primary.create_database("replica_template"))
    return "replica_template"


@pytest.fixture
def urls(replicated_postgres: Pair, template: str) -> Iterator[tuple[str, str]]:
    """A fresh migrated database on the primary, and the same database's URL on the standby, replayed."""
    primary, standby = replicated_postgres
    name = f"r_{uuid.uuid4().hex[:12]}"
    primary_url = primary.create_database(name, template=template)
    standby.wait_replayed()
    yield primary_url, standby.url(name)
    standby.sql("SELECT pg_wal_replay_resume()")
    primary.drop_database(name)


def serve(primary_url: str, standby_url: str, max_lag_s: float) -> tuple[Store, TestClient]:
    """A server reading from the standby; its background check is left idle, the tests check when they mean to."""
    settings = Settings(
        database_url=primary_url,
        database_read_url=standby_url,
        read_max_lag_seconds=max_lag_s,
        read_check_interval=3600,
        retention_raw=TEST_RETENTION,
    )
    store = Store.from_url(primary_url, 4, standby_url, settings.read_max_lag_seconds, settings.read_check_interval)
    return store, TestClient(create_app(settings, store))


def replica_of(store: Store) -> ReadReplica:
    assert store.replica is not None
    return store.replica


def metric(client: TestClient, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def test_queries_are_served_by_the_standby_while_the_primary_ingests(
    replicated_postgres: Pair, urls: tuple[str, str]
) -> None:
    _, standby = replicated_postgres
    store, client = serve(*urls, max_lag_s=3600)
    with client:
        push(client, DATA / "cpu.pb.gz", service="api", time="1000")
        standby.wait_replayed()
        assert replica_of(store).check().serving
        assert top(client, type="cpu")["profiles"] == 1
        served = metric(client, 'stackyard_read_connections_total{server="standby"}')
        assert served >= 1

        # The standby stops replaying: what the primary stores now is not there yet, and queries say so.
        standby.sql("SELECT pg_wal_replay_pause()")
        push(client, DATA / "cpu2.pb.gz", service="api", time="2000")
        assert replica_of(store).check().serving  # behind, but within the allowed lag
        assert top(client, type="cpu")["profiles"] == 1
        assert metric(client, 'stackyard_read_connections_total{server="standby"}') > served
        assert metric(client, 'stackyard_read_connections_total{server="primary"}') == 0

        standby.sql("SELECT pg_wal_replay_resume()")
        standby.wait_replayed()
        status = replica_of(store).check()
        assert status.serving and status.lag_s == 0
        assert top(client, type="cpu")["profiles"] == 2
        assert metric(client, "stackyard_read_replica_up") == 1
        assert metric(client, "stackyard_read_replica_lag_seconds") == 0


def test_a_standby_further_behind_than_allowed_is_skipped(replicated_postgres: Pair, urls: tuple[str, str]) -> None:
    _, standby = replicated_postgres
    store, client = serve(*urls, max_lag_s=0)
    with client:
        push(client, DATA / "cpu.pb.gz", service="api", time="1000")
        standby.wait_replayed()
        assert replica_of(store).check().serving
        standby.sql("SELECT pg_wal_replay_pause()")
        push(client, DATA / "cpu2.pb.gz", service="api", time="2000")
        replica_of(store).check()  # sees the primary ahead: the lag counts from here
        status = replica_of(store).check()
        assert status.reachable and not status.serving and status.lag_s > 0
        assert "behind the primary" in status.reason
        # The pooled standby connection is dropped at checkout; the primary answers, with both profiles.
        assert top(client, type="cpu")["profiles"] == 2
        assert metric(client, 'stackyard_read_connections_total{server="primary"}') >= 1
        assert metric(client, "stackyard_read_replica_serving") == 0
        assert metric(client, "stackyard_read_replica_lag_seconds") > 0

        # A request that began on the primary stays there when the standby catches up mid-request:
        # what it listed on the primary may not be on the standby yet.
        request = contextvars.copy_context()
        request.run(replica_of(store).pin)
        standby.sql("SELECT pg_wal_replay_resume()")
        standby.wait_replayed()
        assert replica_of(store).check().serving
        assert request.run(replica_of(store).preferred) == PRIMARY
        assert contextvars.copy_context().run(replica_of(store).preferred) == STANDBY
        assert top(client, type="cpu")["profiles"] == 2


def test_a_standby_that_is_down_sends_queries_to_the_primary(replicated_postgres: Pair, urls: tuple[str, str]) -> None:
    _, standby = replicated_postgres
    store, client = serve(*urls, max_lag_s=3600)
    with client:
        push(client, DATA / "cpu.pb.gz", service="api", time="1000")
        standby.wait_replayed()
        assert replica_of(store).check().serving
        assert top(client, type="cpu")["profiles"] == 1
        standby.pause()
        try:
            # No check has run since: the pool's ping finds the standby gone, and the query goes to the primary.
            push(client, DATA / "cpu2.pb.gz", service="api", time="2000")
            assert top(client, type="cpu")["profiles"] == 2
            assert not replica_of(store).status.serving
            status = replica_of(store).check()
            assert not status.reachable and math.isnan(status.lag_s)
            assert metric(client, "stackyard_read_replica_up") == 0
            assert client.get("/api/v1/labels", params={"from": "0"}).status_code == 200
        finally:
            standby.resume()
        standby.wait_replayed()
        assert replica_of(store).check().serving
        assert top(client, type="cpu")["profiles"] == 2


def test_a_read_url_needs_postgresql_on_both_sides() -> None:
    with pytest.raises(ValidationError, match="needs a PostgreSQL database_url"):
        Settings(database_url="sqlite:///x.db", database_read_url="postgresql+psycopg://standby/db")
    with pytest.raises(ValidationError, match="PostgreSQL hot standby"):
        Settings(database_url="postgresql+psycopg://primary/db", database_read_url="sqlite:///x.db")


def test_wal_positions_compare_as_numbers() -> None:
    assert lsn("0/16B3748") < lsn("0/A0000000") < lsn("1/0") < lsn("16/B374D848")


def test_a_renumbering_on_the_primary_reaches_standby_readers_as_one_refusal(
    replicated_postgres: Pair, urls: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The standby's reader has caches of its own, which the primary's collection never resets: once the
    renumbering is replayed there, a query reading node ids is refused once (503), then answers from fresh
    caches what ``go tool pprof`` answers."""
    _, standby = replicated_postgres
    day0 = 1_790_000_000 - 1_790_000_000 % DAY_S
    files = [DATA / "cpu.pb.gz", DATA / "cpu2.pb.gz"]
    store, client = serve(*urls, max_lag_s=3600)
    with client:
        for offset, path in zip((600, 4200), files, strict=True):
            push(client, path, service="kept", time=str(day0 + offset))
        build_rollups(store, now_ns=(day0 + 2 * DAY_S) * NS)
        push(client, DATA / "big_cpu.pb.gz", service="gone", time=str(day0 - 40 * DAY_S))
        standby.wait_replayed()
        params = {"type": "cpu", "query": '{service="kept"}', "from": str(day0), "to": str(day0 + DAY_S)}
        expected = pprof_top(files, "cpu", "nanoseconds")
        assert top(client, **params)["total"] == expected.total  # the standby reader's caches, filled
        monkeypatch.setattr(stacks, "NODE_LIMIT", id_use(store.engine)[0].highest + 10)
        retained = Settings(database_url=urls[0], retention_raw="30d")
        assert apply_retention(store, retained, now_ns=(day0 + DAY_S) * NS)["renumbered_nodes"] > 0
        standby.wait_replayed()
        refused = client.get("/api/v1/top", params=params)
        assert refused.status_code == 503 and "renumbered" in refused.json()["error"]
        answered = top(client, **params)
        assert answered["total"] == expected.total
        assert {r["name"]: (r["flat"], r["cum"]) for r in answered["rows"]} == expected.rows
