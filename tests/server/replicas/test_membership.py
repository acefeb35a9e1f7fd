"""Memberships of real heartbeats on a real database: one owner per target, one leader, takeover after a leave."""

from __future__ import annotations

import asyncio
import time

import pytest

from server.ingest.profile import ingest
from server.replicas.membership import Membership, Solo
from server.settings import Settings
from server.store.database import make_engine
from server.store.members import MemberTable
from server.store.repository import Store
from server.store.rollups import DAY_S, HOUR_S, NS, bucket_of
from server.upkeep.jobs import Maintenance
from tests.conftest import TEST_RETENTION
from tests.support.tools import DATA

HEARTBEAT_S, TIMEOUT_S = 0.2, 1.0
KEYS = [f"http://10.0.0.{n}:6060|svc" for n in range(60)]


async def _until(predicate: object, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _member(database_url: str, changes: list[str] | None = None) -> Membership:
    membership = Membership(MemberTable(make_engine(database_url, 1)), HEARTBEAT_S, TIMEOUT_S)
    if changes is not None:
        membership.on_change(lambda: changes.append("changed"))
    return membership


def test_members_divide_every_key_once_one_leads_and_a_leaver_hands_over(database_url: str) -> None:
    async def scenario() -> None:
        changes: list[str] = []
        a, b = _member(database_url, changes), _member(database_url)
        await a.start()
        await b.start()
        try:
            await _until(lambda: a.live() and b.live() and len(a.members()) == len(b.members()) == 2, "two members")
            await _until(lambda: a.leading() != b.leading(), "exactly one leader")
            for key in KEYS:
                assert a.owns(key) != b.owns(key), key
            assert 0 < sum(a.owns(key) for key in KEYS) < len(KEYS)
            assert changes, "the scraper is told when its share changes"
            leader, other = (a, b) if a.leading() else (b, a)
            await leader.stop()  # a clean stop leaves at once: the other takes every key and the lease
            await _until(lambda: other.members() == (other.id,) and other.leading(), "the other to take over")
            assert all(other.owns(key) for key in KEYS)
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(scenario())


def test_a_member_that_cannot_beat_stands_down_after_the_timeout(database_url: str) -> None:
    async def scenario() -> None:
        a = _member(database_url)
        await a.start()
        try:
            await _until(a.live, "the member to join")
            assert all(a.owns(key) for key in KEYS) and a.leading()
            # Its heartbeats now fail (the table's engine points at a database that does not answer).
            a.table = MemberTable(make_engine("postgresql+psycopg://nobody@127.0.0.1:9/none", 1))
            await _until(lambda: not a.live(), "the member to stand down", 30 + TIMEOUT_S)
            assert not any(a.owns(key) for key in KEYS) and not a.leading() and a.members() == ()
            assert a.failures > 0
        finally:
            a.table = MemberTable(make_engine(database_url, 1))
            await a.stop()

    asyncio.run(scenario())


def test_solo_owns_everything_and_always_leads() -> None:
    solo = Solo()
    assert solo.live() and solo.leading() and all(solo.owns(key) for key in KEYS) and solo.members() == ("solo",)


@pytest.mark.dates
def test_upkeep_runs_only_on_the_leader(sqlite_url: str) -> None:
    settings = Settings(database_url=sqlite_url, retention_raw=TEST_RETENTION)
    store = Store.from_url(sqlite_url)
    two_days_ago = time.time_ns() - 2 * DAY_S * NS
    try:
        ingest(store, settings, (DATA / "goroutine.pb.gz").read_bytes(), {"service": "demo"}, time_ns=two_days_ago)
        (series,) = store.series.all()
        hour = bucket_of(two_days_ago, HOUR_S)
        leads = False
        upkeep = Maintenance(store, settings, leading=lambda: leads)
        asyncio.run(upkeep._rollups())
        assert store.rollups.list([series.id], HOUR_S, hour, hour) == []
        leads = True
        asyncio.run(upkeep._rollups())
        assert store.rollups.list([series.id], HOUR_S, hour, hour)
    finally:
        store.close()
