"""Ingest throughput and storage size, against bare gunzip + protobuf decode measured in the same run.

    .venv/bin/python bench/ingest.py            # full run (500 scrapes)
    .venv/bin/python bench/ingest.py --quick    # a smoke run

Ingest here is the whole path behind ``POST /api/v1/ingest`` minus HTTP:
decompress, parse, validate, deduplicate functions and stacks, encode the
sample blob and commit the profile to a SQLite file.
"""

from __future__ import annotations

import argparse
import gzip
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from isal import isal_zlib

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import DATA, median_seconds, varied_scrapes
from server.ingest.profile import ingest
from server.migrate import upgrade
from server.pprof import profile_pb2
from server.settings import Settings
from server.store.repository import Store


def bare_decode(payloads: list[bytes]) -> None:
    """The baseline: what any pprof consumer must do at least, gunzip and a protobuf parse (upb, in C)."""
    for data in payloads:
        message = profile_pb2.Profile()
        message.ParseFromString(gzip.decompress(data))


def bare_decode_isal(payloads: list[bytes]) -> None:
    """A second baseline: the same parse after ISA-L's inflate, which ingest itself uses.

    The aim is stated against the standard library's gunzip (what a pprof consumer does at least);
    this one shows how much of the ratio the faster inflate accounts for.
    """
    for data in payloads:
        message = profile_pb2.Profile()
        message.ParseFromString(isal_zlib.decompress(data, 16 + isal_zlib.MAX_WBITS))


def _vacuumed_size(db_file: Path) -> int:
    with sqlite3.connect(db_file) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("VACUUM")
    return db_file.stat().st_size


def throughput(name: str, path: Path, scrapes: int, workdir: Path) -> dict[str, float]:
    payloads = varied_scrapes(path, scrapes)
    url = f"sqlite:///{workdir / (name + '.db')}"
    upgrade(url)
    settings = Settings(database_url=url)
    store = Store.from_url(url)
    db_file = workdir / (name + ".db")
    base = time.time_ns() - len(payloads) * 10 * 10**9  # 10 s apart, ending now: inside raw retention
    ingest(store, settings, payloads[0], {"service": name}, time_ns=base)  # the first scrape fills the dedup tables
    started = time.perf_counter()
    tenth = max(2, len(payloads) // 10)
    for index, payload in enumerate(payloads[1:tenth], start=2):
        ingest(store, settings, payload, {"service": name}, time_ns=base + index * 10 * 10**9)
    size_at_tenth = _vacuumed_size(db_file)
    started_rest = time.perf_counter()
    for index, payload in enumerate(payloads[tenth:], start=tenth + 1):
        ingest(store, settings, payload, {"service": name}, time_ns=base + index * 10 * 10**9)
    ingest_seconds = (time.perf_counter() - started_rest) / max(1, len(payloads) - tenth)
    del started
    bare_seconds = median_seconds(lambda: bare_decode(payloads[:50]), repeat=5) / min(50, len(payloads))
    isal_seconds = median_seconds(lambda: bare_decode_isal(payloads[:50]), repeat=5) / min(50, len(payloads))
    store.close()
    raw_bytes = sum(len(p) for p in payloads) / len(payloads)
    with sqlite3.connect(db_file) as conn:
        blob_bytes = conn.execute("SELECT sum(length(data)) FROM profile_blobs").fetchone()[0] / len(payloads)
    total_size = _vacuumed_size(db_file)
    disk_bytes = (total_size - size_at_tenth) / max(1, len(payloads) - tenth)
    return {
        "raw_kb": raw_bytes / 1024,
        "ingest_ms": ingest_seconds * 1000,
        "bare_ms": bare_seconds * 1000,
        "isal_ms": isal_seconds * 1000,
        "profiles_per_s": 1 / ingest_seconds,
        "mb_per_s": raw_bytes / ingest_seconds / 1e6,
        "blob_bytes": blob_bytes,
        "disk_bytes": disk_bytes,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scrapes", type=int, default=500)
    parser.add_argument("--quick", action="store_true", help="50 scrapes, for a smoke run")
    args = parser.parse_args()
    scrapes = 50 if args.quick else args.scrapes
    cases = {"demo_cpu": DATA / "cpu.pb.gz", "demo_heap": DATA / "heap.pb.gz", "big_cpu": DATA / "big_cpu.pb.gz"}
    print(f"ingest benchmark: {scrapes} varied scrapes per case, SQLite file, one process")
    header = (
        f"{'case':<10} {'raw KB':>7} {'ingest ms':>10} {'bare ms':>8} {'ratio':>6} {'isal ms':>8} {'ratio':>6} "
        f"{'prof/s':>7} {'MB/s':>6} {'blob B':>8} {'disk B':>8} {'disk/raw':>8}"
    )
    print(header)
    with tempfile.TemporaryDirectory(prefix="stackyard-bench-") as tmp:
        for name, path in cases.items():
            r = throughput(name, path, scrapes, Path(tmp))
            print(
                f"{name:<10} {r['raw_kb']:>7.1f} {r['ingest_ms']:>10.2f} {r['bare_ms']:>8.2f} "
                f"{r['ingest_ms'] / r['bare_ms']:>5.1f}x {r['isal_ms']:>8.2f} {r['ingest_ms'] / r['isal_ms']:>5.1f}x "
                f"{r['profiles_per_s']:>7.0f} {r['mb_per_s']:>6.1f} "
                f"{r['blob_bytes']:>8.0f} {r['disk_bytes']:>8.0f} {r['disk_bytes'] / (r['raw_kb'] * 1024):>7.1%}"
            )
    print("ratio = ingest time / bare gunzip+protobuf decode time of the same bytes (lower is better);")
    print("isal ms = the same parse after ISA-L's inflate (what ingest inflates with), its ratio beside")
    print("ingest ms = mean over the last 90% of scrapes (the first tenth fills the dedup tables)")
    print("disk B = growth of the VACUUMed SQLite file per profile over the last 90% of scrapes;")
    print("disk/raw = that growth / the raw .pb.gz size of one scrape")
    return 0


if __name__ == "__main__":
    sys.exit(main())
