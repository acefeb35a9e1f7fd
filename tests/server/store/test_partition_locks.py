"""The partition job and a late profile's write, met on a default partition: both go through, no deadlock.

Creating a partition moves the rows of its range out of the default
partition, then attaches it, which takes the default's ACCESS EXCLUSIVE lock.
A late profile's write drops the rollups of its hour (``invalidate``), in the
default partition too while no partition covers it. If the partition job
deleted a rollup row (moving it) and only then asked for that lock, a write
that had touched the default partition before, and then came to the same
row, waited for the job's transaction while the job waited for its lock:
PostgreSQL broke the cycle by aborting one of them (``deadlock detected``,
met by a push of the crash test's burst). The job takes the lock before it
moves anything, so the write only waits for it, or it for the write.

The two transactions are driven step by step on the real database: the
write holds the default partition, the job is seen blocked behind it, then
the write comes to the row.
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select, text

from server.ingest.profile import ingest
from server.settings import Settings
from server.store.check import check_store
from server.store.models import Rollup, RollupDirty
from server.store.partitions import DAY_NS, HOURLY, RAW, partition_name, partitions
from server.store.partitions import create as create_partitions
from server.store.repository import Store
from server.store.rollups import HOUR_S, NS, invalidate
from server.upkeep.jobs import build_rollups
from tests.support.dataset import DAY0
from tests.support.tools import DATA

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)

HOUR_NS = HOUR_S * NS
DAY_START_NS = DAY0 * NS
ROLLED_HOUR_NS = DAY_START_NS + 10 * HOUR_NS  # rolled up: its hourly rollup sits in rollups_hourly_default
OTHER_HOUR_NS = DAY_START_NS + 11 * HOUR_NS  # no rollup: invalidating it only takes the partitions' locks


def _blocked_by(store: Store, waiter: int, holder: int, job: threading.Thread) -> None:
    """Return once backend ``waiter`` waits for a lock ``holder`` holds (pg_blocking_pids), or fail."""
    deadline = time.monotonic() + 60
    with store.engine.connect() as conn:
        while time.monotonic() < deadline and job.is_alive():
            blockers = conn.execute(text("SELECT pg_blocking_pids(:pid)"), {"pid": waiter}).scalar_one()
            if holder in blockers:
                return
            conn.rollback()  # a fresh snapshot of the lock table next time
            time.sleep(0.01)
    raise AssertionError("the partition job never waited for the write's transaction")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_partition_created_during_a_late_write_deadlocks_neither(store: Store, settings: Settings) -> None:
    cpu = (DATA / "cpu.pb.gz").read_bytes()
    series_id = ingest(store, settings, cpu, {"service": "api"}, None, ROLLED_HOUR_NS).stored.series.id
    assert build_rollups(store, now_ns=ROLLED_HOUR_NS + 2 * HOUR_NS)["hourly"] == 1
    with store.engine.connect() as conn:
        assert partitions(conn, "rollups_hourly") == []  # the rollup is in the default partition

    job_pid: list[int] = []
    job_started = threading.Event()
    job_errors: list[BaseException] = []
    created: list[bool] = []

    def partition_job() -> None:
        try:
            with store.engine.begin() as conn:
                job_pid.append(int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one()))
                job_started.set()
                created.append(create_partitions(conn, HOURLY, DAY_START_NS, DAY_NS))
        except BaseException as exc:  # reported by the test below
            job_errors.append(exc)
        finally:
            job_started.set()

    job = threading.Thread(target=partition_job)
    with store.engine.begin() as conn:
        write_pid = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
        # A late profile's transaction invalidates its hours in order; the first holds the default partitions.
        invalidate(conn, series_id, OTHER_HOUR_NS)
        job.start()
        assert job_started.wait(60) and job_pid, job_errors
        _blocked_by(store, job_pid[0], write_pid, job)
        # Then the hour whose rollup the job would be moving.
        invalidate(conn, series_id, ROLLED_HOUR_NS)
    job.join(60)
    assert not job.is_alive()
    assert job_errors == []
    assert created == [True]

    with store.engine.connect() as conn:
        names = [p.table for p in partitions(conn, "rollups_hourly")]
        assert names == [partition_name("rollups_hourly", DAY_START_NS, DAY_NS)]
        # The write dropped the hour's rollup and marked both hours for a rebuild.
        assert conn.execute(select(func.count()).select_from(Rollup)).scalar_one() == 0
        dirty = sorted(conn.execute(select(RollupDirty.bucket_ns)).scalars())
        assert dirty == [ROLLED_HOUR_NS, OTHER_HOUR_NS]


def _waiting_on(store: Store, holder: int, job: threading.Thread) -> None:
    """Return once some backend waits for a lock backend ``holder`` holds, or fail."""
    deadline = time.monotonic() + 60
    with store.engine.connect() as conn:
        while time.monotonic() < deadline and job.is_alive():
            waiting = conn.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE :holder = ANY(pg_blocking_pids(pid))"),
                {"holder": holder},
            ).scalar_one()
            if waiting:
                return
            conn.rollback()
            time.sleep(0.01)
    raise AssertionError("no write ever waited for the partition job")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_write_routed_to_the_default_partition_before_an_attach_is_written_again(
    store: Store, settings: Settings
) -> None:
    """A profile's insert routed to the default partition, then kept waiting for it while the partition job
    attaches the partition of its time, is refused by PostgreSQL once the attach commits (23514: the row no
    longer fits the default's constraint). Nothing of it was stored: it is written again, into the new
    partition, and stored once."""
    cpu = (DATA / "cpu.pb.gz").read_bytes()
    locked = threading.Event()
    go_on = threading.Event()
    job_errors: list[BaseException] = []
    job_pid: list[int] = []

    def partition_job() -> None:
        try:
            with store.engine.begin() as conn:
                job_pid.append(int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one()))
                defaults = ", ".join(f'"{table}_default"' for table in RAW.tables)
                conn.execute(text(f"LOCK TABLE {defaults} IN ACCESS EXCLUSIVE MODE"))  # as create() takes it
                locked.set()
                assert go_on.wait(60)
                assert create_partitions(conn, RAW, DAY_START_NS, DAY_NS)
        except BaseException as exc:  # reported by the test below
            job_errors.append(exc)
        finally:
            locked.set()

    job = threading.Thread(target=partition_job)
    job.start()
    assert locked.wait(60) and job_pid, job_errors
    stored: list[object] = []
    write_errors: list[BaseException] = []

    def write() -> None:
        try:
            stored.append(ingest(store, settings, cpu, {"service": "api"}, None, OTHER_HOUR_NS))
        except BaseException as exc:  # reported by the test below
            write_errors.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    _waiting_on(store, job_pid[0], job)  # the write's insert waits for the default partition
    go_on.set()
    job.join(60)
    writer.join(60)
    assert not job.is_alive() and not writer.is_alive()
    assert job_errors == [] and write_errors == []
    assert len(stored) == 1
    with store.engine.connect() as conn:
        assert [p.table for p in partitions(conn, "profiles")] == [partition_name("profiles", DAY_START_NS, DAY_NS)]
        found = conn.execute(text(f'SELECT count(*) FROM "{partition_name("profiles", DAY_START_NS, DAY_NS)}"'))
        assert found.scalar_one() == 1
        assert conn.execute(text('SELECT count(*) FROM "profiles_default"')).scalar_one() == 0
    assert check_store(store.engine).problems == []
