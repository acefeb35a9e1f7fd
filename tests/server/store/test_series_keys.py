"""The series id in every key of the distributed tables costs no index: the hot reads by id still use one.

Migration 0016 put ``series_id`` into the primary keys of the tables a Citus
cluster would distribute (docs/scaling.md), after the ids and partition keys.
Here the statements the store really sends for the reads that run on every
query (a profile's blob, a rollup's blob, a dump's goroutine groups, a profile
by id) are captured as they go to PostgreSQL and explained with sequential
scans disabled: each table must be reached through an index, with a
condition on the id, in every partition it reads. A key that put
``series_id`` first would fail here (the id alone could not use it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select

from server.settings import Settings
from server.store.models import GoroutineDump, ProfileRow, Rollup
from server.store.repository import Store
from tests.support.dataset import fill

pytestmark = [pytest.mark.postgres, pytest.mark.dates]

#: What each read must find its rows by: the id column in the index condition.
READS: dict[str, tuple[str, str]] = {
    "blobs of profiles": ("profile_blobs", "profile_id"),
    "blobs of rollups": ("rollup_blobs", "rollup_id"),
    "groups of dumps": ("goroutine_groups", "dump_id"),
    "stack points of dumps": ("goroutine_groups", "dump_id"),
    "a profile by id": ("profiles", "id"),
}


def scans(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of a plan that reads a table (or one of its partitions)."""
    if "Relation Name" in plan:
        yield plan
    for child in plan.get("Plans", []):
        yield from scans(child)


def captured(store: Store, read: Callable[[], object]) -> list[tuple[str, Any]]:
    """The SELECTs ``read`` sends, with their parameters, as the driver receives them."""
    statements: list[tuple[str, Any]] = []

    def before(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", before)
    try:
        read()
    finally:
        event.remove(store.engine, "before_cursor_execute", before)
    return statements


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_hot_reads_by_id_use_the_keys_index(client: TestClient, store: Store, settings: Settings) -> None:
    fill(client, store, settings)
    with store.engine.connect() as conn:
        profiles = conn.execute(select(ProfileRow.id, ProfileRow.time_ns).order_by(ProfileRow.id)).all()
        rollups = list(conn.execute(select(Rollup.id)).scalars())
        dumps = list(conn.execute(select(GoroutineDump.id)).scalars())
    assert profiles and rollups and dumps
    ids = [int(p[0]) for p in profiles]
    times = (min(int(p[1]) for p in profiles), max(int(p[1]) for p in profiles))
    reads: dict[str, Callable[[], object]] = {
        "blobs of profiles": lambda: store.profiles.blobs(ids, times),
        "blobs of rollups": lambda: store.rollups.blobs(rollups),
        "groups of dumps": lambda: store.goroutines.groups(dumps),
        "stack points of dumps": lambda: store.goroutines.stack_points(dumps),
        "a profile by id": lambda: store.profiles.get(ids[0]),
    }
    assert set(reads) == set(READS)
    raw = store.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("SET enable_seqscan = off")  # the tables are tiny: make the planner show what it can use
        for name, read in reads.items():
            table, column = READS[name]
            statements = captured(store, read)
            assert len(statements) == 1, (name, statements)
            statement, parameters = statements[0]
            cursor.execute("EXPLAIN (FORMAT JSON) " + statement, parameters)
            row = cursor.fetchone()
            assert row is not None
            explained = row[0]
            plan = (explained if isinstance(explained, list) else json.loads(explained))[0]["Plan"]
            reached = list(scans(plan))
            assert reached, (name, plan)
            for node in reached:
                where = f"{name}: {node['Node Type']} on {node['Relation Name']}"
                assert node["Relation Name"].startswith(table), where
                assert node["Node Type"] in ("Index Scan", "Index Only Scan", "Bitmap Heap Scan"), where
            conditions = [n["Index Cond"] for n in _index_nodes(plan)]
            assert conditions and all(column in cond for cond in conditions), (name, conditions)
    finally:
        raw.close()


def _index_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The nodes that search an index (a bitmap heap scan's index search is a child node of its own)."""
    if "Index Cond" in plan:
        yield plan
    for child in plan.get("Plans", []):
        yield from _index_nodes(child)
