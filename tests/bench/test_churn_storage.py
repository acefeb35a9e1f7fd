"""bench/churn.py's PostgreSQL accounting: every byte counted once, the first pages apart.

The bench sets PostgreSQL's stored bytes per profile beside SQLite's VACUUMed
file. SQLite's empty file already holds a root page for each table and index;
PostgreSQL allocates a heap's first page and a B-tree's root on the first row.
These tests hold the accounting to what it claims, on a real server: the
parts add up to PostgreSQL's own total relation sizes, and the first pages
are the same after one profile and after a hundred and one.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from bench.churn import PgSizes, pg_sizes
from server.ingest.profile import ingest
from server.settings import Settings
from server.store.repository import Store
from tests.conftest import TEST_RETENTION
from tests.support.pgserver import PostgresServer
from tests.support.tools import DATA

START_NS = 1_790_000_000 * 10**9


def _total_relation_sizes(url: str) -> int:
    store = Store.from_url(url)
    try:
        with store.engine.connect() as conn:
            return int(
                conn.execute(
                    text(
                        "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'"
                    )
                ).scalar_one()
            )
    finally:
        store.close()


def _blob_bytes(url: str, after_ns: int) -> int:
    store = Store.from_url(url)
    try:
        with store.engine.connect() as conn:
            query = text("SELECT coalesce(sum(length(data)), 0) FROM profile_blobs WHERE time_ns > :t")
            return int(conn.execute(query, {"t": after_ns}).scalar_one())
    finally:
        store.close()


def _ingest(url: str, payload: bytes, first: int, count: int) -> None:
    store = Store.from_url(url)
    settings = Settings(database_url=url, retention_raw=TEST_RETENTION)
    try:
        for n in range(first, first + count):
            ingest(store, settings, payload, {"service": "bench"}, kind="cpu", time_ns=START_NS + n * 10 * 10**9)
    finally:
        store.close()


@pytest.mark.postgres
def test_the_parts_add_up_and_the_first_pages_do_not_grow(postgres: PostgresServer, postgres_template: str) -> None:
    name = f"churn_{uuid.uuid4().hex[:12]}"
    url = postgres.create_database(name, template=postgres_template)
    try:
        payload = (DATA / "big_cpu.pb.gz").read_bytes()
        empty = pg_sizes(url)
        _ingest(url, payload, 0, 1)
        one = pg_sizes(url)
        _ingest(url, payload, 1, 100)
        hundred_one = pg_sizes(url)

        for sizes in (empty, one, hundred_one):
            assert isinstance(sizes, PgSizes) and sizes.page == 8192
        assert hundred_one.as_stored == _total_relation_sizes(url)
        # The first profile gives every relation it writes its first pages; a hundred more add none.
        assert one.first_pages > empty.first_pages
        assert hundred_one.first_pages == one.first_pages
        # What a hundred profiles' rows take is counted in their tables, beyond those first pages.
        grown = {table: hundred_one.tables[table] - one.tables.get(table, 0) for table in hundred_one.tables}
        assert grown["profile_blobs_default"] > 0 and grown["profiles_default"] > 0
        # ... at least the blobs' own bytes, less the room left in the first page they may have filled.
        assert grown["profile_blobs_default"] >= _blob_bytes(url, after_ns=START_NS) - hundred_one.page
    finally:
        postgres.drop_database(name)
