"""Query latency over long ranges (flame graph, top, trends), against ``go tool pprof -proto`` merging the same files.

    .venv/bin/python bench/query.py            # full run: 7 d of 10 s CPU profiles, 1,000 instances x 24 h fleet
    .venv/bin/python bench/query.py --quick    # a smoke run: 1 d of CPU profiles, 100 instances x 2 h
    .venv/bin/python bench/query.py --workdir /tmp/sy-query --keep     # keep the database and the pprof files
    .venv/bin/python bench/query.py --workdir /tmp/sy-query --reuse    # query a kept store again (no build)
    .venv/bin/python bench/query.py --reuse --workdir /tmp/sy-query --cprofile /tmp/sy-prof   # + one cProfile'd run
    .venv/bin/python bench/query.py --database-url postgresql+psycopg://user@host/db   # an empty database instead

The store is built in the same run, ending at the last UTC midnight (``END``;
raw retention is raised to 30 d so the oldest of the 7 days stays ingestible):

- **CPU**: one service (``service="bigservice"``), a 10 s CPU profile every
  10 s for 7 days (60,480 profiles). The payloads are ``--distinct`` varied
  copies of the production-sized real capture ``tests/data/big_cpu.pb.gz``
  (``bench.common.varied_scrapes``: values rescaled, a tenth of the samples
  dropped, re-encoded; ~190 KB each), used in turn, and **every one of the
  60,480 goes through the real ``server.ingest.profile.ingest()``** (gunzip, decode,
  dedup, blob, one commit each). Then ``build_rollups(store, now_ns=END)``
  builds the hourly and daily rollups, timed: it is part of the cost.
- **Fleet**: 1,000 instances (``service="fleet"``, ``instance="i-0000"``...),
  a goroutine profile every 15 s for 24 h (5.76 M profiles). Each instance's
  first profile is the real capture ``tests/data/goroutine.pb.gz`` through
  ``ingest()``; the other 5,759 per instance are bulk-inserted rows (profile
  row + blob, as ``ingest()`` writes them) that differ from it only in the
  count of the ``main.leakyWorker`` stack: +-8 of noise, and for every tenth
  instance a leak of one goroutine per minute. Totals always equal the blob's
  sum. Then ``build_rollups(store, now_ns=END)`` builds the 24,000 hourly and
  1,000 daily rollups, timed. (``--fleet-rollups bulk`` computes the hourly
  ones in bulk instead, after checking on a timed sample of instances that
  they are byte-identical to what ``RollupTable.build`` writes: for fleets
  too big to wait for.)

Measured (medians of ``--repeat`` warm runs, anything over a second timed
once; the process's peak RSS per query): ``service.flame`` (2,048 nodes)
and ``service.top`` over the last 1 h, 24 h and 7 d of CPU, aligned on
whole hours and shifted by 7 min 13 s (two raw edges); the first flame
graph on a fresh ``Store`` (empty caches); the same query with rollups off,
which is also checked to give the same answer; ``timeseries`` over the
fleet with a 1 h step (group by ``service``, by ``instance``) and a 5 min
step; a goroutine flame graph over the whole fleet. The machine's load
average is printed too: other work on it shows up in every timing.

Baselines in the same run: ``go tool pprof -proto FILE...`` merging the
very payloads that were ingested, written to files (all of them up to
``--pprof-max-files``; beyond it, and for the shifted 24 h and 7 d ranges,
the time is extrapolated per profile from the largest merge measured, and
labelled so), and for trends a plain SQL GROUP BY over the raw rows. Correctness: the top table (total, every flat
and cum) of each range pprof merged must equal ``go tool pprof -top`` of
that merge, as tests/support/oracle.py compares; a mismatch exits with status 1.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import func, insert, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import DATA, median_seconds, varied_scrapes
from server.api.schemas.query import FlameGraphOut
from server.errors import TooExpensive
from server.ingest.profile import ingest
from server.migrate import upgrade
from server.query import service
from server.query.aggregate import select_profiles
from server.query.request import ProfileQuery
from server.query.selector import parse_selector
from server.query.timeseries import Trend, timeseries
from server.settings import Settings
from server.store import blob, samples
from server.store.models import ProfileBlob, ProfileRow, Rollup, RollupBlob
from server.store.repository import Store
from server.store.rollups import DAY_S, HOUR_S, NS
from server.upkeep.jobs import build_rollups
from tests.support.oracle import pprof_top

IntArray = npt.NDArray[np.int64]

HOUR_NS = HOUR_S * NS
DAY_NS = DAY_S * NS
CPU_STEP_NS = 10 * NS
FLEET_STEP_NS = 15 * NS
FLEET_PER_HOUR = HOUR_NS // FLEET_STEP_NS
SHIFT_NS = 433 * NS  # 7 min 13 s: the unaligned ranges end (and start) mid-hour
CPU_SERVICE = "bigservice"
FLEET_SERVICE = "fleet"
MAX_NODES = 2048
LEAK_EVERY = 10  # every tenth instance leaks one goroutine per minute
NOISE = 8


# -- small helpers -----------------------------------------------------------------------------------------------


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MB."""
    found: dict[str, float] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            name, amount, _unit = line.split()
            found[name.rstrip(":")] = int(amount) / 1024
    return found.get("VmRSS", 0.0), found.get("VmHWM", 0.0)


def reset_peak_rss() -> None:
    """Start a new peak (VmHWM) for this process, so the next reading is the peak of what ran since."""
    with suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def load() -> str:
    """The machine's load average: other work on a 2-core machine shows up in every timing."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def say(message: str) -> None:
    print(message, flush=True)


def progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


def measure(function: Callable[[], object], repeat: int) -> tuple[float, int]:
    """(seconds, runs): a median of ``repeat`` warm runs, or the one run when that takes over a second."""
    started = time.perf_counter()
    function()
    first = time.perf_counter() - started
    if first > 1.0 or repeat <= 1:
        return first, 1
    return median_seconds(function, repeat, warmup=1), repeat


def go_binary() -> str:
    found = shutil.which("go") or ("/usr/bin/go" if Path("/usr/bin/go").exists() else None)
    if found is None:
        raise SystemExit("go is not installed: the pprof baseline needs `go tool pprof`")
    return found


def fmt_ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def fmt_s(seconds: float | None, estimated: bool = False) -> str:
    return "-" if seconds is None else f"{'~' if estimated else ''}{seconds:.1f}"


def fmt_ratio(numerator: float | None, denominator: float | None, estimated: bool = False) -> str:
    if numerator is None or denominator is None or denominator <= 0:
        return "-"
    ratio = numerator / denominator
    return f"{'~' if estimated else ''}{ratio:.0f}x" if ratio >= 10 else f"{'~' if estimated else ''}{ratio:.2g}x"


# -- configuration -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    cpu_days: float
    distinct: int
    fleet_instances: int
    fleet_hours: int
    pprof_max_files: int
    repeat: int
    fleet_rollups: str

    @property
    def cpu_profiles(self) -> int:
        return round(self.cpu_days * DAY_NS / CPU_STEP_NS)


@dataclass
class Build:
    """What the build wrote, enough to query it (also saved to meta.json for --reuse)."""

    url: str
    end_ns: int
    cpu_start_ns: int
    cpu_count: int
    distinct: int
    fleet_start_ns: int
    fleet_instances: int
    fleet_hours: int
    phases: list[tuple[str, str, float, str]] = field(default_factory=list)  # name, items, seconds, note

    def cpu_indexes(self, start_ns: int, end_ns: int) -> range:
        """Positions of the CPU profiles with ``start <= time < end``."""
        first = max(0, -(-(start_ns - self.cpu_start_ns) // CPU_STEP_NS))
        stop = min(self.cpu_count, max(0, -(-(end_ns - self.cpu_start_ns) // CPU_STEP_NS)))
        return range(first, max(first, stop))

    def save(self, path: Path) -> None:
        data = {k: v for k, v in self.__dict__.items() if k != "phases"}
        path.write_text(json.dumps(data, indent=1))

    @classmethod
    def load(cls, path: Path) -> Build:
        return cls(**json.loads(path.read_text()))


# -- the CPU series: every profile through ingest() ---------------------------------------------------------------


def build_cpu(store: Store, settings: Settings, build: Build, payloads: list[bytes]) -> None:
    labels = {"service": CPU_SERVICE}
    started = time.perf_counter()
    step = max(1, build.cpu_count // 10)
    for index in range(build.cpu_count):
        ingest(
            store,
            settings,
            payloads[index % len(payloads)],
            labels,
            kind="cpu",
            time_ns=build.cpu_start_ns + index * CPU_STEP_NS,
        )
        if (index + 1) % step == 0:
            progress(f"CPU ingest {index + 1:,}/{build.cpu_count:,} ({time.perf_counter() - started:.0f} s)")
    seconds = time.perf_counter() - started
    build.phases.append(
        (
            "CPU: ingest() of every profile",
            f"{build.cpu_count:,}",
            seconds,
            f"{seconds / build.cpu_count * 1000:.2f} ms/profile, {len(payloads)} distinct payloads",
        )
    )


# -- the fleet: first profile through ingest(), the rest bulk-inserted ---------------------------------------------


@dataclass
class Template:
    """The stored form of goroutine.pb.gz: its profile row and blob arrays, and which row is the leak."""

    shape_id: int
    duration_ns: int
    period: int
    samples: int
    keys: IntArray
    values: IntArray
    leak_row: int
    base_total: int
    encoded: dict[int, bytes] = field(default_factory=dict)

    def row(self, profile_id: int, series_id: int, time_ns: int, delta: int) -> dict[str, Any]:
        """The ``profiles`` row of this capture stored at ``time_ns`` with ``delta`` more goroutines."""
        return {
            "id": profile_id,
            "series_id": series_id,
            "shape_id": self.shape_id,
            "time_ns": time_ns,
            "duration_ns": self.duration_ns,
            "period": self.period,
            "samples": self.samples,
            "totals": [self.base_total + delta],
        }

    def blob_row(self, profile_id: int, series_id: int, time_ns: int, delta: int) -> dict[str, Any]:
        """The ``profile_blobs`` row beside :meth:`row`'s."""
        return {"profile_id": profile_id, "time_ns": time_ns, "series_id": series_id, "data": self.blob_with(delta)}

    def blob_with(self, delta: int) -> bytes:
        """The blob ingest() writes for this profile with ``delta`` more goroutines in the leak stack."""
        found = self.encoded.get(delta)
        if found is None:
            values = self.values.copy()
            values[self.leak_row, 0] += delta
            found = self.encoded[delta] = blob.encode(samples.SampleArrays(self.keys, values))
        return found


def template_of(store: Store, profile_id: int) -> Template:
    """The stored goroutine capture as a template for bulk rows: its row, blob arrays and leak stack."""
    meta = store.profiles.get(profile_id)
    assert meta is not None
    arrays = blob.decode(store.profiles.blobs([profile_id])[profile_id])
    return Template(
        shape_id=meta.shape_id,
        duration_ns=meta.duration_ns,
        period=meta.period,
        samples=meta.samples,
        keys=arrays.keys,
        values=arrays.values.copy(),
        leak_row=int(np.argmax(arrays.values[:, 0])),
        base_total=meta.totals[0],
    )


def fleet_deltas(instances: int, steps: int, seed: int = 7) -> IntArray:
    """Goroutines added to the leak stack per (instance, scrape): noise, and a slow leak on every tenth instance."""
    rng = np.random.default_rng(seed)
    deltas = rng.integers(-NOISE, NOISE + 1, size=(instances, steps), dtype=np.int64)
    leaking = (np.arange(instances) % LEAK_EVERY == 0).astype(np.int64)
    deltas += leaking[:, None] * (np.arange(steps, dtype=np.int64) // 4)[None, :]  # +1 per minute
    deltas[:, 0] = 0  # the first scrape is the capture itself, through ingest()
    return deltas


def fleet_offsets(instances: int, seed: int = 11) -> list[int]:
    """Each instance's scrape phase within the 15 s interval (whole milliseconds)."""
    rng = np.random.default_rng(seed)
    return [int(v) * 1_000_000 for v in rng.integers(0, FLEET_STEP_NS // 1_000_000, size=instances)]


def build_fleet(store: Store, settings: Settings, build: Build, bulk_rollups: bool) -> None:
    instances, hours = build.fleet_instances, build.fleet_hours
    steps = hours * FLEET_PER_HOUR
    deltas = fleet_deltas(instances, steps)
    offsets = fleet_offsets(instances)
    payload = (DATA / "goroutine.pb.gz").read_bytes()

    started = time.perf_counter()
    series_ids: list[int] = []
    first_ids: list[int] = []
    for i in range(instances):
        labels = {"service": FLEET_SERVICE, "instance": f"i-{i:04d}"}
        result = ingest(store, settings, payload, labels, kind="goroutine", time_ns=build.fleet_start_ns + offsets[i])
        series_ids.append(result.stored.series.id)
        first_ids.append(result.stored.id)
    seconds = time.perf_counter() - started
    build.phases.append(
        ("fleet: ingest() of each first profile", f"{instances:,}", seconds, f"{seconds / instances * 1000:.2f} ms")
    )

    template = template_of(store, first_ids[0])
    started = time.perf_counter()
    inserted = _insert_fleet_rows(store, build, template, series_ids, offsets, deltas)
    seconds = time.perf_counter() - started
    build.phases.append(
        (
            "fleet: bulk insert of profile rows + blobs",
            f"{inserted:,}",
            seconds,
            f"{inserted / seconds:,.0f} rows/s, {len(template.encoded)} distinct blobs",
        )
    )
    if bulk_rollups:
        _fleet_hourly_rollups(store, build, template, series_ids, deltas)


def _insert_fleet_rows(
    store: Store,
    build: Build,
    template: Template,
    series_ids: list[int],
    offsets: list[int],
    deltas: IntArray,
) -> int:
    """Scrapes 1.. of every instance in time order, as they would arrive; explicit ids tie a row to its blob."""
    instances, steps = deltas.shape
    with store.engine.connect() as conn:
        next_id = int(conn.execute(select(func.max(ProfileRow.id))).scalar_one() or 0) + 1
    per_chunk = max(1, 60_000 // instances)
    columns = deltas.T.tolist()  # by step, then instance
    inserted = 0
    report_every = max(1, (steps // per_chunk) // 10)
    for chunk_number, first in enumerate(range(1, steps, per_chunk)):
        rows: list[dict[str, Any]] = []
        blobs: list[dict[str, Any]] = []
        for k in range(first, min(steps, first + per_chunk)):
            at = build.fleet_start_ns + k * FLEET_STEP_NS
            for i, delta in enumerate(columns[k]):
                rows.append(template.row(next_id, series_ids[i], at + offsets[i], delta))
                blobs.append(template.blob_row(next_id, series_ids[i], at + offsets[i], delta))
                next_id += 1
        with store.engine.begin() as conn:
            conn.execute(insert(ProfileRow), rows)
            conn.execute(insert(ProfileBlob), blobs)
        inserted += len(rows)
        if chunk_number % report_every == 0:
            progress(f"fleet rows {inserted:,}/{instances * (steps - 1):,}")
    if store.engine.dialect.name == "postgresql":
        with store.engine.begin() as conn:
            conn.execute(
                text("SELECT setval(pg_get_serial_sequence('profiles', 'id'), (SELECT max(id) FROM profiles))")
            )
    return inserted


def rollup_row(
    template: Template, series_id: int, bucket_ns: int, window: IntArray, width_s: int = HOUR_S
) -> dict[str, Any]:
    """One instance's rollup (leak deltas ``window``) as ``RollupTable.build`` writes it; hourly unless told."""
    count = int(window.shape[0])
    values = template.values * count
    values[template.leak_row, 0] += int(window.sum())
    merged = samples.aggregate(template.keys, values)
    return {
        "series_id": series_id,
        "width_s": width_s,
        "bucket_ns": bucket_ns,
        "shape_id": template.shape_id,
        "profiles": count,
        "duration_ns": template.duration_ns * count,
        "period": template.period,
        "samples": len(merged),
        "totals": [template.base_total * count + int(window.sum())],
        "max_totals": [template.base_total + int(window.max())],
        "data": blob.encode(merged),
    }


_ROLLUP_FIELDS = (
    "series_id",
    "bucket_ns",
    "shape_id",
    "profiles",
    "duration_ns",
    "period",
    "samples",
    "totals",
    "max_totals",
)


def insert_rollups(store: Store, rows: list[dict[str, Any]]) -> None:
    """Rollup rows (with their ``data``) as ``RollupTable.build`` stores them: the row, then its blob."""
    with store.engine.begin() as conn:
        for start in range(0, len(rows), 5000):
            chunk = rows[start : start + 5000]
            ids = conn.execute(
                insert(Rollup).returning(Rollup.id, sort_by_parameter_order=True),
                [{k: v for k, v in row.items() if k != "data"} for row in chunk],
            ).scalars()
            conn.execute(
                insert(RollupBlob),
                [
                    {
                        "rollup_id": rid,
                        "width_s": row["width_s"],
                        "bucket_ns": row["bucket_ns"],
                        "series_id": row["series_id"],
                        "data": row["data"],
                    }
                    for rid, row in zip(ids, chunk, strict=True)
                ],
            )


def _fleet_hourly_rollups(
    store: Store, build: Build, template: Template, series_ids: list[int], deltas: IntArray
) -> None:
    instances, hours = build.fleet_instances, build.fleet_hours
    sample = max(1, instances // 100)  # includes instance 0, a leaking one
    started = time.perf_counter()
    built = 0
    for i in range(sample):
        for h in range(hours):
            built += store.rollups.build(series_ids[i], HOUR_S, build.fleet_start_ns + h * HOUR_NS)
    seconds = time.perf_counter() - started
    per_bucket = seconds / (sample * hours)
    build.phases.append(
        (
            "fleet: RollupTable.build, a sample",
            f"{sample * hours:,} h",
            seconds,
            f"{per_bucket * 1000:.1f} ms/bucket -> ~{per_bucket * instances * hours:,.0f} s for all "
            f"{instances * hours:,} (extrapolated)",
        )
    )
    assert built == sample * hours, f"expected {sample * hours} rollups from the sample, got {built}"

    started = time.perf_counter()
    rows = [
        rollup_row(
            template,
            series_ids[i],
            build.fleet_start_ns + h * HOUR_NS,
            deltas[i, h * FLEET_PER_HOUR : (h + 1) * FLEET_PER_HOUR],
        )
        for i in range(instances)
        for h in range(hours)
    ]
    with store.engine.connect() as conn:
        query = select(*(getattr(Rollup, name) for name in _ROLLUP_FIELDS), RollupBlob.data).where(
            Rollup.series_id.in_(series_ids[:sample]), Rollup.width_s == HOUR_S, RollupBlob.rollup_id == Rollup.id
        )
        stored = {(int(r[0]), int(r[1])): tuple(r) for r in conn.execute(query)}
    for row in rows[: sample * hours]:
        expected = (*(row[name] for name in _ROLLUP_FIELDS), row["data"])
        got = stored.get((row["series_id"], row["bucket_ns"]))
        if got is None or tuple(bytes(v) if isinstance(v, bytes | memoryview) else v for v in got) != expected:
            raise SystemExit(f"bulk rollup for series {row['series_id']} differs from RollupTable.build's: {got}")
    rest = rows[sample * hours :]
    insert_rollups(store, rest)
    seconds = time.perf_counter() - started
    build.phases.append(
        (
            "fleet: hourly rollups computed in bulk",
            f"{len(rest):,} h",
            seconds,
            f"byte-identical to build() on the {sample * hours} sampled",
        )
    )


# -- building everything -----------------------------------------------------------------------------------------


def make_build(store: Store, settings: Settings, config: Config, url: str, payloads: list[bytes]) -> Build:
    end_ns = time.time_ns() // DAY_NS * DAY_NS
    build = Build(
        url=url,
        end_ns=end_ns,
        cpu_start_ns=end_ns - config.cpu_profiles * CPU_STEP_NS,
        cpu_count=config.cpu_profiles,
        distinct=config.distinct,
        fleet_start_ns=end_ns - config.fleet_hours * HOUR_NS,
        fleet_instances=config.fleet_instances,
        fleet_hours=config.fleet_hours,
    )
    build_cpu(store, settings, build, payloads)
    started = time.perf_counter()
    written = build_rollups(store, now_ns=end_ns)
    build.phases.append(
        (
            "CPU: build_rollups(now=END)",
            f"{written['hourly']} h + {written['daily']} d",
            time.perf_counter() - started,
            "",
        )
    )
    build_fleet(store, settings, build, bulk_rollups=config.fleet_rollups == "bulk")
    started = time.perf_counter()
    written = build_rollups(store, now_ns=end_ns)
    build.phases.append(
        (
            "fleet: build_rollups(now=END)",
            f"{written['hourly']:,} h + {written['daily']:,} d",
            time.perf_counter() - started,
            "the real path, incl. its scans for pending buckets"
            + ("; hours were bulk-computed" if config.fleet_rollups == "bulk" else ""),
        )
    )
    started = time.perf_counter()
    written = build_rollups(store, now_ns=end_ns)
    assert written == {"hourly": 0, "daily": 0, "deferred": 0}, written
    build.phases.append(
        (
            "build_rollups with nothing left to do",
            "0",
            time.perf_counter() - started,
            "the idle cost of every maintenance run",
        )
    )
    return build


def database_size(store: Store, url: str) -> str:
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :])
        size = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
        return f"{size / 1e6:,.0f} MB (SQLite file + WAL)"
    with store.engine.connect() as conn:
        size = int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())
    return f"{size / 1e6:,.0f} MB (pg_database_size)"


# -- the pprof baseline ------------------------------------------------------------------------------------------


@dataclass
class PprofRun:
    files: int
    seconds: float
    runs: int
    peak_rss_mb: float
    output: Path


def write_files(directory: Path, payloads: list[bytes], indexes: Sequence[int]) -> list[str]:
    """The ingested payload of every position, one file each (named by position), relative to ``directory``."""
    names = []
    for index in indexes:
        name = f"{index:06d}.pb.gz"
        path = directory / name
        payload = payloads[index % len(payloads)]
        if not path.exists() or path.stat().st_size != len(payload):
            path.write_bytes(payload)
        names.append(name)
    return names


# Runs the command and reports its wall time and peak RSS (wait4, which covers the pprof child of `go tool`).
# A small helper process rather than this one: a child's peak RSS starts from its parent's at fork.
_MEASURE = """
import os, subprocess, sys, time
report, command = sys.argv[1], sys.argv[2:]
started = time.perf_counter()
child = subprocess.Popen(command)
_, status, usage = os.wait4(child.pid, 0)
elapsed = time.perf_counter() - started
with open(report, "w") as out:
    out.write(f"{elapsed} {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}")
"""


def pprof_merge(go: str, directory: Path, names: list[str], output: Path, repeat: int) -> PprofRun:
    """``go tool pprof -proto`` of the files: median wall time over ``repeat`` runs and the peak RSS of any run."""
    times: list[float] = []
    peak = 0.0
    report = output.with_suffix(".rusage")
    for _ in range(repeat):
        with output.open("wb") as out, tempfile.TemporaryFile() as err:
            command = [sys.executable, "-c", _MEASURE, str(report), go, "tool", "pprof", "-proto", *names]
            subprocess.run(command, cwd=directory, stdout=out, stderr=err, check=True)
            elapsed, max_rss_kb, code = report.read_text().split()
            if int(code) != 0:
                err.seek(0)
                raise SystemExit(f"go tool pprof -proto failed: {err.read().decode()[-2000:]}")
        times.append(float(elapsed))
        peak = max(peak, int(max_rss_kb) / 1024)
    return PprofRun(len(names), statistics.median(times), repeat, peak, output)


# -- queries -----------------------------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    start_ns: int
    end_ns: int  # exclusive
    aligned: bool
    length_ns: int

    def query(self, kind: str, selector: str, sample: str | None, rollups: bool = True) -> ProfileQuery:
        return ProfileQuery(
            kind, parse_selector(selector), self.start_ns, self.end_ns - 1, sample=sample, rollups=rollups
        )


@dataclass
class Result:
    case: Case
    parts: str = ""
    profiles: int = 0
    flame_s: float = 0.0
    top_s: float = 0.0
    fresh_s: float = 0.0
    raw_s: float | None = None
    peak_mb: float = 0.0
    raw_peak_mb: float = 0.0
    flame_kb: float = 0.0
    pprof: PprofRun | None = None
    pprof_estimate: float | None = None
    pprof_note: str = ""


@dataclass
class Checks:
    items: list[tuple[str, bool, str]] = field(default_factory=list)

    def add(self, what: str, ok: bool, detail: str = "") -> None:
        self.items.append((what, ok, detail))
        progress(f"check {what}: {'ok' if ok else 'FAILED ' + detail}")

    @property
    def failed(self) -> bool:
        return not all(ok for _, ok, _ in self.items)


def cases(end_ns: int, lengths: Sequence[tuple[str, int]]) -> list[Case]:
    found = []
    for name, length in lengths:
        found.append(Case(f"{name} aligned", end_ns - length, end_ns, True, length))
        found.append(Case(f"{name} -7m13s", end_ns - length - SHIFT_NS, end_ns - SHIFT_NS, False, length))
    return found


def describe_parts(store: Store, settings: Settings, query: ProfileQuery) -> tuple[str, int]:
    parts = select_profiles(store, query, settings.max_query_profiles)
    days = sum(1 for p in parts if p.width_s == DAY_S)
    hours = sum(1 for p in parts if p.width_s == HOUR_S)
    raw = sum(1 for p in parts if not p.width_s)
    return f"{days}d+{hours}h+{raw}r", sum(p.profiles for p in parts)


def top_map(result: service.TopTable) -> tuple[int, dict[str, tuple[int, int]]]:
    return int(result.total), {row.name: (int(row.flat), int(row.cum)) for row in result.rows}


@contextmanager
def maybe_profiled(directory: Path | None, name: str) -> Iterator[None]:
    if directory is None:
        yield
        return
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
        profiler.dump_stats(directory / f"{name}.prof")


def run_cpu_queries(
    store: Store, settings: Settings, build: Build, config: Config, profile_dir: Path | None
) -> list[Result]:
    selector = f'{{service="{CPU_SERVICE}"}}'
    results = []
    for case in cases(build.end_ns, [("1 h", HOUR_NS), ("24 h", DAY_NS), ("7 d", 7 * DAY_NS)]):
        query = case.query("cpu", selector, "cpu")
        result = Result(case)
        result.parts, result.profiles = describe_parts(store, settings, query)
        reset_peak_rss()
        result.flame_s, _ = measure(partial(service.flame, store, settings, query, MAX_NODES), config.repeat)
        result.top_s, _ = measure(partial(service.top, store, settings, query), config.repeat)
        result.peak_mb = rss_mb()[1]
        flame_json = FlameGraphOut.of(service.flame(store, settings, query, MAX_NODES)).model_dump_json()
        result.flame_kb = len(flame_json) / 1024
        fresh = Store.from_url(build.url)
        started = time.perf_counter()
        service.flame(fresh, settings, query, MAX_NODES)
        result.fresh_s = time.perf_counter() - started
        fresh.close()
        slug = case.name.replace(" ", "_")
        with maybe_profiled(profile_dir, f"flame_{slug}"):
            service.flame(store, settings, query, MAX_NODES)
        with maybe_profiled(profile_dir, f"top_{slug}"):
            service.top(store, settings, query)
        progress(f"{case.name}: flame {result.flame_s * 1000:.1f} ms, top {result.top_s * 1000:.1f} ms")
        results.append(result)
    return results


def check_raw_path(store: Store, settings: Settings, results: list[Result], checks: Checks) -> None:
    """Each query once more with rollups off (raw profiles only): timed once, and it must give the same top."""
    selector = f'{{service="{CPU_SERVICE}"}}'
    for result in results:
        with_rollups = top_map(service.top(store, settings, result.case.query("cpu", selector, "cpu")))
        raw_query = result.case.query("cpu", selector, "cpu", rollups=False)
        reset_peak_rss()
        started = time.perf_counter()
        raw = service.flame(store, settings, raw_query, MAX_NODES)
        result.raw_s = time.perf_counter() - started
        result.raw_peak_mb = rss_mb()[1]
        raw_top = top_map(service.top(store, settings, raw_query))
        checks.add(
            f"{result.case.name}: rollups == raw profiles",
            raw_top == with_rollups and int(raw.graph.side_totals[0]) == with_rollups[0],
            f"total {with_rollups[0]} vs {raw_top[0]}",
        )


def run_pprof_baseline(
    store: Store,
    settings: Settings,
    build: Build,
    config: Config,
    results: list[Result],
    payloads: list[bytes],
    workdir: Path,
    checks: Checks,
) -> None:
    go = go_binary()
    files_dir = workdir / "pprof"
    files_dir.mkdir(exist_ok=True)
    selector = f'{{service="{CPU_SERVICE}"}}'
    measured: list[PprofRun] = []
    for result in results:
        indexes = build.cpu_indexes(result.case.start_ns, result.case.end_ns)
        # Aligned ranges up to the file limit are merged; shifted ones only when short (1 h): a shifted 24 h
        # range holds as many profiles as the aligned one, so its merge would cost the same.
        if len(indexes) > config.pprof_max_files or (not result.case.aligned and len(indexes) > 1000):
            continue
        names = write_files(files_dir, payloads, indexes)
        repeat = 3 if len(names) <= 1000 else 1
        progress(f"{result.case.name}: go tool pprof -proto of {len(names):,} files x{repeat}")
        run = pprof_merge(go, files_dir, names, workdir / f"merged_{result.case.name.replace(' ', '_')}.pb.gz", repeat)
        result.pprof = run
        measured.append(run)
        ours = top_map(service.top(store, settings, result.case.query("cpu", selector, "cpu")))
        theirs = pprof_top([run.output], "cpu", "nanoseconds")
        flame = service.flame(store, settings, result.case.query("cpu", selector, "cpu"), MAX_NODES)
        flame_total = int(flame.graph.side_totals[0])
        checks.add(
            f"{result.case.name}: top == go tool pprof -top ({len(names):,} files)",
            ours == (theirs.total, theirs.rows) and flame_total == theirs.total,
            f"total {ours[0]} vs pprof {theirs.total}, {len(ours[1])} vs {len(theirs.rows)} rows",
        )
    if not measured:
        return
    largest = max(measured, key=lambda r: r.files)
    per_profile = largest.seconds / largest.files
    for result in results:
        if result.pprof is None:
            count = len(build.cpu_indexes(result.case.start_ns, result.case.end_ns))
            result.pprof_estimate = per_profile * count
            result.pprof_note = (
                f"extrapolated: {count:,} x {per_profile * 1000:.1f} ms (from the {largest.files:,}-file merge)"
            )


@dataclass
class TrendResult:
    name: str
    reads: str
    lines: int
    points: int
    seconds: float
    runs: int
    sql_s: float
    peak_mb: float
    error: str = ""


def sql_trend(store: Store, series_ids: list[int], start_ns: int, end_ns: int, step_ns: int) -> int:
    """The baseline: one GROUP BY over the raw rows (average per series and step), fetched."""
    bucket = (ProfileRow.time_ns - start_ns) // step_ns
    query = (
        select(ProfileRow.series_id, bucket, func.avg(ProfileRow.totals[0].as_integer()))
        .where(ProfileRow.series_id.in_(series_ids), ProfileRow.time_ns >= start_ns, ProfileRow.time_ns < end_ns)
        .group_by(ProfileRow.series_id, bucket)
    )
    with store.engine.connect() as conn:
        return len(conn.execute(query).all())


def run_fleet_queries(
    store: Store, settings: Settings, build: Build, config: Config, profile_dir: Path | None
) -> tuple[list[TrendResult], list[tuple[str, str, int, float, float]]]:
    selector = f'{{service="{FLEET_SERVICE}"}}'
    series_ids = [s.id for s in store.series.all() if s.labels.get("service") == FLEET_SERVICE]
    span = build.fleet_hours * HOUR_NS
    whole = Case("fleet", build.end_ns - span, build.end_ns, True, span)
    last_hour = Case("fleet last 1 h", build.end_ns - HOUR_NS, build.end_ns, True, HOUR_NS)
    span_name = f"{build.fleet_hours} h"
    trend_cases = [
        (f"{span_name}, step 1h, by service", whole, "1h", ["service"]),
        (f"{span_name}, step 1h, by instance", whole, "1h", ["instance"]),
        (f"{span_name}, step 5m, by service", whole, "5m", ["service"]),
        ("last 1 h, step 5m, by instance", last_hour, "5m", ["instance"]),
    ]
    trends: list[TrendResult] = []
    for name, case, step, group_by in trend_cases:
        query = case.query("goroutine", selector, None)
        step_ns = 3600 * NS if step == "1h" else 300 * NS
        raw_rows = _count(store, ProfileRow, case, series_ids)
        reads = f"{_count(store, Rollup, case, series_ids):,} hourly rollups" if step == "1h" else f"{raw_rows:,} raw"
        error = ""
        answer: Trend | None = None

        def call(q: ProfileQuery = query, s: str = step, g: list[str] = group_by) -> None:
            nonlocal answer, error
            try:
                answer = timeseries(store, settings, q, s, g, "avg")
            except TooExpensive as exc:
                error = exc.message

        reset_peak_rss()
        seconds, runs = measure(call, config.repeat)
        peak_mb = rss_mb()[1]
        sql_s, _ = measure(partial(sql_trend, store, series_ids, case.start_ns, case.end_ns, step_ns), 3)
        lines = len(answer.series) if answer else 0
        points = sum(len(line.points) for line in answer.series) if answer else 0
        with maybe_profiled(profile_dir, "timeseries_" + name.replace(" ", "_").replace(",", "")):
            call()
        trends.append(TrendResult(name, reads, lines, points, seconds, runs, sql_s, peak_mb, error))
        progress(f"timeseries {name}: {seconds * 1000:.1f} ms {error[:60]}")

    flames: list[tuple[str, str, int, float, float]] = []
    for case in (last_hour, whole):
        query = case.query("goroutine", selector, None)
        parts, profiles = describe_parts(store, settings, query)
        flame_s, _ = measure(partial(service.flame, store, settings, query, MAX_NODES), config.repeat)
        top_s, _ = measure(partial(service.top, store, settings, query), config.repeat)
        flames.append((f"fleet goroutine, {case.length_ns // HOUR_NS} h", parts, profiles, flame_s, top_s))
    return trends, flames


def _count(store: Store, table: type[ProfileRow] | type[Rollup], case: Case, series_ids: list[int]) -> int:
    with store.engine.connect() as conn:
        if table is Rollup:
            query = select(func.count()).where(
                Rollup.series_id.in_(series_ids),
                Rollup.width_s == HOUR_S,
                Rollup.bucket_ns >= case.start_ns,
                Rollup.bucket_ns < case.end_ns,
            )
        else:
            query = select(func.count()).where(
                ProfileRow.series_id.in_(series_ids),
                ProfileRow.time_ns >= case.start_ns,
                ProfileRow.time_ns < case.end_ns,
            )
        return int(conn.execute(query).scalar_one())


# -- report ------------------------------------------------------------------------------------------------------


def machine() -> str:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    go = subprocess.run([go_binary(), "version"], capture_output=True, text=True, check=False).stdout.strip()
    return (
        f"{model}, {os.cpu_count()} cores, {memory:.0f} GB RAM; Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, {go}"
    )


def print_build(build: Build) -> None:
    say(f"{'build phase':<44} {'items':>14} {'seconds':>9}  note")
    for name, items, seconds, note in build.phases:
        say(f"{name:<44} {items:>14} {seconds:>9.1f}  {note}")


def print_results(results: list[Result]) -> None:
    header = (
        f"{'CPU range':<16} {'read d+h+raw':>14} {'profiles':>9} {'flame ms':>9} {'top ms':>8} {'fresh ms':>9} "
        f"{'RSS MB':>7} {'no-rollup s':>11} {'RSS MB':>7} {'pprof s':>8} {'pprof/flame':>11} {'pprof/top':>9} "
        f"{'flame KB':>8}"
    )
    say(header)
    notes = []
    for r in results:
        pprof_s = r.pprof.seconds if r.pprof else r.pprof_estimate
        estimated = r.pprof is None and r.pprof_estimate is not None
        say(
            f"{r.case.name:<16} {r.parts:>14} {r.profiles:>9,} {fmt_ms(r.flame_s):>9} {fmt_ms(r.top_s):>8} "
            f"{fmt_ms(r.fresh_s):>9} {r.peak_mb:>7,.0f} {fmt_s(r.raw_s):>11} {r.raw_peak_mb:>7,.0f} "
            f"{fmt_s(pprof_s, estimated):>8} "
            f"{fmt_ratio(pprof_s, r.flame_s, estimated):>11} {fmt_ratio(pprof_s, r.top_s, estimated):>9} "
            f"{r.flame_kb:>8.0f}"
        )
        if r.pprof:
            notes.append(
                f"  {r.case.name}: pprof merged {r.pprof.files:,} files, median of {r.pprof.runs}, "
                f"{r.pprof.seconds / r.pprof.files * 1000:.1f} ms/profile, peak RSS {r.pprof.peak_rss_mb:,.0f} MB"
            )
        elif r.pprof_note:
            notes.append(f"  {r.case.name}: pprof ~ {r.pprof_note}")
    for note in notes:
        say(note)


def print_fleet(trends: list[TrendResult], flames: list[tuple[str, str, int, float, float]]) -> None:
    say(
        f"{'fleet timeseries':<34} {'reads':>24} {'lines':>6} {'points':>7} {'ms':>9} {'runs':>4} "
        f"{'SQL GROUP BY ms':>15} {'SQL/ours':>8} {'RSS MB':>7}"
    )
    for t in trends:
        say(
            f"{t.name:<34} {t.reads:>24} {t.lines:>6} {t.points:>7} {fmt_ms(t.seconds):>9} {t.runs:>4} "
            f"{fmt_ms(t.sql_s):>15} {fmt_ratio(t.sql_s, t.seconds) if not t.error else '-':>8} {t.peak_mb:>7,.0f}"
        )
        if t.error:
            say(f"  -> refused (TooExpensive) after {t.seconds * 1000:.0f} ms: {t.error}")
    say(f"{'fleet flame graph (avg)':<34} {'read d+h+raw':>24} {'profiles':>14} {'flame ms':>9} {'top ms':>9}")
    for name, parts, profiles, flame_s, top_s in flames:
        say(f"{name:<34} {parts:>24} {profiles:>14,} {fmt_ms(flame_s):>9} {fmt_ms(top_s):>9}")


# -- main --------------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 day of CPU, 100 instances x 2 h, pprof on 1 h only")
    parser.add_argument("--cpu-days", type=float, default=None, help="days of 10 s CPU profiles (default 7)")
    parser.add_argument("--distinct", type=int, default=None, help="distinct varied CPU payloads (default 500)")
    parser.add_argument("--fleet-instances", type=int, default=None, help="default 1000")
    parser.add_argument("--fleet-hours", type=int, default=None, help="default 24")
    parser.add_argument(
        "--fleet-rollups",
        choices=("build", "bulk"),
        default="build",
        help="fleet hourly rollups by build_rollups (default) or computed in bulk, checked against a timed sample",
    )
    parser.add_argument("--pprof-max-files", type=int, default=None, help="largest pprof merge run (default 8640)")
    parser.add_argument("--repeat", type=int, default=None, help="warm runs per query (median); default 7")
    parser.add_argument("--database-url", default=None, help="an empty database (default: SQLite in the workdir)")
    parser.add_argument("--workdir", type=Path, default=None, help="where the database and pprof files go")
    parser.add_argument("--keep", action="store_true", help="keep the workdir (and its database)")
    parser.add_argument("--reuse", action="store_true", help="query the store a --keep run left in --workdir")
    parser.add_argument("--cprofile", type=Path, default=None, help="write one cProfile per query into this folder")
    args = parser.parse_args()
    quick = args.quick

    def pick(value: Any, full: Any, small: Any) -> Any:
        return value if value is not None else (small if quick else full)

    config = Config(
        cpu_days=pick(args.cpu_days, 7.0, 1.0),
        distinct=pick(args.distinct, 500, 100),
        fleet_instances=pick(args.fleet_instances, 1000, 100),
        fleet_hours=pick(args.fleet_hours, 24, 2),
        pprof_max_files=pick(args.pprof_max_files, 8640, 360),
        repeat=pick(args.repeat, 7, 3),
        fleet_rollups=args.fleet_rollups,
    )
    if args.reuse and args.workdir is None:
        parser.error("--reuse needs --workdir")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="stackyard-bench-query-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.cprofile:
        args.cprofile.mkdir(parents=True, exist_ok=True)
    url = args.database_url or f"sqlite:///{workdir / 'stackyard.db'}"
    try:
        return run(config, url, workdir, args.reuse, args.cprofile)
    finally:
        if not (args.keep or args.reuse or args.workdir):
            shutil.rmtree(workdir, ignore_errors=True)


def run(config: Config, url: str, workdir: Path, reuse: bool, profile_dir: Path | None) -> int:
    say(f"query benchmark on {machine()}")
    say(f"config: {config}; database {url.rsplit('@', maxsplit=1)[-1]}; {load()}")
    settings = Settings(database_url=url)
    if "retention_raw" in Settings.model_fields:
        # The data ends at the last midnight, so its first hours are older than now - 7 d: keep them ingestible.
        settings = settings.model_copy(update={"retention_raw": "30d"})
    meta_path = workdir / "meta.json"
    started = time.perf_counter()
    payloads = varied_scrapes(DATA / "big_cpu.pb.gz", config.distinct)
    payload_s = time.perf_counter() - started
    if reuse:
        build = Build.load(meta_path)
        if (build.cpu_count, build.distinct, build.fleet_instances, build.fleet_hours) != (
            config.cpu_profiles,
            config.distinct,
            config.fleet_instances,
            config.fleet_hours,
        ):
            raise SystemExit(f"{meta_path} was built with other sizes: {build}")
        store = Store.from_url(url)
        say("reusing the store built earlier (build timings not measured in this run)")
    else:
        upgrade(url)
        store = Store.from_url(url)
        with store.engine.connect() as conn:
            if conn.execute(select(func.count()).select_from(ProfileRow)).scalar_one():
                raise SystemExit(f"{url} already holds profiles; the benchmark needs an empty database")
        say(
            f"building: {config.cpu_profiles:,} CPU profiles through ingest(), "
            f"{config.fleet_instances:,} x {config.fleet_hours * FLEET_PER_HOUR:,} goroutine profiles"
        )
        build = make_build(store, settings, config, url, payloads)
        build.phases.insert(
            0, ("CPU: varied payloads from big_cpu.pb.gz", f"{config.distinct}", payload_s, "not part of any cost")
        )
        build.save(meta_path)
        print_build(build)
    say(f"database size: {database_size(store, url)}; RSS now {rss_mb()[0]:,.0f} MB, peak {rss_mb()[1]:,.0f} MB")
    end_text = time.strftime("%Y-%m-%d %H:%M", time.gmtime(build.end_ns / NS))
    say(f"END = {end_text} UTC; CPU data from {build.cpu_count * 10 / 86400:.2f} days before it")

    say(f"queries start; {load()}")
    results = run_cpu_queries(store, settings, build, config, profile_dir)
    trends, flames = run_fleet_queries(store, settings, build, config, profile_dir)
    after_queries = rss_mb()
    say(f"queries done; {load()}")
    checks = Checks()
    run_pprof_baseline(store, settings, build, config, results, payloads, workdir, checks)
    check_raw_path(store, settings, results, checks)
    store.close()

    say("")
    print_results(results)
    say(
        "read d+h+raw = daily rollups + hourly rollups + raw profiles the plan reads; fresh = first flame graph on "
        "a new Store (caches empty); RSS MB = this process's peak RSS while that query ran (VmHWM reset before); "
        "no-rollup = the same flame graph from raw profiles only, one run; pprof s = "
        "`go tool pprof -proto` merging the same payloads from files (~ = extrapolated, see above); ratios = "
        f"pprof time / Stackyard time; flame KB = JSON size; medians of {config.repeat} warm runs"
    )
    say("")
    print_fleet(trends, flames)
    say("SQL GROUP BY = one aggregate over the raw profile rows (avg per series and step), no rollups, fetched")
    say("")
    say(
        f"RSS after the warm queries {after_queries[0]:,.0f} MB, at the end {rss_mb()[0]:,.0f} MB; "
        "peaks per query are in the tables"
    )
    say(f"end of run; {load()}")
    for what, ok, detail in checks.items:
        say(f"check {'ok    ' if ok else 'FAILED'} {what}{'' if ok else ': ' + detail}")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
