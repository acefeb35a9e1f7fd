"""What line granularity costs: storage growth, ingest time, and function-level queries beside line-level ones.

    .venv/bin/python bench/lines.py                  # 60 varied copies of tests/data/big_cpu.pb.gz + the demo captures
    .venv/bin/python bench/lines.py --profiles 200 --repeat 9
    .venv/bin/python bench/lines.py --shape churn    # the 12 real high-churn captures of bench/churn.py

One process, SQLite, two stores built from the same payloads through the real
``server.ingest.profile.ingest()``:

- **lines**: this code, which stores each sample key's line vector (and builds
  the tree of (function, line) frames in memory when a query asks for lines);
- **functions only** (the baseline): the same code with the line work switched
  off in the process (no vectors written or filled in), which is what the store
  did before migration 0015.

Printed, as wall and CPU time (``time.process_time``, which load from other
processes does not inflate), each measure taken in turn on both stores: ingest
time per profile (first pass, where stacks are new, and the later ones: copies, or
for churn other captures) as a ratio
to the baseline; warm medians of function-level ``top`` and
``flame`` on both stores (the <= 10 % rule) and of ``top?granularity=lines``;
the first function-level ``top`` on a fresh ``Store`` (cold caches: keys are read
with one more column); bytes after VACUUM, per table, and the growth over the
payloads' raw size. Correctness: the line-level top equals ``go tool pprof -top
-lines`` of the same payloads (exit status 1 if not).

Two shapes of store: *steady* (the default), varied copies of one capture, so
every stack repeats; *churn*, the real captures of ``examples/bigservice`` in
its high-churn mode (``bench/churn_captures.py``, captured once and cached),
where few stacks repeat between captures, so the line tree and the line
frames a query builds are as big as the profiles make them.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import churn_captures
from bench.common import DATA, varied_scrapes
from server.ingest.profile import ingest
from server.migrate import upgrade
from server.pprof.frames import Frames
from server.query import service
from server.query.request import ProfileQuery
from server.settings import Settings
from server.store.appends import Appends
from server.store.database import make_engine
from server.store.dedup import Dedup
from server.store.linevectors import LineVectorTable, forget
from server.store.repository import Store
from server.store.samplekeys import Appended
from tests.support.oracle import pprof_top

START_NS = 1_764_000_000_000_000_000


@contextmanager
def functions_only() -> Iterator[None]:
    """Ingest as before line data: no line vectors written, none filled in for keys seen again."""
    vectors_of, lacking = Dedup._vectors_of, LineVectorTable.lacking

    def no_vectors(self: Dedup, frames: Frames) -> Appended:
        def append(keys: np.ndarray, samples: np.ndarray, appends: Appends) -> None:
            return None

        return append

    def none_lacking(self: LineVectorTable, keys: np.ndarray) -> np.ndarray:
        return np.zeros(keys.shape[0], dtype=bool)

    Dedup._vectors_of = no_vectors  # type: ignore[method-assign]
    LineVectorTable.lacking = none_lacking  # type: ignore[method-assign]
    try:
        yield
    finally:
        Dedup._vectors_of = vectors_of  # type: ignore[method-assign]
        LineVectorTable.lacking = lacking  # type: ignore[method-assign]


def open_store(path: Path) -> tuple[Store, Settings]:
    url = f"sqlite:///{path}"
    upgrade(url)
    return Store.from_url(url), Settings(database_url=url, retention_raw="36500d")


def clocks(function: Callable[[], object]) -> tuple[float, float]:
    """Wall and CPU seconds (``time.process_time``: this process only, so other load on the machine
    does not count) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - wall, time.process_time() - cpu


def alternate(ours: Callable[[], object], theirs: Callable[[], object], repeat: int) -> tuple[Timing, Timing]:
    """Medians of ``repeat`` runs of each, taken in turn (ours, theirs, ours...) so that load from outside
    the process falls on both alike; two warm-up runs each first."""
    for _ in range(2):
        ours()
        theirs()
    mine: list[tuple[float, float]] = []
    base: list[tuple[float, float]] = []
    for _ in range(repeat):
        mine.append(clocks(ours))
        base.append(clocks(theirs))
    return Timing.of(mine), Timing.of(base)


@dataclass(frozen=True)
class Timing:
    """Median wall and CPU seconds."""

    wall: float
    cpu: float

    @staticmethod
    def of(samples: list[tuple[float, float]]) -> Timing:
        return Timing(statistics.median(w for w, _ in samples), statistics.median(c for _, c in samples))

    def versus(self, base: Timing, scale: float = 1e3, unit: str = "ms") -> str:
        return (
            f"wall {self.wall * scale:.1f} {unit} vs {base.wall * scale:.1f} {unit} ({self.wall / base.wall:.2f}x), "
            f"CPU {self.cpu * scale:.1f} {unit} vs {base.cpu * scale:.1f} {unit} ({self.cpu / base.cpu:.2f}x)"
        )


def build_both(
    workdir: Path, payloads: list[bytes]
) -> tuple[tuple[Store, Settings], tuple[Store, Settings], dict[str, Timing]]:
    """Both stores of ``payloads``, each payload ingested into the baseline then into the line store, in
    turn; timings of the first ingest and the medians of the later ones, per store."""
    base, base_settings = open_store(workdir / "functions.db")
    store, settings = open_store(workdir / "lines.db")
    mine: list[tuple[float, float]] = []
    theirs: list[tuple[float, float]] = []
    for index, data in enumerate(payloads):
        labels, time_ns = {"service": "big"}, START_NS + index * 10_000_000_000
        with functions_only():
            theirs.append(clocks(partial(ingest, base, base_settings, data, labels, kind="cpu", time_ns=time_ns)))
        mine.append(clocks(partial(ingest, store, settings, data, labels, kind="cpu", time_ns=time_ns)))
    timings = {
        "first": Timing.of(mine[:1]),
        "base_first": Timing.of(theirs[:1]),
        "later": Timing.of(mine[1:]),
        "base_later": Timing.of(theirs[1:]),
    }
    return (store, settings), (base, base_settings), timings


def tables(path: Path, strip: bool = False) -> dict[str, int]:
    """Bytes per table (indexes included) after VACUUM; ``strip``: the line vectors dropped first, as
    before 0015."""
    if strip:
        engine = make_engine(f"sqlite:///{path}")
        forget(engine)
        engine.dispose()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("VACUUM")
        rows = conn.execute(
            "SELECT coalesce(m.tbl_name, d.name), sum(d.pgsize) FROM dbstat d "
            "LEFT JOIN sqlite_master m ON m.name = d.name GROUP BY 1"
        ).fetchall()
    return {str(name): int(size) for name, size in rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=None, help="how many (default: 60 steady, 12 churn)")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument(
        "--shape",
        choices=("steady", "churn"),
        default="steady",
        help="steady: varied copies of one capture; churn: the real high-churn captures",
    )
    args = parser.parse_args()
    if args.shape == "churn":
        args.profiles = args.profiles or 12
        directory, captures = churn_captures.ensure("churn", args.profiles)
        payloads = [capture.path(directory).read_bytes() for capture in captures]
    else:
        args.profiles = args.profiles or 60
        payloads = varied_scrapes(DATA / "big_cpu.pb.gz", args.profiles)
    raw = sum(len(p) for p in payloads)
    print(
        f"{args.profiles} CPU profiles ({args.shape}), {raw / args.profiles / 1024:.0f} KB each (gzip); "
        f"load {os.getloadavg()[0]:.1f}"
    )
    workdir = Path(tempfile.mkdtemp(prefix="stackyard-lines-"))
    (store, settings), (base, base_settings), ingested = build_both(workdir, payloads)
    print(f"ingest, first profile: {ingested['first'].versus(ingested['base_first'], 1e3, 'ms')}")
    later = "later copies" if args.shape == "steady" else "later captures (their stacks mostly new)"
    print(f"ingest, {later}: {ingested['later'].versus(ingested['base_later'], 1e3, 'ms')}")

    query = ProfileQuery.parse("cpu", '{service="big"}', str(START_NS // 10**9 - 1), str(START_NS // 10**9 + 10**6))
    measures = {
        "top": lambda s, st: service.top(s, st, query),
        "flame": lambda s, st: service.flame(s, st, query, 2048),
    }
    for name, run in measures.items():
        ours, theirs = alternate(
            lambda run=run: run(store, settings),  # type: ignore[misc]
            lambda run=run: run(base, base_settings),  # type: ignore[misc]
            args.repeat,
        )
        print(f"function {name}, warm: {ours.versus(theirs)}")
    lines, function_top = alternate(
        lambda: service.top(store, settings, query, granularity="lines"),
        lambda: service.top(store, settings, query),
        args.repeat,
    )
    print(f"top?granularity=lines, warm, against the function top of the same store: {lines.versus(function_top)}")
    cold: dict[str, list[tuple[float, float]]] = {"lines": [], "functions": []}
    for _ in range(args.repeat):  # in turn, each on a fresh Store (cold caches)
        for label, target, target_settings in (("lines", store, settings), ("functions", base, base_settings)):
            fresh = Store.from_url(str(target.engine.url))
            cold[label].append(clocks(lambda fresh=fresh, ts=target_settings: service.top(fresh, ts, query)))  # type: ignore[misc]
            fresh.close()
    print(f"function top, fresh Store: {Timing.of(cold['lines']).versus(Timing.of(cold['functions']))}")

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
