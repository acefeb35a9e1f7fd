"""Scrape health published by one replica and read by the others, on both databases."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, update

from server.store.database import make_engine
from server.store.members import clock_now_ns
from server.store.models import ScrapeHealthRow
from server.store.scrapehealth import FORGET_AFTER_NS, ScrapeHealthTable, key_hash

UP = {"kind": "heap", "up": True, "last_scrape_ns": 1, "last_duration_ms": 2.5, "last_error": None}
DOWN = {**UP, "up": False, "last_error": "connection refused (GET http://10.0.0.1:6060/debug/pprof/heap)"}


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    the_engine = make_engine(database_url, pool_size=2)
    yield the_engine
    the_engine.dispose()


def test_published_health_is_read_back_by_key_and_kind_and_replaced_by_the_next(engine: Engine) -> None:
    table = ScrapeHealthTable(engine)
    table.publish("a", [("http://10.0.0.1:6060|api", "heap", UP), ("http://10.0.0.2:6060|api", "heap", UP)])
    first_ns, rows = table.read()
    assert rows[(key_hash("http://10.0.0.1:6060|api"), "heap")] == ("a", UP)
    assert len(rows) == 2
    table.publish("b", [("http://10.0.0.1:6060|api", "heap", DOWN)])  # the target moved to replica b
    _, rows = table.read()
    assert rows[(key_hash("http://10.0.0.1:6060|api"), "heap")] == ("b", DOWN)
    _, changed = table.read(since_ns=first_ns)
    assert set(changed) == {(key_hash("http://10.0.0.1:6060|api"), "heap")}


def test_key_hashes_fit_a_signed_64_bit_column_and_rows_nobody_refreshes_are_forgotten(engine: Engine) -> None:
    keys = [f"http://10.0.{n}.1:6060|svc{n}" for n in range(200)]
    assert all(-(2**63) <= key_hash(k) < 2**63 for k in keys) and any(key_hash(k) < 0 for k in keys)
    table = ScrapeHealthTable(engine)
    table.publish("a", [(key, "heap", UP) for key in keys])
    with engine.begin() as conn:
        old = clock_now_ns(conn) - FORGET_AFTER_NS - 1
        conn.execute(
            update(ScrapeHealthRow).where(ScrapeHealthRow.key_hash == key_hash(keys[0])).values(updated_ns=old)
        )
    table.publish("a", [])
    _, rows = table.read()
    assert len(rows) == len(keys) - 1 and (key_hash(keys[0]), "heap") not in rows
