"""A simulated fleet: three ``stackyard serve`` replicas on one PostgreSQL scraping loopback Go targets.

    .venv/bin/python bench/fleet.py                     # 600 targets, 300 s steady window
    .venv/bin/python bench/fleet.py --targets 900       # a larger fleet
    .venv/bin/python bench/fleet.py --quick             # a smoke run: 30 targets every 3 s, an 8 s window

What runs, all real and local:

- the fake targets of bench/scrape.py: one child process serving the real Go
  captures of tests/data on one loopback address each (127.0.0.2, ...), waiting
  ``seconds=N`` before a CPU profile as Go does;
- a throwaway PostgreSQL (tests/support/pgserver.py, fsync off), migrated;
- ``--replicas`` ``stackyard serve`` processes on it, all reading one config file
  whose scrape jobs list every target (50 services) with goroutine, heap and CPU
  every ``--interval`` seconds. The replicas divide the targets among themselves
  (docs/scaling.md#replicas); each stores its share in-process.

After the replicas agree on their shares and one interval (plus the CPU
profile's seconds) has passed, a steady window of ``--duration`` seconds is
measured by differences between its start and end:

- each replica: its share (``stackyard_targets``), profiles it stored
  (``stackyard_sink_sent_total``), failed scrapes, CPU seconds (``/proc``, its
  children included) and the scrape lag histogram (``stackyard_scrape_lag_seconds``),
  whose p99 is given as the upper bound of the bucket holding it;
- PostgreSQL: CPU seconds of the postmaster and every backend (those that ended
  count through the postmaster's ``cutime``), ``pg_stat_database`` commits and
  tuples written, ``pg_stat_wal`` bytes (PostgreSQL 14 and later),
  ``pg_database_size`` and the rows of ``profiles``.

The baseline, measured in this process in the same run, is a bare gunzip and
protobuf parse of the three captures served (the cheapest anything could do
with a profile): the replicas' CPU per stored profile is printed as a ratio of
it. The extrapolation to 1,000, 10,000 and 100,000 instances multiplies the
per-profile costs measured here by the profile rate of that fleet; the machine's
own CPU use per slice of the window (``/proc/stat``) says how close to saturation
the run was. Results and their reading: docs/benchmarks.md, docs/scaling.md#sizing.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import scrape as scrape_bench
from bench.common import DATA
from bench.scrape import FIRST_ADDRESS, _server_main
from server.migrate import upgrade
from server.pprof import profile_pb2
from server.scrape.spec import KINDS
from tests.support.pgserver import PostgresServer, free_port
from tests.support.tools import postgres_bindir

FLEET_KINDS = ("goroutine", "heap", "cpu")
CAPTURE_OF = {"goroutine": "goroutine.pb.gz", "heap": "heap.pb.gz", "cpu": "cpu.pb.gz"}
SERVICES = 50
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SLICE_S = 10.0
EXTRAPOLATE = (1_000, 10_000, 100_000)
QUICK_SETTINGS = {
    "STACKYARD_SCRAPE_SYNC_INTERVAL": "0.5",
    "STACKYARD_MEMBER_HEARTBEAT_INTERVAL": "0.5",
    "STACKYARD_MEMBER_TIMEOUT": "3",
}


# -- reading processes and metrics --------------------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as stat:
        text = stat.read()
    return text[text.rindex(")") + 2 :].split()  # fields from "state" on (the name may hold spaces)


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent = int(_stat_fields(int(entry))[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry))
    return children


def tree_cpu_s(pid: int, children: dict[int, list[int]] | None = None) -> float:
    """CPU seconds of a process, its live descendants and its reaped ones (``cutime``/``cstime``)."""
    children = _children() if children is None else children
    total = 0.0
    stack = [pid]
    first = True
    while stack:
        current = stack.pop()
        try:
            fields = _stat_fields(current)
        except OSError:
            continue
        # utime, stime, cutime, cstime are fields 14-17 of stat, 11-14 counted from "state" (index 0 = field 3).
        total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        if first:  # descendants that already ended are in the root's cutime (reaped ones of reaped ones too)
            total += (int(fields[13]) + int(fields[14])) / CLOCK_TICKS
            first = False
        stack.extend(children.get(current, []))
    return total


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]
    return float(sum(values) - idle), float(sum(values))


def parse_metrics(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, _, label_text = head.partition("{")
        labels: dict[str, str] = {}
        for part in label_text.rstrip("}").split(","):
            if "=" in part:
                key, _, raw = part.partition("=")
                labels[key] = raw.strip('"')
        out.setdefault(name, []).append((labels, float(value)))
    return out


def metric_sum(metrics: dict[str, list[tuple[dict[str, str], float]]], name: str, **want: str) -> float:
    return sum(v for labels, v in metrics.get(name, []) if all(labels.get(k) == w for k, w in want.items()))


def lag_buckets(metrics: dict[str, list[tuple[dict[str, str], float]]]) -> dict[float, float]:
    return {float(labels["le"]): value for labels, value in metrics.get("stackyard_scrape_lag_seconds_bucket", [])}


def bucket_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """The upper bound of the histogram bucket that holds quantile ``q`` of the observations between two reads."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return math.nan
    need = q * counts[-1]
    for bound, cumulative in zip(bounds, counts, strict=True):
        if cumulative >= need:
            return bound
    return math.inf


# -- the parts ----------------------------------------------------------------------------------


@dataclass
class Replica:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def metrics(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        return parse_metrics(httpx.get(self.url + "/metrics", timeout=30).text)


def write_config(path: Path, addresses: list[tuple[str, int]], interval_s: float, cpu_seconds: int) -> None:
    """One scrape job per service; JSON is YAML, so the config file is written with json."""
    profiles: dict[str, dict[str, Any]] = {kind.name: {"enabled": kind.name in FLEET_KINDS} for kind in KINDS}
    profiles["cpu"] = {"enabled": True, "seconds": cpu_seconds}
    jobs = []
    for service in range(SERVICES):
        mine = [f"{host}:{port}" for index, (host, port) in enumerate(addresses) if index % SERVICES == service]
        if mine:
            jobs.append(
                {
                    "job_name": f"service-{service}",
                    "scrape_interval": f"{interval_s:g}s",
                    "profiles": profiles,
                    "static_configs": [{"targets": mine}],
                }
            )
    path.write_text(json.dumps({"scrape_configs": jobs}, indent=1))


@contextmanager
def replicas(
    count: int, database_url: str, config: Path, workdir: Path, settings: dict[str, str]
) -> Iterator[list[Replica]]:
    started: list[Replica] = []
    try:
        for index in range(count):
            port = free_port()
            log = workdir / f"replica-{index}.log"
            env = {
                **os.environ,
                "STACKYARD_DATABASE_URL": database_url,
                "STACKYARD_PORT": str(port),
                "STACKYARD_LOG_LEVEL": "WARNING",
                **settings,
            }
            with log.open("wb") as log_file:
                process = subprocess.Popen(
                    [sys.executable, "-m", "stackyard", "serve", "--config", str(config)],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=log_file,
                    cwd=workdir,
                )
            started.append(Replica(port, process, log))
        yield started
    finally:
        for replica in started:
            if replica.process.poll() is None:
                replica.process.terminate()
        for replica in started:
            try:
                replica.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                replica.process.kill()
                replica.process.wait()


def wait_for(what: str, timeout_s: float, check: Any, group: list[Replica]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for replica in group:
            if replica.process.poll() is not None:
                raise SystemExit(f"a replica exited ({replica.process.returncode}); see {replica.log}")
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"timed out after {timeout_s:.0f} s waiting for {what}")


def _ready(replica: Replica) -> bool:
    return httpx.get(replica.url + "/readyz", timeout=10).status_code == 200


@dataclass
class Snapshot:
    at: float
    replica_cpu: list[float]
    replica_metrics: list[dict[str, list[tuple[dict[str, str], float]]]]
    postgres_cpu: float
    targets_cpu: float
    busy: tuple[float, float]
    database: dict[str, float]


DATABASE_QUERY = """
SELECT d.xact_commit, d.tup_inserted, d.tup_updated, d.tup_deleted, pg_database_size(current_database()),
       (SELECT count(*) FROM profiles)
FROM pg_stat_database d WHERE d.datname = current_database()
"""


def read_database(dsn: str) -> dict[str, float]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(DATABASE_QUERY).fetchone()
        assert row is not None
        values = dict(
            zip(("xact_commit", "tup_inserted", "tup_updated", "tup_deleted", "size", "profiles"), row, strict=True)
        )
        if conn.info.server_version >= 140000:
            wal = conn.execute("SELECT wal_bytes FROM pg_stat_wal").fetchone()
            values["wal_bytes"] = float(wal[0]) if wal else math.nan
        else:
            values["wal_bytes"] = math.nan
    return {key: float(value) for key, value in values.items()}


def snapshot(group: list[Replica], postmaster: int, targets_pid: int, dsn: str) -> Snapshot:
    children = _children()
    return Snapshot(
        at=time.monotonic(),
        replica_cpu=[tree_cpu_s(r.process.pid, children) for r in group],
        replica_metrics=[r.metrics() for r in group],
        postgres_cpu=tree_cpu_s(postmaster, children),
        targets_cpu=tree_cpu_s(targets_pid, children),
        busy=machine_busy(),
        database=read_database(dsn),
    )


def bare_decode_s(repeat: int = 30) -> float:
    """Median CPU seconds to gunzip and parse one of the served captures (averaged over the three kinds)."""
    payloads = [(DATA / CAPTURE_OF[kind]).read_bytes() for kind in FLEET_KINDS]
    times = []
    for _ in range(repeat):
        started = time.process_time()
        for payload in payloads:
            profile_pb2.Profile().ParseFromString(gzip.decompress(payload))
        times.append((time.process_time() - started) / len(payloads))
    times.sort()
    return times[len(times) // 2]


# -- the report ---------------------------------------------------------------------------------


def _le(bound: float) -> str:
    """A bucket bound as printed: past the last finite bucket is "> 5" (the histogram's largest bound)."""
    return "> 5" if math.isinf(bound) else f"{bound:g}"


def _size(n: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


def report(
    args: argparse.Namespace, first: Snapshot, last: Snapshot, slices: list[float], decode_s: float
) -> dict[str, Any]:
    window = last.at - first.at
    expected_rate = args.targets * len(FLEET_KINDS) / args.interval
    db0, db1 = first.database, last.database
    stored = db1["profiles"] - db0["profiles"]
    rate = stored / window
    print(
        f"fleet benchmark: {args.targets} targets x {len(FLEET_KINDS)} kinds ({','.join(FLEET_KINDS)}) every "
        f"{args.interval:g} s (CPU profiles of {args.cpu_seconds} s, {args.cpu_capture}), "
        f"{args.replicas} replicas on one PostgreSQL; "
        f"steady window {window:.0f} s; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end"
    )
    print()
    print(
        f"{'replica':<8} {'share':>6} {'stored':>7} {'/s':>6} {'failed':>6} {'cores':>6} "
        f"{'CPU ms/profile':>14} {'x decode':>8} {'lag p50 ≤':>9} {'lag p99 ≤':>9}"
    )
    replica_rows = []
    all_before: dict[float, float] = {}
    all_after: dict[float, float] = {}
    total_cpu = 0.0
    for index in range(len(last.replica_metrics)):
        m0, m1 = first.replica_metrics[index], last.replica_metrics[index]
        share = metric_sum(m1, "stackyard_targets")
        sent = metric_sum(m1, "stackyard_sink_sent_total") - metric_sum(m0, "stackyard_sink_sent_total")
        scrapes = metric_sum(m1, "stackyard_scrapes_total") - metric_sum(m0, "stackyard_scrapes_total")
        ok = metric_sum(m1, "stackyard_scrapes_total", result="success") - metric_sum(
            m0, "stackyard_scrapes_total", result="success"
        )
        cpu = last.replica_cpu[index] - first.replica_cpu[index]
        total_cpu += cpu
        b0, b1 = lag_buckets(m0), lag_buckets(m1)
        for bound, value in b0.items():
            all_before[bound] = all_before.get(bound, 0.0) + value
        for bound, value in b1.items():
            all_after[bound] = all_after.get(bound, 0.0) + value
        per = cpu / sent if sent else math.nan
        p50, p99 = bucket_quantile(b0, b1, 0.5), bucket_quantile(b0, b1, 0.99)
        print(
            f"{index:<8} {share:>6.0f} {sent:>7.0f} {sent / window:>6.1f} {scrapes - ok:>6.0f} {cpu / window:>6.2f} "
            f"{per * 1000:>14.2f} {per / decode_s:>7.1f}x {_le(p50):>9} {_le(p99):>9}"
        )
        replica_rows.append(
            {
                "share": share,
                "stored": sent,
                "failed": scrapes - ok,
                "cores": cpu / window,
                "cpu_per_profile_s": per,
                "lag_p50_le_s": p50,
                "lag_p99_le_s": p99,
            }
        )
    p99_all = bucket_quantile(all_before, all_after, 0.99)
    server_per = total_cpu / stored if stored else math.nan
    postgres_cpu = last.postgres_cpu - first.postgres_cpu
    postgres_per = postgres_cpu / stored if stored else math.nan
    print(
        f"{'all':<8} {sum(r['share'] for r in replica_rows):>6.0f} {stored:>7.0f} {rate:>6.1f} "
        f"{sum(r['failed'] for r in replica_rows):>6.0f} {total_cpu / window:>6.2f} {server_per * 1000:>14.2f} "
        f"{server_per / decode_s:>7.1f}x {_le(bucket_quantile(all_before, all_after, 0.5)):>9} {_le(p99_all):>9}"
    )
    print(
        f"profiles stored: {rate:.1f}/s of {expected_rate:.1f}/s expected ({rate / expected_rate:.1%}); "
        f"baseline: a bare gunzip + parse of one served capture, this process, {decode_s * 1000:.2f} ms CPU"
    )
    print("(stored = the replica's stackyard_sink_sent_total; lag = slot to scrape start, bucket upper bounds)")
    print()
    commits = db1["xact_commit"] - db0["xact_commit"]
    inserted = db1["tup_inserted"] - db0["tup_inserted"]
    updated = db1["tup_updated"] - db0["tup_updated"]
    deleted = db1["tup_deleted"] - db0["tup_deleted"]
    wal = db1["wal_bytes"] - db0["wal_bytes"]
    grown = db1["size"] - db0["size"]
    bytes_per = grown / stored if stored else math.nan
    print(f"PostgreSQL: {postgres_cpu / window:.2f} cores, {postgres_per * 1000:.2f} ms CPU per stored profile")
    print(
        f"  commits {commits / window:.1f}/s ({commits / max(stored, 1):.2f} per profile), rows inserted "
        f"{inserted / window:.1f}/s ({inserted / max(stored, 1):.2f} per profile), updated {updated / window:.1f}/s, "
        f"deleted {deleted / window:.1f}/s"
    )
    print(
        f"  WAL {_size(wal / window)}/s ({_size(wal / max(stored, 1))} per profile); database grew {_size(grown)} in "
        f"{window:.0f} s: {_size(bytes_per)} per profile, {_size(grown / window * 86400)} a day at this rate"
    )
    targets_cpu = last.targets_cpu - first.targets_cpu
    busy = (last.busy[0] - first.busy[0]) / (last.busy[1] - first.busy[1]) * (os.cpu_count() or 1)
    print(
        f"machine: {busy:.2f} of {os.cpu_count()} cores busy over the window (replicas {total_cpu / window:.2f}, "
        f"PostgreSQL {postgres_cpu / window:.2f}, fake targets {targets_cpu / window:.2f}, the rest other work); "
        f"per {SLICE_S:g} s slice: {' '.join(f'{s:.2f}' for s in slices)}"
    )
    print()
    print(f"extrapolated from the per-profile costs above ({len(FLEET_KINDS)} kinds every {args.interval:g} s):")
    print(
        f"{'instances':>10} {'profiles/s':>10} {'server cores':>12} {'PG cores':>9} {'commits/s':>9} "
        f"{'rows/s':>8} {'WAL/s':>9} {'disk/day':>9}"
    )
    extrapolated = []
    for instances in EXTRAPOLATE:
        per_s = instances * len(FLEET_KINDS) / args.interval
        row = {
            "instances": instances,
            "profiles_per_s": per_s,
            "server_cores": per_s * server_per,
            "postgres_cores": per_s * postgres_per,
            "commits_per_s": per_s * commits / max(stored, 1),
            "rows_per_s": per_s * inserted / max(stored, 1),
            "wal_per_s": per_s * wal / max(stored, 1),
            "disk_per_day": per_s * bytes_per * 86400,
        }
        extrapolated.append(row)
        print(
            f"{instances:>10,} {per_s:>10.0f} {row['server_cores']:>12.1f} {row['postgres_cores']:>9.1f} "
            f"{row['commits_per_s']:>9.0f} {row['rows_per_s']:>8.0f} {_size(row['wal_per_s']):>9} "
            f"{_size(row['disk_per_day']):>9}"
        )
    return {
        "targets": args.targets,
        "window_s": window,
        "expected_per_s": expected_rate,
        "stored_per_s": rate,
        "replicas": replica_rows,
        "lag_p99_le_s": p99_all,
        "server_cpu_per_profile_s": server_per,
        "decode_s": decode_s,
        "postgres_cpu_per_profile_s": postgres_per,
        "commits_per_s": commits / window,
        "rows_inserted_per_s": inserted / window,
        "wal_bytes_per_profile": wal / max(stored, 1),
        "bytes_per_profile": bytes_per,
        "machine_cores_busy": busy,
        "extrapolated": extrapolated,
    }


# -- the run ------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    decode_s = bare_decode_s()
    workdir = Path(tempfile.mkdtemp(prefix="stackyard-fleet-"))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, True)
        if args.database_url:  # a migrated database on a running server (the smoke test's)
            url = args.database_url
        else:
            postgres = PostgresServer(postgres_bindir())
            postgres.start()
            stack.callback(postgres.stop)
            url = postgres.create_database("stackyard")
            upgrade(url)
        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn, autocommit=True) as conn:  # the server is local: its backend's parent
            backend = conn.execute("SELECT pg_backend_pid()").fetchone()
            assert backend is not None
            postmaster = int(_stat_fields(int(backend[0]))[1])

        hosts = [str(FIRST_ADDRESS + i) for i in range(args.targets)]
        context = multiprocessing.get_context("fork")
        parent, child = context.Pipe()
        server = context.Process(target=_server_main, args=(hosts, child), daemon=True)
        server.start()
        stack.callback(server.join, 5)
        stack.callback(server.terminate)
        addresses: list[tuple[str, int]] = parent.recv()
        config = workdir / "fleet.yaml"
        write_config(config, addresses, args.interval, args.cpu_seconds)

        # The smoke run shortens the heartbeats (as tests/stackyard/test_replicas.py does) so the replicas agree sooner.
        settings = QUICK_SETTINGS if args.quick else {}
        group = stack.enter_context(replicas(args.replicas, url, config, workdir, settings))
        for replica in group:
            wait_for(f"{replica.url}/readyz", 120, partial(_ready, replica), group)

        def settled() -> bool:
            reads = [r.metrics() for r in group]
            return (
                all(metric_sum(m, "stackyard_replica_members") == len(group) for m in reads)
                and sum(metric_sum(m, "stackyard_targets") for m in reads) == args.targets
            )

        wait_for("the replicas to share every target", 120, settled, group)
        warmup = args.interval + args.cpu_seconds + 2
        print(f"replicas settled; warming up {warmup:g} s, then measuring {args.duration:g} s", file=sys.stderr)
        time.sleep(warmup)
        first = snapshot(group, postmaster, server.pid or 0, dsn)
        slices: list[float] = []
        previous = first.busy
        end = first.at + args.duration
        while (now := time.monotonic()) < end:
            time.sleep(min(SLICE_S, end - now))
            busy = machine_busy()
            slices.append((busy[0] - previous[0]) / max(1.0, busy[1] - previous[1]) * (os.cpu_count() or 1))
            previous = busy
            for replica in group:
                if replica.process.poll() is not None:
                    raise SystemExit(f"a replica exited ({replica.process.returncode}); see {replica.log}")
        last = snapshot(group, postmaster, server.pid or 0, dsn)
        result = report(args, first, last, slices, decode_s)
        parent.send("stop")
        parent.recv()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=600)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--interval", type=float, default=15.0, help="scrape interval, seconds")
    parser.add_argument("--cpu-seconds", type=int, default=10, help="seconds= of each CPU profile")
    parser.add_argument("--duration", type=float, default=300.0, help="steady window, seconds")
    parser.add_argument(
        "--database-url", default=None, help="a migrated PostgreSQL database on this machine (default: start one)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here as JSON")
    parser.add_argument(
        "--cpu-capture",
        default=CAPTURE_OF["cpu"],
        help="capture in tests/data the targets serve as their CPU profile (big_cpu.pb.gz: production-sized)",
    )
    parser.add_argument("--quick", action="store_true", help="30 targets every 3 s, an 8 s window: a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.targets, args.duration, args.cpu_seconds, args.interval = 30, 8.0, 1, 3.0
    if not 1 <= args.targets <= 60_000:
        parser.error("--targets must be between 1 and 60000 (one loopback address each)")
    if args.replicas < 1:
        parser.error("--replicas must be at least 1")
    if args.cpu_seconds >= args.interval:
        parser.error("--cpu-seconds must be shorter than the interval")
    if not (DATA / args.cpu_capture).is_file():
        parser.error(f"no capture {args.cpu_capture} in {DATA}")
    CAPTURE_OF["cpu"] = scrape_bench.CAPTURES["profile"] = args.cpu_capture  # read by the forked target server
    result = run(args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
