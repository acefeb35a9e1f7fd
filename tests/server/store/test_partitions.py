"""Time partitions: PostgreSQL's per-profile tables are partitioned by time, SQLite's are plain; both answer alike.

Every test runs on both databases (the ``database_url`` fixture) and checks
the same answers; on PostgreSQL it also checks where the rows are: which
partition holds them, which partitions exist, which were dropped.
"""

from __future__ import annotations

from typing import Any

import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, text

from server.ingest.dumps import ingest_dump
from server.migrate import alembic_config
from server.settings import Settings
from server.store.models import GoroutineDump, ProfileBlob, ProfileRow, Rollup, RollupBlob
from server.store.partitions import DAY_NS, is_partitioned, partition_name, partitions
from server.store.repository import Store
from server.upkeep.jobs import build_rollups, maintain_partitions
from server.upkeep.retention import apply_retention
from tests.support.dataset import DAY, DAY0, NS, answers, fill
from tests.support.helpers import push, top
from tests.support.tools import DATA

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)


def where(engine: Engine, table: str, column: str, value: int) -> list[str]:
    """PostgreSQL: the partitions holding the rows of ``table`` with ``column = value``."""
    with engine.connect() as conn:
        query = text(f"SELECT DISTINCT tableoid::regclass::text FROM {table} WHERE {column} = :v")
        return sorted(str(name) for name in conn.execute(query, {"v": value}).scalars())


def count(engine: Engine, model: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model)).scalar_one())


def test_the_migration_converts_a_store_with_data(client: TestClient, store: Store, settings: Settings) -> None:
    """0014 on a database holding data (PostgreSQL: plain tables copied into partitions): the same answers after."""
    fill(client, store, settings)
    before = answers(client)
    rows = {m.__tablename__: count(store.engine, m) for m in (ProfileRow, ProfileBlob, Rollup, RollupBlob)}
    assert rows["profiles"] == 6 and rows["rollups"] > 0
    config = alembic_config(settings.database_url)
    store.close()
    command.downgrade(config, "0013")  # the tables as every database before 0014 has them, with this data
    with store.engine.connect() as conn:
        assert not is_partitioned(conn)
        assert conn.execute(text("SELECT count(*) FROM profiles")).scalar_one() == 6
    store.close()
    command.upgrade(config, "head")
    store.reset_caches()
    assert answers(client) == before
    assert {m.__tablename__: count(store.engine, m) for m in (ProfileRow, ProfileBlob, Rollup, RollupBlob)} == rows
    if store.engine.dialect.name == "postgresql":
        with store.engine.connect() as conn:
            assert is_partitioned(conn)
            # A day's partition per day with data, for the profiles and their blobs alike.
            days = [(p.start_ns, p.end_ns) for p in partitions(conn, "profiles")]
            assert days == [(DAY0 * NS, (DAY0 + DAY) * NS), ((DAY0 + DAY) * NS, (DAY0 + 2 * DAY) * NS)]
            assert [(p.start_ns, p.end_ns) for p in partitions(conn, "profile_blobs")] == days
        assert where(store.engine, "profiles", "time_ns", (DAY0 + 25 * 3600) * NS) == ["profiles_p20260902"]
        assert where(store.engine, "goroutine_dumps", "time_ns", DAY0 * NS) == ["goroutine_dumps_p20260901"]
        month = DAY0 - DAY0 % (30 * DAY)  # daily rollups: partitions of 30 days
        assert where(store.engine, "rollups", "width_s", DAY) == [partition_name("rollups_daily", month * NS, DAY_NS)]
    # New data goes on landing where it belongs.
    push(client, DATA / "cpu.pb.gz", service="api", time=str(DAY0 + 3 * 3600))
    assert (
        top(client, type="cpu", query='{service="api"}', **{"from": str(DAY0), "to": str(DAY0 + DAY)})["profiles"] == 3
    )


def test_a_profile_late_or_far_ahead_lands_in_a_partition(client: TestClient, store: Store, settings: Settings) -> None:
    """No partition for its time is no refusal: the default partition takes it, until its own is made."""
    maintain_partitions(store, settings, now_ns=DAY0 * NS)  # today and two days ahead
    ahead = DAY0 + 200 * DAY  # half a year ahead of "now" (a client with a wrong clock)
    late = DAY0 - 30 * DAY  # a month behind, where no partition was ever made
    on_time = DAY0 + 3600
    for when in (ahead, late, on_time):
        push(client, DATA / "cpu.pb.gz", service="api", time=str(when))
    before = answers(client)
    assert before["top"]["profiles"] == 3
    postgres = store.engine.dialect.name == "postgresql"
    if postgres:
        assert where(store.engine, "profiles", "time_ns", ahead * NS) == ["profiles_default"]
        assert where(store.engine, "profile_blobs", "time_ns", late * NS) == ["profile_blobs_default"]
        assert where(store.engine, "profiles", "time_ns", on_time * NS) == ["profiles_p20260901"]
    # When that day comes, the upkeep job makes its partition and moves the rows out of the default one.
    made = maintain_partitions(store, settings, now_ns=ahead * NS)
    assert answers(client) == before
    if postgres:
        assert "profiles_p20270320" in made
        assert where(store.engine, "profiles", "time_ns", ahead * NS) == ["profiles_p20270320"]
        assert where(store.engine, "profile_blobs", "time_ns", ahead * NS) == ["profile_blobs_p20270320"]
        assert where(store.engine, "profiles", "time_ns", late * NS) == ["profiles_default"]
        assert maintain_partitions(store, settings, now_ns=ahead * NS) == []  # made already: nothing to do
    else:
        assert made == []  # SQLite: plain tables


def test_retention_drops_whole_partitions(client: TestClient, store: Store, settings: Settings) -> None:
    """Retention removes the same rows on both databases; PostgreSQL by dropping the partitions they are in."""
    maintain_partitions(store, settings, now_ns=DAY0 * NS)
    for day in (0, 1, 2):
        push(client, DATA / "cpu.pb.gz", service="api", time=str(DAY0 + day * DAY + 7200))
    push(client, DATA / "cpu.pb.gz", service="api", time=str(DAY0 - 10 * DAY))  # in the default partition
    build_rollups(store, now_ns=(DAY0 + 3 * DAY) * NS)
    dump = (DATA / "goroutine_debug2.txt").read_bytes()
    ingest_dump(store, settings, dump, {"service": "api", "instance": "a:1"}, (DAY0 + 60) * NS)
    ingest_dump(store, settings, dump, {"service": "api", "instance": "a:1"}, (DAY0 + 2 * DAY) * NS)
    short = Settings(database_url=settings.database_url, retention_raw="2d", retention_hourly="2d")
    # Two days before "now" is day 0 at 12:00: day 0 is not whole behind it yet, so nothing of it goes.
    kept = apply_retention(store, short, now_ns=(DAY0 + 2 * DAY + DAY // 2) * NS, collect=False)
    assert (kept["raw"], kept["hourly"], kept["goroutine_dumps"]) == (1, 1, 0)  # only the one 10 days old
    removed = apply_retention(store, short, now_ns=(DAY0 + 3 * DAY) * NS)
    assert (removed["raw"], removed["hourly"], removed["daily"], removed["goroutine_dumps"]) == (1, 1, 0, 1)
    listed = client.get("/api/v1/profiles", params={"type": "cpu", "from": str(DAY0 - 20 * DAY), "to": "now"})
    assert sorted(p["time"] for p in listed.json()["profiles"]) == [
        "2026-09-02T02:00:00Z",
        "2026-09-03T02:00:00Z",
    ]
    # The daily rollups (kept a year) still answer for the days whose raw profiles went.
    assert top(client, type="cpu", **{"from": str(DAY0 - 20 * DAY), "to": str(DAY0 + 3 * DAY)})["profiles"] == 4
    assert count(store.engine, ProfileBlob) == 2
    assert count(store.engine, GoroutineDump) == 1
    if store.engine.dialect.name == "postgresql":
        with store.engine.connect() as conn:
            assert [p.table for p in partitions(conn, "profiles")] == ["profiles_p20260902", "profiles_p20260903"]
            assert [p.table for p in partitions(conn, "profile_blobs")] == [
                "profile_blobs_p20260902",
                "profile_blobs_p20260903",
            ]
            assert conn.execute(text("SELECT to_regclass('rollup_blobs_hourly_p20260901')")).scalar() is None
            assert conn.execute(text("SELECT count(*) FROM profiles_default")).scalar_one() == 0
            # Nothing was deleted row by row from the partitions that stay: no dead tuples to vacuum.
            dead = conn.execute(
                text("SELECT coalesce(sum(n_dead_tup), 0) FROM pg_stat_user_tables WHERE relname LIKE 'profiles_p%'")
            ).scalar_one()
            assert dead == 0


def test_idempotency_keys_hold_across_partitions(client: TestClient, store: Store) -> None:
    """A key is one profile whatever time a retry carries: one at another time (another partition) is a replay."""
    maintain_partitions(store, Settings(database_url=str(store.engine.url)), now_ns=DAY0 * NS)
    params = {"service": "api", "idempotency_key": "push-1"}
    first = client.post(
        "/api/v1/ingest", params={**params, "time": str(DAY0 + 60)}, content=(DATA / "cpu.pb.gz").read_bytes()
    )
    again = client.post(
        "/api/v1/ingest", params={**params, "time": str(DAY0 + DAY + 60)}, content=(DATA / "cpu.pb.gz").read_bytes()
    )
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert count(store.engine, ProfileRow) == 1


def test_partition_interval_is_whole_hours() -> None:
    with pytest.raises(ValueError, match="whole number of hours"):
        Settings(partition_interval="90m")
    assert Settings(partition_interval="6h").partition_interval == "6h"
    assert DAY_NS == DAY * NS
