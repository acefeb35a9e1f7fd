"""Retention on PostgreSQL: dropping a day's partitions against deleting the same rows in batches.

    .venv/bin/python bench/partitions.py                  # 40,000 profiles a day
    .venv/bin/python bench/partitions.py --per-day 5000   # a smoke run

One throwaway PostgreSQL (tests/support/pgserver.py, fsync off), one migrated
database with day partitions: two days of profiles and blobs are written
(each blob a production-sized capture's stored samples), then one day is expired the way
retention does it now (:func:`server.store.partitions.drop_before`) and the
other the way it did before partitions, in batches of DELETEs (the loop
SQLite still uses). Printed: seconds for each and their ratio, and what each
leaves behind for vacuum (dead tuples, and the bytes still on disk).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, text  # noqa: E402

from bench.common import DATA  # noqa: E402
from server.ingest.profile import ingest  # noqa: E402
from server.migrate import upgrade  # noqa: E402
from server.settings import Settings  # noqa: E402
from server.store.models import ProfileBlob, ProfileRow  # noqa: E402
from server.store.partitions import DAY_NS, RAW, drop_before, ensure  # noqa: E402
from server.store.repository import Store  # noqa: E402
from server.upkeep.retention import _delete_batches  # noqa: E402
from tests.support.pgserver import PostgresServer  # noqa: E402
from tests.support.tools import postgres_bindir  # noqa: E402

DAY0 = 1_788_220_800 * 10**9  # 2026-09-01T00:00:00Z


def fill(store: Store, day_ns: int, count: int, template: dict[str, Any], blob: bytes) -> None:
    """``count`` profiles spread over one day, with their blobs, in bulk (as many ingests would leave them)."""
    step = DAY_NS // count
    for first in range(0, count, 5000):
        rows = [{**template, "time_ns": day_ns + i * step} for i in range(first, min(count, first + 5000))]
        with store.engine.begin() as conn:
            ids = conn.execute(insert(ProfileRow).returning(ProfileRow.id, sort_by_parameter_order=True), rows)
            blobs = [
                {"profile_id": pid, "time_ns": row["time_ns"], "series_id": row["series_id"], "data": blob}
                for pid, row in zip(ids.scalars(), rows, strict=True)
            ]
            conn.execute(insert(ProfileBlob), blobs)


def populate(store: Store, per_day: int) -> int:
    """One ingested capture, then ``per_day`` copies of it on each of two days; returns the blob's size."""
    settings = Settings(database_url=store.engine.url.render_as_string(hide_password=False), retention_raw="36500d")
    ensure(store.engine, DAY_NS, DAY0, 2)
    stored = ingest(store, settings, (DATA / "big_cpu.pb.gz").read_bytes(), {"service": "bench"}, time_ns=DAY0)
    with store.engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM profiles WHERE id = :id"), {"id": stored.stored.id}).mappings().one()
        blob = bytes(conn.execute(text("SELECT data FROM profile_blobs")).scalar_one())
    template = {k: v for k, v in row.items() if k not in ("id", "time_ns")}
    for day in (1, 2):
        fill(store, DAY0 + day * DAY_NS, per_day, template, blob)
    return len(blob)


def leftovers(store: Store, day: str) -> tuple[int, int]:
    """Dead tuples and bytes on disk of one day's partitions (0, 0 once they are dropped)."""
    time.sleep(2)  # backends report their counts to the statistics about once a second
    with store.engine.connect() as conn:
        dead = conn.execute(
            text("SELECT coalesce(sum(n_dead_tup), 0) FROM pg_stat_user_tables WHERE relname IN (:a, :b)"),
            {"a": f"profiles_p{day}", "b": f"profile_blobs_p{day}"},
        ).scalar_one()
        size = conn.execute(
            text(
                "SELECT coalesce(sum(pg_total_relation_size(to_regclass(name))), 0) FROM unnest(ARRAY[:a, :b]) AS name"
            ),
            {"a": f"profiles_p{day}", "b": f"profile_blobs_p{day}"},
        ).scalar_one()
    return int(dead), int(size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-day", type=int, default=40_000, help="profiles stored per day")
    args = parser.parse_args()
    postgres = PostgresServer(postgres_bindir())
    postgres.start()
    try:
        url = postgres.create_database("partitions")
        upgrade(url)
        store = Store.from_url(url)
        size = populate(store, args.per_day)
        print(f"{args.per_day:,} profiles a day, blobs of {size:,} bytes", flush=True)

        started = time.perf_counter()
        with store.engine.begin() as conn:
            dropped = drop_before(conn, RAW, DAY0 + 2 * DAY_NS)  # day 0 (one profile) and day 1
        drop_s = time.perf_counter() - started
        dead_drop, size_drop = leftovers(store, "20260902")

        before = DAY0 + 3 * DAY_NS
        started = time.perf_counter()
        deleted = _delete_batches(
            store, ProfileRow, ProfileBlob, ProfileRow.id, ProfileBlob.profile_id, ProfileRow.time_ns < before
        )
        delete_s = time.perf_counter() - started
        dead_delete, size_delete = leftovers(store, "20260903")
        left = f"left: {dead_drop} dead rows, {size_drop:,} bytes"
        print(f"drop partitions:  {dropped:,} profiles in {drop_s:.3f} s; {left}")
        print(
            f"batched DELETE:   {deleted:,} profiles in {delete_s:.3f} s; "
            f"left: {dead_delete:,} dead rows, {size_delete:,} bytes until vacuum"
        )
        print(f"ratio (DELETE / drop): {delete_s / drop_s:.0f}x the time")
        store.close()
    finally:
        postgres.stop()


if __name__ == "__main__":
    main()
