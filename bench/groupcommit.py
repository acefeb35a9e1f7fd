"""Group commit on PostgreSQL: concurrent ingest with writes sharing transactions, against one transaction each.

    .venv/bin/python bench/groupcommit.py                 # 8 threads, 3,000 profiles per mode
    .venv/bin/python bench/groupcommit.py --threads 4 --profiles 1000

Both modes run in this process against the same throwaway PostgreSQL
(tests/support/pgserver.py, fsync off), each on a fresh database with warm caches
(the same payloads ingested once before timing), so the only difference is
how rows reach the database: ``group`` is the store as shipped
(:mod:`server.store.groupcommit`), ``alone`` calls the store's batch writer
with one profile per transaction, as before group commit. Reported: profiles
per second, CPU seconds per 1,000 profiles of this process and of PostgreSQL
(all its processes, read from /proc), and the batch sizes group commit formed.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import DATA, varied_scrapes  # noqa: E402
from bench.load import CAPTURES  # noqa: E402
from server.ingest.profile import ingest  # noqa: E402
from server.migrate import upgrade  # noqa: E402
from server.settings import Settings  # noqa: E402
from server.store.repository import Store  # noqa: E402
from tests.support.pgserver import PostgresServer  # noqa: E402
from tests.support.tools import postgres_bindir  # noqa: E402


def postgres_cpu_seconds() -> float:
    """CPU time of every process named postgres (the server and its backends) so far."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if "(postgres)" in stat:
            fields = stat.rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


class _OneEach:
    """The pre-group-commit path: each profile in its own transaction, writers not waiting on each other."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def submit(self, item: Any) -> Any:
        (outcome,) = self._store._commit([item])
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def run(mode: str, url: str, payloads: Sequence[tuple[str, bytes]], threads: int, profiles: int) -> dict[str, Any]:
    upgrade(url)
    settings = Settings(database_url=url, retention_raw="36500d")
    store = Store.from_url(url)
    batches: Counter[int] = Counter()
    commit = store._commit

    def counted(pending: Sequence[Any]) -> Any:
        batches[len(pending)] += 1
        return commit(pending)

    if mode == "alone":
        store._commits = _OneEach(store)  # type: ignore[assignment]
    else:
        store._commits._write = counted

    def push(n: int) -> None:
        kind, data = payloads[n % len(payloads)]
        labels = {"service": f"svc-{n % 20:02d}", "instance": f"i-{n % 200:03d}"}
        ingest(store, settings, data, labels, kind, time.time_ns())

    for n in range(len(payloads)):  # warm: every function, stack and series known, as in steady state
        push(n)
    batches.clear()
    next_index = iter(range(profiles))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                n = next(next_index, None)
            if n is None:
                return
            push(n)

    own0, pg0, wall0 = time.process_time(), postgres_cpu_seconds(), time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    wall, own, pg = time.perf_counter() - wall0, time.process_time() - own0, postgres_cpu_seconds() - pg0
    store.close()
    return {
        "mode": mode,
        "per_second": profiles / wall,
        "own_cpu_per_1000": own / profiles * 1000,
        "pg_cpu_per_1000": pg / profiles * 1000,
        "transactions": sum(batches.values()) if mode == "group" else profiles,
        "batches": dict(sorted(batches.items())),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=8, help="concurrent ingest threads")
    parser.add_argument("--profiles", type=int, default=3000, help="profiles ingested per mode (after warm-up)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs of each mode")
    args = parser.parse_args()

    payloads = [
        (kind, data)
        for i, (kind, (name, count)) in enumerate(CAPTURES.items())
        for data in varied_scrapes(DATA / name, count, seed=i)
    ]
    postgres = PostgresServer(postgres_bindir())
    postgres.start()
    results: list[dict[str, Any]] = []
    try:
        for round_ in range(args.rounds):
            for mode in ("alone", "group"):
                url = postgres.create_database(f"gc_{mode}_{round_}")
                results.append(run(mode, url, payloads, args.threads, args.profiles))
                row = results[-1]
                print(
                    f"round {round_ + 1} {mode:5s}: {row['per_second']:7.1f} profiles/s, "
                    f"CPU per 1,000 profiles: this process {row['own_cpu_per_1000']:.2f} s, "
                    f"PostgreSQL {row['pg_cpu_per_1000']:.2f} s; transactions {row['transactions']}"
                    + (f"; batch sizes {row['batches']}" if mode == "group" else ""),
                    flush=True,
                )
    finally:
        postgres.stop()

    def best(mode: str, key: str, high: bool) -> float:
        values = [float(r[key]) for r in results if r["mode"] == mode]
        return max(values) if high else min(values)

    def ratio(key: str, high: bool) -> float:
        return best("group", key, high) / best("alone", key, high)

    print(
        f"\n{args.threads} threads, {args.profiles} profiles per run, best of {args.rounds}: "
        f"group / alone throughput {ratio('per_second', True):.2f}x; "
        f"PostgreSQL CPU per profile {ratio('pg_cpu_per_1000', False):.2f}x; "
        f"this process's CPU per profile {ratio('own_cpu_per_1000', False):.2f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
