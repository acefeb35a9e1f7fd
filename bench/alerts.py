"""Cost of one alert evaluation round over a fleet, against a plain SQL read of the same rows.

    .venv/bin/python bench/alerts.py                 # 1,000 instances, a goroutine profile every 15 s for 1 h
    .venv/bin/python bench/alerts.py --instances 100 # a smoke run

Each instance's first profile is the real capture ``tests/data/goroutine.pb.gz``
through ``ingest()``; the rest are bulk-inserted rows (profile row + blob, as
``ingest()`` writes them) whose totals differ by +-8 of noise, and every tenth
instance leaks 20 goroutines per minute. Three rules watch the whole fleet:
``value > N`` (5 min lookback), ``increase(30m) > 50%`` and ``slope(10m) > 10/min``.

Measured: the median wall time of ``Evaluator.evaluate`` (all three rules,
state upserts and history in one transaction) in steady state, and as the
baseline in the same run, a plain SQL SELECT of exactly the profile rows the
round reads (series, shape, time, duration and totals of the longest window,
which the three rules share; totals as undecoded text), by the same index.
The ratio is our overhead over fetching the data. Correctness: the slope rule must fire on exactly the
leaking tenth, and the value rule on none. The load average is printed:
other work on the machine shows up in every timing.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import DATA, median_seconds
from server.alerts.rules import parse_rule
from server.alerts.service import Alerting
from server.ingest.profile import ingest
from server.migrate import upgrade
from server.settings import Settings
from server.store.models import ProfileBlob, ProfileRow
from server.store.repository import Store

NS = 10**9
STEP_S = 15


def build(store: Store, settings: Settings, instances: int, hours: float, end_ns: int) -> int:
    capture = (DATA / "goroutine.pb.gz").read_bytes()
    steps = int(hours * 3600 / STEP_S)
    start_ns = end_ns - steps * STEP_S * NS
    written = 0
    for i in range(instances):
        labels = {"service": "fleet", "instance": f"i-{i:04d}"}
        first = ingest(store, settings, capture, labels, "goroutine", start_ns)
        with store.engine.begin() as conn:
            row = conn.execute(select(ProfileRow).where(ProfileRow.id == first.stored.id)).one()
            blob = conn.execute(select(ProfileBlob.data).where(ProfileBlob.profile_id == row.id)).scalar_one()
            base = row.totals[0]
            leak = i % 10 == 0
            rows = []
            for step in range(1, steps):
                noise = (step * 7919 + i * 104729) % 17 - 8
                growth = step * STEP_S * 20 // 60 if leak else 0
                rows.append(
                    {
                        "series_id": row.series_id,
                        "shape_id": row.shape_id,
                        "time_ns": start_ns + step * STEP_S * NS,
                        "duration_ns": 0,
                        "period": row.period,
                        "samples": row.samples,
                        "totals": [base + noise + growth],
                    }
                )
            ids = conn.execute(insert(ProfileRow).returning(ProfileRow.id), rows).scalars().all()
            conn.execute(
                insert(ProfileBlob),
                [
                    {"profile_id": pid, "time_ns": r["time_ns"], "series_id": r["series_id"], "data": blob}
                    for pid, r in zip(ids, rows, strict=True)
                ],
            )
        written += steps
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database-url", default=None, help="an empty database (default: a SQLite file in /tmp)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="sy-alerts-"))
    url = args.database_url or f"sqlite:///{workdir / 'stackyard.db'}"
    upgrade(url)
    settings = Settings(database_url=url, retention_raw="30d")
    store = Store.from_url(url)
    end_ns = (time.time_ns() // (STEP_S * NS)) * STEP_S * NS
    started = time.perf_counter()
    profiles = build(store, settings, args.instances, args.hours, end_ns)
    print(f"built {args.instances} instances, {profiles:,} profiles in {time.perf_counter() - started:.1f} s")
    rules = [
        parse_rule({"name": "Many", "query": '{service="fleet"}', "type": "goroutine", "expr": "value > 100000"}),
        parse_rule({"name": "Grow", "query": '{service="fleet"}', "type": "goroutine", "expr": "increase(30m) > 50%"}),
        parse_rule({"name": "Slope", "query": '{service="fleet"}', "type": "goroutine", "expr": "slope(10m) > 10/min"}),
    ]
    alerting = Alerting(store, settings, rules)
    now = end_ns
    result = alerting.evaluator.evaluate(now)
    firing = {(t.rule, t.labels["instance"]) for t in result.transitions if t.to_state == "firing"}
    leaking = {f"i-{i:04d}" for i in range(0, args.instances, 10)}
    slope_firing = {instance for rule, instance in firing if rule == "Slope"}
    ok = slope_firing == leaking and not any(rule == "Many" for rule, _ in firing)
    print(f"first round: {len(firing)} alerts fired; slope rule on the leaking tenth only: {slope_firing == leaking}")
    round_s = median_seconds(lambda: alerting.evaluator.evaluate(now), args.repeat, warmup=1)
    windows = [(now - 30 * 60 * NS, now + 1)]  # the rules share one read of their longest window

    series_ids = [sid for (sid,) in store.engine.connect().execute(text("SELECT id FROM series")).all()]

    def plain_read() -> int:
        """The rows of the longest window, by the same index, through SQLAlchemy Core with no processing."""
        count = 0
        with store.engine.connect() as conn:
            for start, end in windows:
                for offset in range(0, len(series_ids), 500):
                    part = series_ids[offset : offset + 500]
                    query = text(
                        "SELECT series_id, shape_id, time_ns, duration_ns, totals FROM profiles "
                        f"WHERE series_id IN ({','.join(str(i) for i in part)}) AND time_ns >= :s AND time_ns < :e"
                    )
                    count += len(conn.execute(query, {"s": start, "e": end}).all())
        return count

    rows = plain_read()
    read_s = median_seconds(plain_read, args.repeat, warmup=1)
    load = os.getloadavg()
    print(f"database: {store.engine.dialect.name}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"rows one round reads: {rows:,}")
    print(f"evaluation round (3 rules, {args.instances} instances): {round_s * 1000:.0f} ms (median of {args.repeat})")
    print(f"plain SQL read of the same rows:                {read_s * 1000:.0f} ms")
    print(f"ratio round / read: {round_s / read_s:.2f}x; share of a 15 s interval: {round_s / 15 * 100:.1f} %")
    store.close()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
