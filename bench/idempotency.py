"""What idempotency keys cost: ingest with a key per profile against without, and a retry against a first write.

    .venv/bin/python bench/idempotency.py            # 300 varied scrapes per case
    .venv/bin/python bench/idempotency.py --quick    # a smoke run
    .venv/bin/python bench/idempotency.py --postgres # on a throwaway PostgreSQL instead of SQLite files

Each case ingests the same varied scrapes into two fresh SQLite files, with
and without keys, alternating in the same process, so machine noise hits both;
then repeats every keyed write (what a collector's retry does) and times it.
Printed as ratios to the keyless ingest.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import DATA, varied_scrapes
from server.ingest.profile import ingest
from server.migrate import upgrade
from server.settings import Settings
from server.store.repository import Store
from tests.support.pgserver import PostgresServer
from tests.support.tools import postgres_bindir


def _store(path: Path, postgres: PostgresServer | None = None) -> tuple[Store, Settings]:
    url = postgres.create_database(path.stem.replace("-", "_")) if postgres else f"sqlite:///{path}"
    upgrade(url)
    return Store.from_url(url), Settings(database_url=url)


def run(name: str, source: Path, scrapes: int, workdir: Path, postgres: PostgresServer | None) -> dict[str, float]:
    payloads = varied_scrapes(source, scrapes)
    plain, plain_settings = _store(workdir / f"{name}-plain.db", postgres)
    keyed, keyed_settings = _store(workdir / f"{name}-keyed.db", postgres)
    base = time.time_ns() - len(payloads) * 10 * 10**9
    spent = {"plain": 0.0, "keyed": 0.0, "retry": 0.0}
    labels = {"service": name}
    for index, payload in enumerate(payloads):
        when = base + index * 10 * 10**9
        key = f"scrape:{name}|cpu|{when}"
        started = time.perf_counter()
        ingest(plain, plain_settings, payload, dict(labels), time_ns=when)
        spent["plain"] += time.perf_counter() - started
        started = time.perf_counter()
        first = ingest(keyed, keyed_settings, payload, dict(labels), time_ns=when, idempotency_key=key)
        spent["keyed"] += time.perf_counter() - started
        started = time.perf_counter()
        again = ingest(keyed, keyed_settings, payload, dict(labels), time_ns=when, idempotency_key=key)
        spent["retry"] += time.perf_counter() - started
        assert first.stored.created and not again.stored.created and again.stored.id == first.stored.id
    plain.close()
    keyed.close()
    return {name: seconds / len(payloads) * 1000 for name, seconds in spent.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scrapes", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="30 scrapes, for a smoke run")
    parser.add_argument("--postgres", action="store_true", help="a throwaway PostgreSQL server instead of SQLite")
    args = parser.parse_args()
    scrapes = 30 if args.quick else args.scrapes
    cases = {"demo_cpu": DATA / "cpu.pb.gz", "demo_heap": DATA / "heap.pb.gz", "big_cpu": DATA / "big_cpu.pb.gz"}
    postgres = PostgresServer(postgres_bindir()) if args.postgres else None
    where = "PostgreSQL (fsync off)" if postgres else "SQLite files"
    print(f"idempotency benchmark: {scrapes} varied scrapes per case, {where}, one process")
    print(f"{'case':<10} {'no key ms':>10} {'key ms':>8} {'key/none':>9} {'retry ms':>9} {'retry/none':>11}")
    if postgres:
        postgres.start()
    with tempfile.TemporaryDirectory(prefix="stackyard-bench-") as tmp:
        for name, path in cases.items():
            r = run(name, path, scrapes, Path(tmp), postgres)
            print(
                f"{name:<10} {r['plain']:>10.2f} {r['keyed']:>8.2f} {r['keyed'] / r['plain']:>8.2f}x "
                f"{r['retry']:>9.2f} {r['retry'] / r['plain']:>10.2f}x"
            )
    if postgres:
        postgres.stop()
    print("ms = mean ingest time per profile; a retry repeats a keyed write and stores nothing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
