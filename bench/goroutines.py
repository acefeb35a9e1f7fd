"""Goroutine dumps: parse, group and store a large dump, and search a day of dumps for leaks.

    .venv/bin/python bench/goroutines.py            # 20,000-goroutine dump; a day of 1-minute dumps of 3 instances
    .venv/bin/python bench/goroutines.py --quick    # a smoke run

Dumps are made of the real goroutine blocks in tests/data/goroutine_dump_long.txt,
the leaked-worker block repeated with fresh goroutine ids. Baselines, measured
in the same run: for parsing, splitting the text into lines and counting the
``goroutine N [...]:`` headers (the least any reader of the format does); for
the leak search, reading the same (dump, stack, count) rows from the database
and nothing else.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import DATA, median_seconds
from server.goroutines.groups import group_goroutines
from server.goroutines.parse import parse_dump
from server.ingest.dumps import ingest_dump
from server.migrate import upgrade
from server.query.leaks import find_leak_suspects
from server.scrape.spec import DUMP_KIND
from server.settings import Settings
from server.store.repository import Store

MINUTE_NS = 60 * 10**9


def make_dump(leaked: int) -> bytes:
    blocks = (DATA / "goroutine_dump_long.txt").read_text().strip("\n").split("\n\n")
    others = [b for b in blocks if "main.leakyWorker" not in b]
    worker = next(b for b in blocks if "main.leakyWorker" in b)
    body = worker.split("\n", 1)[1]
    header = worker.split("\n", 1)[0].split(" ", 2)[2]  # "[chan receive, 1 minutes]:"
    leaks = [f"goroutine {100_000 + i} {header}\n{body}" for i in range(leaked)]
    return ("\n\n".join(others + leaks) + "\n").encode()


def count_headers(data: bytes) -> int:
    return sum(1 for line in data.decode().split("\n") if line.startswith("goroutine "))


def parse_bench(goroutines: int) -> None:
    data = make_dump(goroutines)
    repeat = 5
    baseline = median_seconds(lambda: count_headers(data), repeat)
    parse = median_seconds(lambda: parse_dump(data), repeat)
    both = median_seconds(lambda: group_goroutines(parse_dump(data)), repeat)
    megabytes = len(data) / 1e6
    print(f"dump: {count_headers(data):,} goroutines, {megabytes:.1f} MB")
    print(f"  split + count headers (baseline): {baseline * 1000:8.1f} ms")
    print(f"  parse_dump:                       {parse * 1000:8.1f} ms  {parse / baseline:5.1f}x baseline")
    print(f"  parse + group:                    {both * 1000:8.1f} ms  {both / baseline:5.1f}x baseline")
    print(f"  parse + group throughput:         {megabytes / both:8.1f} MB/s")


def leak_bench(instances: int, dumps: int, workdir: Path) -> None:
    url = f"sqlite:///{workdir / 'dumps.db'}"
    upgrade(url)
    settings = Settings(database_url=url, retention_raw="36500d")
    store = Store.from_url(url)
    t0 = time.time_ns() - dumps * MINUTE_NS
    bodies = {n: make_dump(n) for n in range(0, 60)}
    started = time.perf_counter()
    for i in range(dumps):
        for instance in range(instances):
            leaked = (i * 59) // dumps if instance == 0 else 3  # instance 0 leaks steadily
            labels = {"service": "bench", "instance": f"i{instance}:6060"}
            ingest_dump(store, settings, bodies[leaked], labels, t0 + i * MINUTE_NS)
    write = (time.perf_counter() - started) / (dumps * instances)
    end = t0 + dumps * MINUTE_NS

    def bare_read() -> int:
        series = [s.id for s in store.series.all() if s.kind == DUMP_KIND]
        found = store.goroutines.dumps(series, t0, end, 100_000)
        return len(store.goroutines.stack_points([d.id for d in found]))

    def search() -> int:
        return len(find_leak_suspects(store, '{service="bench"}', t0, end))

    assert search() == 1
    baseline = median_seconds(bare_read, 5, warmup=1)
    leaks = median_seconds(search, 5, warmup=1)
    last30 = median_seconds(lambda: find_leak_suspects(store, "", end - 30 * MINUTE_NS, end), 5, warmup=1)
    print(f"leak search: {instances} instances x {dumps:,} dumps ({instances * dumps:,} dumps, SQLite)")
    print(f"  store one dump (~{len(bodies[30]) // 1000} KB):    {write * 1000:8.2f} ms")
    print(f"  read the rows (baseline):         {baseline * 1000:8.1f} ms")
    print(f"  find_leak_suspects:               {leaks * 1000:8.1f} ms  {leaks / baseline:5.2f}x baseline")
    print(f"  find_leak_suspects, last 30 min:  {last30 * 1000:8.1f} ms")
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    parse_bench(2_000 if args.quick else 20_000)
    with tempfile.TemporaryDirectory(prefix="stackyard-bench-") as workdir:
        leak_bench(3, 60 if args.quick else 1_440, Path(workdir))


if __name__ == "__main__":
    main()
