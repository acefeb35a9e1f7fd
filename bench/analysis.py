"""What frame filters and the sandwich view cost, against the unfiltered query and the flame graph of the same range.

    .venv/bin/python bench/analysis.py                                   # 24 h of 10 s CPU profiles (builds ~5 min)
    .venv/bin/python bench/analysis.py --hours 1                         # a smoke run
    .venv/bin/python bench/analysis.py --workdir /tmp/sy-analysis --keep # keep the store
    .venv/bin/python bench/analysis.py --workdir /tmp/sy-analysis --reuse  # query a kept store again
    .venv/bin/python bench/analysis.py --store /tmp/sy-churn/churn.db      # a high-churn store (see --store)

The store: one service, a 10 s CPU profile every 10 s for ``--hours`` hours
(8,640 profiles for 24 h), each a varied copy of the production-sized capture
``tests/data/big_cpu.pb.gz`` (``bench.common.varied_scrapes``) through the real
``ingest()``, then the hourly rollups, as bench/query.py builds its CPU series.

Measured over the whole range, each as a ratio to its baseline timed in the
same process: after two warm-up calls of each, the query and its baseline run
in turn ``--repeat`` times (so load from elsewhere on the machine falls on
both alike), and the ratio is the median of the query's CPU times
(``time.process_time``) over the median of the baseline's; the same ratio in
wall-clock time is printed beside it (on a shared machine it moves with the
other processes' load much more than CPU time does):

- ``service.top`` and ``service.flame`` (2,048 nodes) with each filter (focus,
  ignore, hide, show, show_from, and all of them at once) against the same call
  unfiltered. Aim (issue 16): at most 2x.
- ``service.sandwich_view`` of three functions (the widest leaf, a function in
  the middle of the stacks, and ``work.Run``, which recurses through 200
  others) against ``service.flame`` of the range. Aim: at most 2x.

The numbers are checked too: the filtered top's total is the unfiltered one and
its ``shown`` what the filtered flame graph's root holds; each sandwich's cum
equals the unfiltered top's cum of the function. A failed check or a missed aim
exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text

from bench.common import DATA, median_seconds, varied_scrapes
from server.ingest.profile import ingest
from server.migrate import upgrade
from server.query import service
from server.query.filters import Filters, parse_filters
from server.query.request import ProfileQuery
from server.query.selector import parse_selector
from server.settings import Settings
from server.store.repository import Store
from server.upkeep.jobs import build_rollups

HOUR_NS = 3600 * 10**9
STEP_NS = 10 * 10**9
MAX_NODES = 2048
SERVICE = "bigservice"
AIM = 2.0
RUN = "stackyard.example/bigservice/internal/work.Run"
FILTERS: list[dict[str, str]] = [
    {"focus": "internal/storage"},
    {"ignore": r"work\.Mix"},
    {"hide": r"runtime\.|work\.Mix"},
    {"show": "internal/(api|service|storage)"},
    {"show_from": "Handler"},
    {"focus": "internal/", "ignore": "codec", "hide": "runtime", "show_from": r"work\.Run"},
]


def say(message: str) -> None:
    print(message, flush=True)


def build(store: Store, settings: Settings, hours: int, distinct: int) -> int:
    """Ingest ``hours`` of 10 s profiles ending at the last midnight; the range's end (exclusive)."""
    end_ns = time.time_ns() // (24 * HOUR_NS) * (24 * HOUR_NS)
    count = hours * 360
    payloads = varied_scrapes(DATA / "big_cpu.pb.gz", distinct)
    started = time.perf_counter()
    for index in range(count):
        when = end_ns - (count - index) * STEP_NS
        ingest(store, settings, payloads[index % distinct], {"service": SERVICE}, kind="cpu", time_ns=when)
        if (index + 1) % max(1, count // 10) == 0:
            say(f"  ingest {index + 1:,}/{count:,} ({time.perf_counter() - started:.0f} s)")
    build_rollups(store, now_ns=end_ns)
    say(f"built {count:,} profiles in {time.perf_counter() - started:.0f} s")
    return end_ns


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--distinct", type=int, default=200, help="distinct varied payloads")
    parser.add_argument("--repeat", type=int, default=7, help="warm runs per query (median)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the workdir and its database")
    parser.add_argument("--reuse", action="store_true", help="query the store a --keep run left in --workdir")
    parser.add_argument(
        "--store",
        type=Path,
        default=None,
        help="query this SQLite store instead, over the --hours up to its newest profile: the high-churn one that "
        "bench/churn.py --mode churn --captures 12 --no-postgres --workdir /tmp/sy-churn --keep leaves as churn.db",
    )
    args = parser.parse_args()
    if args.reuse and args.workdir is None:
        parser.error("--reuse needs --workdir")
    if args.store is not None:
        if not args.store.is_file():
            parser.error(f"--store: no such file: {args.store}")
        return query_store(args.store, args.hours, args.repeat)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="stackyard-bench-analysis-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        return run(args, workdir)
    finally:
        if not (args.keep or args.reuse or args.workdir):
            shutil.rmtree(workdir, ignore_errors=True)


def run(args: argparse.Namespace, workdir: Path) -> int:
    url = f"sqlite:///{workdir / 'stackyard.db'}"
    settings = Settings(database_url=url, retention_raw="30d")
    meta = workdir / "meta.json"
    if args.reuse:
        end_ns = int(json.loads(meta.read_text())["end_ns"])
        hours = int(json.loads(meta.read_text())["hours"])
        store = Store.from_url(url)
    else:
        upgrade(url)
        store = Store.from_url(url)
        hours = args.hours
        end_ns = build(store, settings, hours, args.distinct)
        meta.write_text(json.dumps({"end_ns": end_ns, "hours": hours}))
    try:
        return measure(store, settings, end_ns, hours, args.repeat)
    finally:
        store.close()


def query_store(path: Path, hours: int, repeat: int) -> int:
    """Measure a store another bench built (its profiles' times are its own, so the range ends at its newest)."""
    url = f"sqlite:///{path}"
    settings = Settings(database_url=url, retention_raw="36500d")  # a kept store's profiles may be months old
    store = Store.from_url(url)
    try:
        with store.engine.connect() as conn:
            newest = conn.execute(text("SELECT max(time_ns) FROM profiles")).scalar()
        if newest is None:
            say(f"{path} holds no profile")
            return 1
        return measure(store, settings, int(newest) + 1, hours, repeat)
    finally:
        store.close()


def measure(store: Store, settings: Settings, end_ns: int, hours: int, repeat: int) -> int:
    say(f"{hours} h of CPU profiles of {SERVICE}; medians of {repeat}; load {os.getloadavg()[0]:.2f}")
    query = ProfileQuery("cpu", parse_selector(f'{{service="{SERVICE}"}}'), end_ns - hours * HOUR_NS, end_ns - 1)
    failures: list[str] = []

    def paired(function: Callable[[], object], baseline: Callable[[], object]) -> tuple[float, float]:
        """Median CPU seconds of ``function`` and of ``baseline``, run in turn; the wall-clock ratio goes to
        ``walls`` (printed beside: it moves with the load from other processes, CPU time much less)."""
        for _ in range(2):
            function()
            baseline()
        ours: list[tuple[float, float]] = []
        theirs: list[tuple[float, float]] = []
        for _ in range(repeat):
            for call, times in ((function, ours), (baseline, theirs)):
                wall, cpu = time.perf_counter(), time.process_time()
                call()
                times.append((time.process_time() - cpu, time.perf_counter() - wall))
        walls.append(statistics.median(t[1] for t in ours) / statistics.median(t[1] for t in theirs))
        return statistics.median(t[0] for t in ours), statistics.median(t[0] for t in theirs)

    walls: list[float] = []

    run_top = partial(service.top, store, settings, query)
    run_flame = partial(service.flame, store, settings, query, MAX_NODES)
    top_base = median_seconds(run_top, repeat)
    flame_base = median_seconds(run_flame, repeat)  # wall clock, alone
    plain = service.top(store, settings, query)
    say(f"alone: top {top_base * 1000:.1f} ms, flame graph {flame_base * 1000:.1f} ms ({len(plain.rows)} functions)")
    say("each ratio below divides by its baseline's median over the same turns")
    say(f"{'filter':<72} {'top':>9} {'ratio':>6} {'flame':>9} {'ratio':>6} {'wall ratios':>12}")
    for raw in FILTERS:
        filters: Filters = parse_filters(raw)
        top_s, top_b = paired(partial(service.top, store, settings, query, None, filters), run_top)
        flame_s, flame_b = paired(partial(service.flame, store, settings, query, MAX_NODES, filters=filters), run_flame)
        label = " ".join(f"{k}={v}" for k, v in raw.items())
        top_ratio, flame_ratio = top_s / top_b, flame_s / flame_b
        wall = f"{walls[-2]:5.2f}x {walls[-1]:5.2f}x"
        say(f"{label:<72} {top_s * 1000:7.1f}ms {top_ratio:5.2f}x {flame_s * 1000:7.1f}ms {flame_ratio:5.2f}x {wall}")
        filtered = service.top(store, settings, query, None, filters)
        graph = service.flame(store, settings, query, MAX_NODES, filters=filters).graph
        if filtered.total != plain.total or filtered.shown != graph.total:
            failures.append(f"{label}: total {filtered.total} shown {filtered.shown} graph {graph.total}")
        if max(top_ratio, flame_ratio) > AIM:
            failures.append(f"{label}: over {AIM}x")
    widest = plain.rows[0].name
    middle = sorted(plain.rows, key=lambda row: -row.cum)[len(plain.rows) // 10].name
    cums = {row.name: row.cum for row in plain.rows}
    say(f"{'sandwich of':<72} {'time':>9} {'vs flame':>8} {'wall ratio':>10}")
    for function in (widest, middle, RUN):
        seconds, base = paired(partial(service.sandwich_view, store, settings, query, function, MAX_NODES), run_flame)
        answer = service.sandwich_view(store, settings, query, function, MAX_NODES)
        ratio = seconds / base
        say(f"{function:<72} {seconds * 1000:7.1f}ms {ratio:7.2f}x {walls[-1]:9.2f}x")
        if answer.cum != cums[function]:
            failures.append(f"sandwich {function}: cum {answer.cum} but top says {cums[function]}")
        if ratio > AIM:
            failures.append(f"sandwich {function}: over {AIM}x")
    for failure in failures:
        say(f"FAILED: {failure}")
    say("all checks passed, every ratio within the aim" if not failures else f"{len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
