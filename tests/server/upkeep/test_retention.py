"""Retention removes old data in whole intervals; garbage collection removes what nothing references, safely."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from server.app import create_app
from server.settings import Settings
from server.store import symbols
from server.store.check import check_store
from server.store.models import Rollup, SegmentKind, SegmentRow
from server.store.repository import Store
from server.store.stacks import FUNCTIONS
from server.upkeep.jobs import build_rollups
from server.upkeep.retention import apply_retention
from tests.support.helpers import push, top
from tests.support.oracle import pprof_top
from tests.support.tools import DATA

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)

BIG, DEMO = DATA / "big_cpu.pb.gz", DATA / "cpu.pb.gz"
HOUR = 3600


def _stack_nodes(store: Store) -> int:
    with store.engine.connect() as conn:
        query = select(func.coalesce(func.sum(SegmentRow.items), 0)).where(SegmentRow.kind == FUNCTIONS)
        return int(conn.execute(query).scalar_one())


def _keys(store: Store) -> int:
    with store.engine.connect() as conn:
        keys = select(func.coalesce(func.sum(SegmentRow.items), 0)).where(SegmentRow.kind == SegmentKind.SAMPLE_KEYS)
        return int(conn.execute(keys).scalar_one())


def _functions(store: Store) -> int:
    with store.engine.connect() as conn:
        return len(symbols.concatenate(symbols.read_segments(conn)))


def _count(store: Store, table: object) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def _matches_pprof(client: TestClient, path: object, service: str) -> None:
    ours = top(client, type="cpu", sample="cpu", query=f'{{service="{service}"}}', **{"from": "now-1d"})
    expected = pprof_top([path], "cpu", "nanoseconds")  # type: ignore[list-item]
    assert ours["total"] == expected.total
    assert {r["name"]: (r["flat"], r["cum"]) for r in ours["rows"]} == expected.rows


def test_retention_then_collection(database_url: str) -> None:
    # Data goes in whole partition intervals: an hour here, so "2h" keeps a profile between 2 and 3 hours.
    settings = Settings(
        database_url=database_url,
        retention_raw="2h",
        retention_hourly="1d",
        retention_daily="2d",
        partition_interval="1h",
    )
    store = Store.from_url(database_url)
    now = time.time()
    with TestClient(create_app(settings, store)) as client:
        push(client, BIG, service="big", time=f"{now - 1.6 * HOUR:.3f}")
        push(client, DEMO, service="demo", time=f"{now - 600:.3f}")
        too_old = client.post(
            "/api/v1/ingest", params={"service": "x", "time": f"{now - 3 * HOUR:.0f}"}, content=DEMO.read_bytes()
        )
        assert too_old.status_code == 400 and "older than the raw retention (2h)" in too_old.json()["error"]
        functions_before = _functions(store)
        nodes_before, keys_before = _stack_nodes(store), _keys(store)

        # 3.1 hours old: past 2 hours and the hour it falls in; the demo's (2.2 hours old) is not yet.
        removed = apply_retention(store, settings, now_ns=int((now + 1.5 * HOUR) * 1e9))
        assert removed["raw"] == 1
        assert removed["functions"] > 2000, "the big service's functions went with its only profile"
        assert _functions(store) == functions_before - removed["functions"]
        assert _stack_nodes(store) == nodes_before - removed["stack_nodes"] < nodes_before
        assert _keys(store) == keys_before - removed["sample_keys"] < keys_before
        _matches_pprof(client, DEMO, "demo")

        # What was collected comes back when it is seen again.
        push(client, BIG, service="big", time=f"{now - 60:.3f}")
        _matches_pprof(client, BIG, "big")
    store.close()


def test_another_process_collecting_does_not_corrupt_my_ingest(database_url: str) -> None:
    settings = Settings(database_url=database_url, retention_raw="2h", partition_interval="1h")
    mine, theirs = Store.from_url(database_url), Store.from_url(database_url)
    now = time.time()
    with TestClient(create_app(settings, mine)) as client:
        push(client, BIG, service="big", time=f"{now - 1.6 * HOUR:.3f}")  # fills my caches
        apply_retention(theirs, settings, now_ns=int((now + 1.5 * HOUR) * 1e9))  # their GC deletes those rows
        push(client, BIG, service="big", time=f"{now - 60:.3f}")  # my caches are stale: must notice
    with TestClient(create_app(settings, Store.from_url(database_url))) as fresh:
        _matches_pprof(fresh, BIG, "big")
    mine.close()
    theirs.close()


def test_rollups_expire_by_resolution(client: TestClient, store: Store, settings: Settings) -> None:
    day0 = 1_790_000_000 - 1_790_000_000 % 86_400
    for hour in range(3):
        push(client, DEMO, time=str(day0 + hour * HOUR + 60))
    build_rollups(store, now_ns=(day0 + 3 * 86_400) * 10**9)
    assert _count(store, Rollup.__table__) == 4  # three hours and their day
    short = Settings(database_url=settings.database_url, retention_raw="36500d", retention_hourly="1d")
    removed = apply_retention(store, short, now_ns=(day0 + 2 * 86_400) * 10**9, collect=False)
    assert removed["hourly"] == 3 and removed["daily"] == 0
    whole_day = top(client, type="cpu", sample="cpu", **{"from": str(day0), "to": str(day0 + 86_399)})
    assert whole_day["profiles"] == 3, "the daily rollup still answers for the day"


def test_a_collection_that_drops_the_newest_line_vectors_key_leaves_the_store_checking_clean(
    database_url: str,
) -> None:
    """Collection keeps the highest line vector (appends number past it). It used to drop that vector's sample key
    when no profile named it any more, leaving a vector whose key is gone: ``stackyard check`` reported it, after
    the collection and after every later write. The key now stays with its vector."""
    settings = Settings(database_url=database_url, retention_raw="2h", partition_interval="1h")
    store = Store.from_url(database_url)
    now = time.time()
    with TestClient(create_app(settings, store)) as client:
        # Its vectors are appended in sample order, its keys numbered in (node, label set) order: the highest
        # vector is not the highest key's, and both go when the profile expires.
        push(client, DEMO, service="demo", time=f"{now - 1.6 * HOUR:.3f}")
        assert apply_retention(store, settings, now_ns=int((now + 1.5 * HOUR) * 1e9))["sample_keys"] > 0
        report = check_store(store.engine)
        assert report.ok, report.problems
        push(client, DEMO, service="demo", time=f"{now - 60:.3f}")
        report = check_store(store.engine)
        assert report.ok, report.problems
        _matches_pprof(client, DEMO, "demo")
    store.close()
