"""Real ``stackyard serve`` replicas on one PostgreSQL share the scraping: each target by exactly one of them.

The targets are loopback pprof endpoints that count their requests, so "scraped
once" is measured where it matters, at the scraped service, and again as stored
profiles per series. Heartbeats are short here (settings), and every wait is
for an outcome, generously, never a timed assertion.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from functools import partial

import httpx
import pytest
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.pool import NullPool

from server.store.models import ProfileRow, Series
from tests.support.browser import BrowserPage, browser, browser_page
from tests.support.faultserver import FaultServer
from tests.support.pgserver import PostgresServer, free_port
from tests.support.procs import metric, stackyard, status, wait_for
from tests.support.tcpproxy import TcpProxy
from tests.web.test_web_explore import no_errors

__all__ = ["browser", "browser_page"]  # fixtures, used by name

INTERVAL_S = 1.0
WINDOW_S = 6.0  # six scrapes of each target expected in it; twelve if two replicas scraped it
SETTINGS = {
    "STACKYARD_SCRAPE_SYNC_INTERVAL": "0.5",
    "STACKYARD_MEMBER_HEARTBEAT_INTERVAL": "0.5",
    "STACKYARD_MEMBER_TIMEOUT": "3",
}


@pytest.fixture
def shared_database(postgres: PostgresServer, postgres_template: str) -> Iterator[str]:
    name = f"r_{uuid.uuid4().hex[:12]}"
    url = postgres.create_database(name, template=postgres_template)
    yield url
    postgres.drop_database(name)


class Replica:
    def __init__(self, stack: ExitStack, database_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**SETTINGS, "STACKYARD_DATABASE_URL": database_url, "STACKYARD_PORT": str(self.port)}
        self.process: subprocess.Popen[str] = stack.enter_context(stackyard(["serve"], env))

    def ready(self) -> None:
        wait_for(lambda: status(self.url + "/readyz") == 200, 60, f"replica {self.url}", self.process)

    def metric(self, name: str) -> float:
        return metric(self.url, name)

    def member(self) -> str:
        """Its member id, as ``/metrics`` names it."""
        found = re.search(
            r'^stackyard_replica_info\{member="([^"]+)"\}', httpx.get(self.url + "/metrics", timeout=30).text, re.M
        )
        assert found is not None
        return found.group(1)


def _add_targets(replica: Replica, targets: FaultServer, count: int) -> list[str]:
    """``count`` targets registered through one replica's API (the others read them from the database)."""
    services = []
    for n in range(count):
        body = {
            "url": targets.url(f"healthy-{n}"),
            "service": f"svc{n}",
            "interval": f"{INTERVAL_S:g}s",
            "profiles": ["heap"],
        }
        response = httpx.post(replica.url + "/api/v1/targets", json=body, timeout=10)
        assert response.status_code == 201, response.text
        services.append(f"svc{n}")
    return services


def _settled(replicas: list[Replica], targets: int) -> bool:
    """Every replica sees all of them, their shares add up to every target, and exactly one leads upkeep."""
    return (
        all(r.metric("stackyard_replica_members") == len(replicas) for r in replicas)
        and all(r.metric("stackyard_replica_live") == 1 for r in replicas)
        and sum(r.metric("stackyard_targets") for r in replicas) == targets
        and sum(r.metric("stackyard_replica_leader") for r in replicas) == 1
    )


def _every_target_up(replica: Replica, count: int) -> bool:
    """The replica's target list shows every target up: its own share's health, and the others' as they share it."""
    listed = httpx.get(replica.url + "/api/v1/targets", timeout=10).json()["targets"]
    return len(listed) == count and all(target["up"] is True for target in listed)


def _owners_shown(replicas: list[Replica], count: int) -> bool:
    """Every replica's target list names the same owner for each target, a live replica, and each replica's
    share in ``/metrics`` is the number of targets named its own."""
    shown = [
        {t["service"]: t["owner"] for t in httpx.get(r.url + "/api/v1/targets", timeout=10).json()["targets"]}
        for r in replicas
    ]
    owners = list(shown[0].values())
    return (
        len(owners) == count
        and all(view == shown[0] for view in shown)
        and all(owners.count(r.member()) == r.metric("stackyard_targets") for r in replicas)
        and set(owners) <= {r.member() for r in replicas}
    )


def _stored_per_series(engine: Engine, from_ns: int, to_ns: int) -> dict[str, int]:
    with engine.connect() as conn:
        counts = conn.execute(
            select(ProfileRow.series_id, func.count(ProfileRow.id))
            .where(ProfileRow.time_ns >= from_ns, ProfileRow.time_ns < to_ns)
            .group_by(ProfileRow.series_id)
        ).all()
        labels = {int(row[0]): row[1] for row in conn.execute(select(Series.id, Series.labels))}
    return {labels[series_id]["service"]: int(n) for series_id, n in counts}


def _measure(targets: FaultServer, engine: Engine, count: int) -> tuple[dict[int, int], dict[str, int]]:
    """Requests each target received, and profiles stored per series, over one window of WINDOW_S."""
    before = dict(targets.hits)
    from_ns = time.time_ns()
    time.sleep(WINDOW_S)
    to_ns = time.time_ns()
    after = dict(targets.hits)
    time.sleep(3 * INTERVAL_S)  # the window's last scrapes are stored
    hits = {n: after.get(f"healthy-{n}", 0) - before.get(f"healthy-{n}", 0) for n in range(count)}
    return hits, _stored_per_series(engine, from_ns, to_ns)


def _once_each(hits: dict[int, int], stored: dict[str, int], count: int) -> None:
    expected = WINDOW_S / INTERVAL_S
    # One scraper per target gives `expected` (one more or less at the window's edges, a skipped tick on a
    # busy machine); two would give twice as many.
    # The messages are strings, so a failure shows every target's count (pytest shortens a dict's repr).
    assert all(expected - 3 <= n <= expected + 1 for n in hits.values()), f"requests per target: {sorted(hits.items())}"
    assert set(stored) == {f"svc{n}" for n in range(count)}, f"stored per series: {sorted(stored.items())}"
    assert all(expected - 3 <= n <= expected + 1 for n in stored.values()), f"stored: {sorted(stored.items())}"


@pytest.mark.timeout(300)
def test_replicas_split_the_targets_and_take_over_from_a_killed_one(shared_database: str) -> None:
    count = 9
    engine = create_engine(shared_database, poolclass=NullPool)
    try:
        with FaultServer() as targets, ExitStack() as stack:
            replicas = [Replica(stack, shared_database) for _ in range(3)]
            for replica in replicas:
                replica.ready()
            _add_targets(replicas[0], targets, count)
            wait_for(lambda: _settled(replicas, count), 60, "three replicas sharing every target")
            wait_for(lambda: _owners_shown(replicas, count), 60, "every replica naming each target's owner")
            _once_each(*_measure(targets, engine, count), count)
            for replica in replicas:  # whichever replica a load balancer picks shows the same health
                wait_for(partial(_every_target_up, replica, count), 60, f"every target up on {replica.url}")

            # The leader dies without a word (SIGKILL): its targets and the upkeep lease move to the others.
            (leader,) = [r for r in replicas if r.metric("stackyard_replica_leader") == 1]
            leader.process.send_signal(signal.SIGKILL)
            leader.process.wait(timeout=30)
            survivors = [r for r in replicas if r is not leader]
            wait_for(lambda: _settled(survivors, count), 60, "the two survivors sharing every target")
            wait_for(lambda: _owners_shown(survivors, count), 60, "the survivors naming the new owners")
            _once_each(*_measure(targets, engine, count), count)
    finally:
        engine.dispose()


@pytest.mark.timeout(300)
def test_a_replica_cut_off_from_the_database_stops_scraping_and_the_other_takes_its_targets(
    postgres: PostgresServer, shared_database: str
) -> None:
    count = 6
    engine = create_engine(shared_database, poolclass=NullPool)
    try:
        with FaultServer() as targets, TcpProxy(postgres.port) as proxy, ExitStack() as stack:
            direct = Replica(stack, shared_database)
            behind_proxy = shared_database.replace(f":{postgres.port}/", f":{proxy.port}/")
            cut_off = Replica(stack, behind_proxy)
            direct.ready()
            cut_off.ready()
            _add_targets(direct, targets, count)
            wait_for(lambda: _settled([direct, cut_off], count), 60, "two replicas sharing every target")

            proxy.cut()
            wait_for(lambda: cut_off.metric("stackyard_replica_live") == 0, 60, "the cut-off replica to stand down")
            wait_for(lambda: _settled([direct], count), 60, "the other replica to take every target")
            scrapes = cut_off.metric("stackyard_scrapes_total")
            _once_each(*_measure(targets, engine, count), count)
            assert cut_off.metric("stackyard_scrapes_total") == scrapes, "the cut-off replica scraped on"

            proxy.restore()
            wait_for(lambda: _settled([direct, cut_off], count), 60, "the two sharing again")
            _once_each(*_measure(targets, engine, count), count)
    finally:
        engine.dispose()


@pytest.mark.timeout(300)
def test_the_targets_page_names_each_targets_replica(shared_database: str, browser_page: BrowserPage) -> None:
    """The Targets page of either replica shows, on each target, the replica whose share it is (as the API says)."""
    count = 4
    with FaultServer() as targets, ExitStack() as stack:
        replicas = [Replica(stack, shared_database) for _ in range(2)]
        for replica in replicas:
            replica.ready()
        _add_targets(replicas[0], targets, count)
        wait_for(lambda: _settled(replicas, count), 60, "two replicas sharing every target")
        wait_for(lambda: _owners_shown(replicas, count), 60, "both replicas naming each target's owner")
        listed = httpx.get(replicas[1].url + "/api/v1/targets", timeout=10).json()["targets"]
        assert {t["owner"] for t in listed} <= {r.member() for r in replicas}
        page = browser_page.page
        page.goto(replicas[1].url + "/targets")
        page.locator(".target-owner").nth(count - 1).wait_for()
        for target in listed:
            shown = page.locator(f".target[data-id='{target['id']}'] .target-owner").inner_text()
            assert shown == f"replica {target['owner']}"
        no_errors(browser_page)
