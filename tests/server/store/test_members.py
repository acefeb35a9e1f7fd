"""Membership rows and leases on both databases, by the database's clock: alive, dead, one lease holder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, update

from server.store.database import make_engine
from server.store.members import FORGET_AFTER_NS, NS, Member, MemberTable, clock_now_ns
from server.store.models import LeaseRow, MemberRow

A, B, C = Member("a" * 16, "host-a", 101), Member("b" * 16, "host-b", 102), Member("c" * 16, "host-c", 103)
TIMEOUT_S = 15.0


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    the_engine = make_engine(database_url, pool_size=2)
    yield the_engine
    the_engine.dispose()


def _age(engine: Engine, member: Member, seconds: float) -> None:
    """Make ``member``'s last heartbeat ``seconds`` old by the database's clock (a replica that stopped beating)."""
    with engine.begin() as conn:
        now = clock_now_ns(conn)
        conn.execute(update(MemberRow).where(MemberRow.id == member.id).values(heartbeat_ns=now - int(seconds * NS)))


def test_the_database_clock_is_read_in_nanoseconds(engine: Engine) -> None:
    with engine.connect() as conn:
        first, second = clock_now_ns(conn), clock_now_ns(conn)
    assert second >= first > 10**18  # after 2001: nanoseconds, not seconds or days


def test_heartbeats_register_each_replica_once_and_every_one_sees_the_same_members(engine: Engine) -> None:
    table = MemberTable(engine)
    assert table.beat(A, TIMEOUT_S).members == (A.id,)
    table.beat(B, TIMEOUT_S)
    seen = table.beat(C, TIMEOUT_S)
    assert seen.members == (A.id, B.id, C.id)
    again = table.beat(A, TIMEOUT_S)
    assert again.members == seen.members and again.now_ns >= seen.now_ns
    rows = {row[0]: row for row in table.all()}
    assert set(rows) == {A.id, B.id, C.id}
    _, host, pid, started, heartbeat = rows[A.id]
    assert (host, pid) == ("host-a", 101) and heartbeat >= started  # the second beat kept when it started


def test_a_replica_silent_for_the_timeout_is_dead_and_comes_back_by_beating(engine: Engine) -> None:
    table = MemberTable(engine)
    for member in (A, B, C):
        table.beat(member, TIMEOUT_S)
    _age(engine, B, TIMEOUT_S + 1)
    assert table.beat(A, TIMEOUT_S).members == (A.id, C.id)
    _age(engine, C, TIMEOUT_S - 5)  # late, but not dead yet
    assert table.beat(A, TIMEOUT_S).members == (A.id, C.id)
    assert table.beat(B, TIMEOUT_S).members == (A.id, B.id, C.id)


def test_rows_of_long_dead_replicas_are_forgotten_and_a_leaving_one_goes_at_once(engine: Engine) -> None:
    table = MemberTable(engine)
    for member in (A, B, C):
        table.beat(member, TIMEOUT_S)
    _age(engine, B, FORGET_AFTER_NS / NS + 1)
    table.beat(A, TIMEOUT_S)
    assert {row[0] for row in table.all()} == {A.id, C.id}
    table.leave(C.id)
    assert table.beat(A, TIMEOUT_S).members == (A.id,)


def test_one_lease_holder_at_a_time_until_it_expires_or_leaves(engine: Engine) -> None:
    table = MemberTable(engine)
    assert table.beat(A, TIMEOUT_S, ("upkeep",)).leases == {"upkeep"}
    assert table.beat(B, TIMEOUT_S, ("upkeep",)).leases == frozenset()
    renewed = table.beat(A, TIMEOUT_S, ("upkeep",))
    assert renewed.leases == {"upkeep"}
    holder = table.holder("upkeep")
    assert holder is not None and holder[0] == A.id and holder[1] == renewed.now_ns + int(TIMEOUT_S * NS)
    # A stops renewing: once its lease has expired by the database's clock, the next asker takes it.
    with engine.begin() as conn:
        expired = clock_now_ns(conn) - NS
        conn.execute(update(LeaseRow).where(LeaseRow.name == "upkeep").values(expires_ns=expired))
    assert table.beat(C, TIMEOUT_S, ("upkeep",)).leases == {"upkeep"}
    assert table.beat(A, TIMEOUT_S, ("upkeep",)).leases == frozenset()
    # C leaves: its lease is free for the next heartbeat, without waiting for it to expire.
    table.leave(C.id)
    assert table.beat(B, TIMEOUT_S, ("upkeep",)).leases == {"upkeep"}
