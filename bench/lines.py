"""What line granularity costs: storage growth, ingest time, and function-level queries beside line-level ones.

    .venv/bin/python bench/lines.py                  # 60 varied copies of tests/data/big_cpu.pb.gz + the demo captures
    .venv/bin/python bench/lines.py --profiles 200 --repeat 9

One process, SQLite, two stores built from the same payloads through the real
``server.ingest.profile.ingest()``:

- **lines**: this code, which stores each sample key's leaf in the tree of
  (function, line) frames;
- **functions only** (the baseline): the same code with the line work switched
  off in the process (no line frames, no tree 1, keys without a line leaf), which
  is what the store did before migration 0015.

Printed: ingest time per profile (first pass, where stacks are new, and later
copies) as a ratio to the baseline; warm medians of function-level ``top`` and
``flame`` on both stores (the <= 10 % rule) and of ``top?granularity=lines``;
the first function-level ``top`` on a fresh ``Store`` (cold caches: keys are read
with one more column); bytes after VACUUM, per table, and the growth over the
payloads' raw size. Correctness: the line-level top equals ``go tool pprof -top
-lines`` of the same payloads (exit status 1 if not).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import DATA, median_seconds, varied_scrapes
from server.ingest.profile import ingest
from server.migrate import upgrade
from server.query import service
from server.query.request import ProfileQuery
from server.settings import Settings
from server.store.dedup import Dedup
from server.store.repository import Store
from tests.support.oracle import pprof_top

START_NS = 1_764_000_000_000_000_000


@contextmanager
def functions_only() -> Iterator[None]:
    """Ingest as before line data: no line frames, no tree 1 (every key's line leaf is the root, so none
    is ever filled in; the column is set NULL before sizes are measured)."""
    original = Dedup.line_leaf_nodes

    def no_leaves(self: Dedup, function_ids: np.ndarray, frames: object) -> np.ndarray:
        return np.zeros(frames.offsets.shape[0] - 1, dtype=np.int64)  # type: ignore[attr-defined]

    Dedup.line_leaf_nodes = no_leaves  # type: ignore[method-assign]
    try:
        yield
    finally:
        Dedup.line_leaf_nodes = original  # type: ignore[method-assign]


def build(path: Path, payloads: list[bytes]) -> tuple[Store, Settings, float, float]:
    """A store of ``payloads``; seconds of the first ingest and the median of the others."""
    url = f"sqlite:///{path}"
    upgrade(url)
    settings = Settings(database_url=url, retention_raw="36500d")
    store = Store.from_url(url)
    times = []
    for index, data in enumerate(payloads):
        started = time.perf_counter()
        ingest(store, settings, data, {"service": "big"}, kind="cpu", time_ns=START_NS + index * 10_000_000_000)
        times.append(time.perf_counter() - started)
    return store, settings, times[0], float(np.median(times[1:]))


def tables(path: Path, strip: bool = False) -> dict[str, int]:
    """Bytes per table (indexes included) after VACUUM; ``strip``: the line column NULL first, as before 0015."""
    with sqlite3.connect(path) as conn:
        if strip:
            conn.execute("UPDATE sample_keys SET line_node_id = NULL")
            conn.commit()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("VACUUM")
        rows = conn.execute(
            "SELECT coalesce(m.tbl_name, d.name), sum(d.pgsize) FROM dbstat d "
            "LEFT JOIN sqlite_master m ON m.name = d.name GROUP BY 1"
        ).fetchall()
    return {str(name): int(size) for name, size in rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    payloads = varied_scrapes(DATA / "big_cpu.pb.gz", args.profiles)
    raw = sum(len(p) for p in payloads)
    print(
        f"{args.profiles} CPU profiles, {raw / args.profiles / 1024:.0f} KB each (gzip); load {os.getloadavg()[0]:.1f}"
    )
    workdir = Path(tempfile.mkdtemp(prefix="stackyard-lines-"))
    with functions_only():
        base, base_settings, base_first, base_later = build(workdir / "functions.db", payloads)
    store, settings, first, later = build(workdir / "lines.db", payloads)
    print(f"ingest, first profile: {first * 1e3:.0f} ms vs {base_first * 1e3:.0f} ms ({first / base_first:.2f}x)")
    print(f"ingest, later copies:  {later * 1e3:.1f} ms vs {base_later * 1e3:.1f} ms ({later / base_later:.2f}x)")

    query = ProfileQuery.parse("cpu", '{service="big"}', str(START_NS // 10**9 - 1), str(START_NS // 10**9 + 10**6))
    measures = {
        "top": lambda s, st: service.top(s, st, query),
        "flame": lambda s, st: service.flame(s, st, query, 2048),
    }
    for name, run in measures.items():
        ours = median_seconds(lambda run=run: run(store, settings), args.repeat)  # type: ignore[misc]
        theirs = median_seconds(lambda run=run: run(base, base_settings), args.repeat)  # type: ignore[misc]
        print(f"function {name}, warm: {ours * 1e3:.1f} ms vs {theirs * 1e3:.1f} ms ({ours / theirs:.2f}x)")
    lines = median_seconds(lambda: service.top(store, settings, query, granularity="lines"), args.repeat)
    function_top = median_seconds(lambda: service.top(store, settings, query), args.repeat)
    print(f"top?granularity=lines, warm: {lines * 1e3:.1f} ms ({lines / function_top:.2f}x the function top)")
    cold = []
    for target, target_settings in ((store, settings), (base, base_settings)):
        fresh = Store.from_url(str(target.engine.url))
        started = time.perf_counter()
        service.top(fresh, target_settings, query)
        cold.append(time.perf_counter() - started)
        fresh.close()
    print(f"function top, fresh Store: {cold[0] * 1e3:.0f} ms vs {cold[1] * 1e3:.0f} ms ({cold[0] / cold[1]:.2f}x)")

    files = []
    for index, data in enumerate(payloads):
        path = workdir / f"p{index}.pb.gz"
        path.write_bytes(data)
        files.append(path)
    table = service.top(store, settings, query, granularity="lines")
    expected = pprof_top(files, "cpu", "nanoseconds", extra=("-lines",))
    ours_rows = {(f"{r.name} {r.file}:{r.line}" if r.line else r.name): (r.flat, r.cum) for r in table.rows}
    equal = table.total == expected.total and ours_rows == expected.rows
    print(f"top?granularity=lines equal to go tool pprof -top -lines: {'yes' if equal else 'NO'}")
    store.close()
    base.close()

    with_lines, without = tables(workdir / "lines.db"), tables(workdir / "functions.db", strip=True)
    grown = sum(with_lines.values()) - sum(without.values())
    for name in sorted(set(with_lines) | set(without)):
        delta = with_lines.get(name, 0) - without.get(name, 0)
        if delta:
            print(f"  {name}: {without.get(name, 0):,} -> {with_lines.get(name, 0):,} bytes ({delta:+,})")
    print(
        f"storage: {sum(without.values()):,} -> {sum(with_lines.values()):,} bytes (+{grown:,}); "
        f"stored/raw {sum(without.values()) / raw:.1%} -> {sum(with_lines.values()) / raw:.1%}"
    )
    return 0 if equal else 1


if __name__ == "__main__":
    raise SystemExit(main())
