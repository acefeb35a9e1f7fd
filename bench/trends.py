"""Fleet goroutine trends over 7 days: 1,000 instances, the query the dashboard's overview and goroutine pages ask.

Usage::

    .venv/bin/python bench/trends.py                      # 1,000 instances, 7 days (about 4 minutes)
    .venv/bin/python bench/trends.py --instances 100      # smoke

The store (a SQLite file in a temporary folder, or ``--database-url``) holds
what a week of 15-second goroutine scrapes leaves behind: for every instance,
hourly rollups of every closed hour of the 7 days and daily rollups of every
closed day (computed in bulk exactly as ``RollupTable.build`` writes them;
checked on a sample), and the raw profiles of the last two hours, the first
of each instance through the real ``ingest()``. Older raw profiles would sit
in the store too (raw retention is 7 days) but no whole-hour trend reads them:
the planner reads rollups for every closed bucket.

Each trend is timed (median of warm runs) against baselines run in the same
process on the same store: the bare fetch of the rows the trend needs (one
SELECT of the rollup rows' totals, or one GROUP BY over the raw rows), with no
grouping, aggregation or JSON. The ratio says how much the trend costs over
just reading its inputs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import DATA, median_seconds
from bench.query import (
    FLEET_PER_HOUR,
    FLEET_STEP_NS,
    HOUR_NS,
    fleet_deltas,
    fleet_offsets,
    insert_rollups,
    load,
    rollup_row,
    rss_mb,
    template_of,
)
from server.ingest.profile import ingest
from server.migrate import upgrade
from server.query.request import ProfileQuery
from server.query.timeseries import Trend, timeseries
from server.settings import Settings
from server.store.models import ProfileBlob, ProfileRow, Rollup
from server.store.repository import Store
from server.store.rollups import DAY_S, HOUR_S, NS
from server.upkeep.jobs import build_rollups

DAY_NS = DAY_S * NS
SERVICE = "fleet"
RAW_HOURS = 2


def say(message: str) -> None:
    print(message, flush=True)


def build(store: Store, settings: Settings, instances: int, end_ns: int) -> dict[str, float]:
    """The week: bulk rollups for closed buckets before the raw window, raw rows (and their rollups) in it."""
    timings: dict[str, float] = {}
    days = 7
    start_ns = end_ns - days * DAY_NS
    raw_start = end_ns - RAW_HOURS * HOUR_NS
    steps = days * 24 * FLEET_PER_HOUR
    deltas = fleet_deltas(instances, steps)
    offsets = fleet_offsets(instances)
    payload = (DATA / "goroutine.pb.gz").read_bytes()

    started = time.perf_counter()
    series_ids, first_ids = [], []
    for i in range(instances):
        labels = {"service": SERVICE, "instance": f"i-{i:04d}"}
        result = ingest(store, settings, payload, labels, kind="goroutine", time_ns=raw_start + offsets[i])
        series_ids.append(result.stored.series.id)
        first_ids.append(result.stored.id)
    timings["ingest() of each instance's first raw profile"] = time.perf_counter() - started
    template = template_of(store, first_ids[0])

    # Raw rows for the rest of the raw window (scrape 1.. of each instance in it), as ingest() writes them.
    started = time.perf_counter()
    first_raw_step = steps - RAW_HOURS * FLEET_PER_HOUR
    with store.engine.connect() as conn:
        next_id = int(conn.execute(select(func.max(ProfileRow.id))).scalar_one() or 0) + 1
    rows, blobs = [], []
    for k in range(first_raw_step + 1, steps):
        at = start_ns + k * FLEET_STEP_NS
        for i in range(instances):
            delta = int(deltas[i, k])
            rows.append(template.row(next_id, series_ids[i], at + offsets[i], delta))
            blobs.append(template.blob_row(next_id, series_ids[i], at + offsets[i], delta))
            next_id += 1
    deltas[:, first_raw_step] = 0  # that scrape is the ingested capture itself
    with store.engine.begin() as conn:
        for begin in range(0, len(rows), 20_000):
            conn.execute(insert(ProfileRow), rows[begin : begin + 20_000])
            conn.execute(insert(ProfileBlob), blobs[begin : begin + 20_000])
    timings[f"bulk insert of {len(rows):,} raw rows"] = time.perf_counter() - started

    # Rollups: the real build_rollups for the raw window's closed hour, bulk rows for everything before it.
    started = time.perf_counter()
    build_rollups(store, now_ns=end_ns)
    timings["build_rollups() over the raw window"] = time.perf_counter() - started
    started = time.perf_counter()
    bulk: list[dict[str, Any]] = []
    for i in range(instances):
        for h in range(days * 24 - RAW_HOURS):
            window = deltas[i, h * FLEET_PER_HOUR : (h + 1) * FLEET_PER_HOUR]
            bulk.append(rollup_row(template, series_ids[i], start_ns + h * HOUR_NS, window))
        for d in range(days - 1):  # the last day holds the raw window: build_rollups made (or will make) it
            window = deltas[i, d * 24 * FLEET_PER_HOUR : (d + 1) * 24 * FLEET_PER_HOUR]
            bulk.append(rollup_row(template, series_ids[i], start_ns + d * DAY_NS, window, DAY_S))
    insert_rollups(store, bulk)
    timings[f"bulk insert of {len(bulk):,} hourly and daily rollups"] = time.perf_counter() - started
    return timings


def bare_rollup_fetch(store: Store, width_s: int, start_ns: int, end_ns: int) -> int:
    """Baseline: the rollup rows' totals, fetched as they are stored (JSON text), nothing else."""
    with store.engine.connect() as conn:
        return len(
            conn.execute(
                select(Rollup.series_id, Rollup.bucket_ns, Rollup.profiles, Rollup.totals, Rollup.max_totals).where(
                    Rollup.width_s == width_s, Rollup.bucket_ns >= start_ns, Rollup.bucket_ns < end_ns
                )
            ).all()
        )


def bare_raw_group_by(store: Store, start_ns: int, end_ns: int, step_ns: int) -> int:
    """Baseline: one GROUP BY over the raw rows (average per series and step), fetched."""
    bucket = (ProfileRow.time_ns - start_ns) // step_ns
    with store.engine.connect() as conn:
        return len(
            conn.execute(
                select(ProfileRow.series_id, bucket, func.avg(ProfileRow.totals[0].as_integer()))
                .where(ProfileRow.time_ns >= start_ns, ProfileRow.time_ns < end_ns)
                .group_by(ProfileRow.series_id, bucket)
            ).all()
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database-url", default=None, help="an empty database (default: SQLite in a temp dir)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="stackyard-trends-"))
    url = args.database_url or f"sqlite:///{workdir}/stackyard.db"
    settings = Settings(database_url=url)
    upgrade(url)
    store = Store.from_url(url)
    end_ns = time.time_ns() // HOUR_NS * HOUR_NS  # the open hour starts now-ish: raw rows fill it
    say(f"# bench/trends.py: {args.instances} instances x 7 days, {load()}")
    for phase, seconds in build(store, settings, args.instances, end_ns).items():
        say(f"build: {phase}: {seconds:.1f} s")

    now_ns = end_ns + 20 * 60 * NS  # 20 minutes into the open hour
    week = (end_ns - 7 * DAY_NS, end_ns)
    day_aligned = (end_ns - 7 * DAY_NS) // DAY_NS * DAY_NS
    cases: list[tuple[str, int, int, str, str, Any]] = [
        ("7 d, step 1h, fleet total (group by service)", *week, "1h", "service", None),
        ("7 d, step 1h, per instance", *week, "1h", "instance", None),
        ("7 d to now, step 1h, fleet total", week[0], now_ns, "1h", "service", None),
        ("7 d to now, step 1h, per instance", week[0], now_ns, "1h", "instance", None),
        ("7 d, step 1d, per instance", day_aligned, day_aligned + 7 * DAY_NS, "1d", "instance", None),
        ("last 1 h, step 5m, per instance", now_ns - HOUR_NS, now_ns, "5m", "instance", None),
        ("last 1 h, step 1m, fleet total", now_ns - HOUR_NS, now_ns, "1m", "service", None),
    ]
    say("")
    say(f"{'trend':<46} {'lines':>6} {'points':>8} {'ms':>8} {'bare read ms':>13} {'ours/bare':>9} {'RSS MB':>7}")
    for name, start_ns, end, step, group_by, _ in cases:
        query = ProfileQuery.parse("goroutine", f'{{service="{SERVICE}"}}', str(start_ns / NS), str((end - 1) / NS))

        def run(q: ProfileQuery = query, s: str = step, g: str = group_by) -> Trend:
            return timeseries(store, settings, q, s, [g], "avg")

        answer = run()
        seconds = median_seconds(run, args.repeat, warmup=1)
        step_ns = {"1h": HOUR_NS, "1d": DAY_NS, "5m": 300 * NS, "1m": 60 * NS}[step]
        width = DAY_S if step == "1d" else HOUR_S

        def baseline(w: int = width, a: int = start_ns, b: int = end, s: int = step_ns) -> int:
            return bare_rollup_fetch(store, w, a, b) if s >= HOUR_NS else bare_raw_group_by(store, a, b, s)

        bare = median_seconds(baseline, args.repeat)
        lines = len(answer.series)
        points = sum(len(line.points) for line in answer.series)
        _, peak = rss_mb()
        say(
            f"{name:<46} {lines:>6} {points:>8,} {seconds * 1000:>8.1f} {bare * 1000:>13.1f} "
            f"{seconds / bare:>8.2f}x {peak:>7.0f}"
        )
    say(f"# {load()}; medians of {args.repeat} warm runs; bare read = the baseline described in the docstring")


if __name__ == "__main__":
    main()
