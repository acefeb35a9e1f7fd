"""A fresh process (a new Store) answers from the database alone, loading a big stack tree from its segments."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from server.query import service
from server.query.request import ProfileQuery
from server.settings import Settings
from server.store.models import SegmentRow
from server.store.repository import Store
from server.store.stacks import FUNCTIONS
from tests.support.helpers import push
from tests.support.tools import DATA

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)


def test_fresh_store_loads_the_tree_and_answers_the_same(
    client: TestClient, store: Store, settings: Settings, database_url: str
) -> None:
    now = int(time.time())
    push(client, DATA / "big_cpu.pb.gz", time=str(now - 60))
    query = ProfileQuery.parse("cpu", None, str(now - 3600), str(now))
    warm = service.top(store, settings, query), service.flame(store, settings, query, 5000)
    fresh = Store.from_url(database_url)
    try:
        with fresh.engine.connect() as conn:
            nodes = conn.execute(select(func.sum(SegmentRow.items)).where(SegmentRow.kind == FUNCTIONS)).scalar_one()
        assert nodes > 2000  # a production-sized profile
        assert (service.top(fresh, settings, query), service.flame(fresh, settings, query, 5000)) == warm
        assert int(fresh.stacks.known.sum()) == nodes + 1  # and the root, always known
    finally:
        fresh.close()
