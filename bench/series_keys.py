"""Migration 0016 (series ids into the keys) on a populated PostgreSQL database, against one copy of the same rows.

    .venv/bin/python bench/series_keys.py                   # 200,000 profiles a day, two days
    .venv/bin/python bench/series_keys.py --per-day 20000   # a smoke run

One throwaway PostgreSQL (tests/support/pgserver.py, fsync off), one migrated
database with day partitions, two days of profiles and blobs written in bulk
(as bench/partitions.py does). The database is taken back to the revision
before 0016 and migrated to 0016 again, both timed. The baseline, in the same run: copying
``profiles`` and ``profile_blobs`` once into plain tables and giving them the
new primary keys (what a conversion cannot do with less). Printed: seconds
for each, their ratio, and the plan of a read of 100 blobs by profile id
(sequential scans allowed: the planner's own choice at this size).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alembic import command  # noqa: E402
from alembic.script import ScriptDirectory  # noqa: E402
from sqlalchemy import text  # noqa: E402

from bench.partitions import populate as fill_two_days  # noqa: E402
from server.migrate import alembic_config, upgrade  # noqa: E402
from server.store.repository import Store  # noqa: E402
from tests.support.pgserver import PostgresServer  # noqa: E402
from tests.support.tools import postgres_bindir  # noqa: E402


def populate(url: str, per_day: int) -> int:
    """:func:`bench.partitions.populate` on a store of its own; returns the blob's size."""
    store = Store.from_url(url)
    try:
        return fill_two_days(store, per_day)
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-day", type=int, default=200_000, help="profiles stored per day")
    args = parser.parse_args()
    postgres = PostgresServer(postgres_bindir())
    postgres.start()
    try:
        url = postgres.create_database("series_keys")
        upgrade(url)
        size = populate(url, args.per_day)
        config = alembic_config(url)
        previous = ScriptDirectory.from_config(config).get_revision("0016").down_revision
        assert isinstance(previous, str)
        started = time.perf_counter()
        command.downgrade(config, previous)
        down_s = time.perf_counter() - started
        started = time.perf_counter()
        command.upgrade(config, "0016")
        up_s = time.perf_counter() - started

        store = Store.from_url(url)
        with store.engine.begin() as conn:
            started = time.perf_counter()
            conn.execute(text("CREATE TABLE copy_profiles AS SELECT * FROM profiles"))
            conn.execute(text("CREATE TABLE copy_blobs AS SELECT * FROM profile_blobs"))
            conn.execute(text("ALTER TABLE copy_profiles ADD PRIMARY KEY (id, time_ns, series_id)"))
            conn.execute(text("ALTER TABLE copy_blobs ADD PRIMARY KEY (profile_id, time_ns, series_id)"))
            copy_s = time.perf_counter() - started
            conn.execute(text("DROP TABLE copy_profiles, copy_blobs"))
            conn.execute(text("ANALYZE profiles, profile_blobs"))
            profiles = int(conn.execute(text("SELECT count(*) FROM profiles")).scalar_one())
            ids = list(conn.execute(text("SELECT id FROM profiles ORDER BY random() LIMIT 100")).scalars())
            plan = conn.execute(
                text(
                    "EXPLAIN (ANALYZE, COSTS OFF)"
                    " SELECT profile_id, data FROM profile_blobs WHERE profile_id = ANY(:ids)"
                ),
                {"ids": ids},
            ).scalars()
            nodes = [line.strip() for line in plan if "Scan" in line]
        store.close()
        print(f"{profiles:,} profiles over two days, blobs of {size:,} bytes")
        print(f"0016 upgrade:   {up_s:.2f} s ({up_s / profiles * 1e6:.1f} us a profile)")
        print(f"0016 downgrade: {down_s:.2f} s")
        print(f"baseline, one copy of profiles and blobs with the new keys: {copy_s:.2f} s")
        print(f"ratio (upgrade / copy): {up_s / copy_s:.1f}x")
        print("100 blobs by profile id: " + "; ".join(nodes))
    finally:
        postgres.stop()


if __name__ == "__main__":
    main()
