"""Sustained load: concurrent pushers and dashboard queries against one ``stackyard serve`` on PostgreSQL.

    .venv/bin/python bench/load.py                         # 10 min at 200 profiles/s (the issue's aim)
    .venv/bin/python bench/load.py --duration 120          # a shorter run
    .venv/bin/python bench/load.py --rate 100 --big-every 50 --json /tmp/load.json

What runs, all real and local:

- a throwaway PostgreSQL (tests/support/pgserver.py: initdb in a temp dir, fsync off)
  and one ``stackyard serve`` subprocess on it (migrating at start), with its
  own temporary working directory; both are removed at the end;
- a **push process** (its own interpreter, so its CPU does not disturb the
  query timings): ``--pushers`` concurrent HTTP clients sending
  ``POST /api/v1/ingest`` on an open-loop schedule of ``--rate`` profiles per
  second. The fleet is ``--services`` services of ``--instances`` instances
  each, every instance sending the seven profile kinds in turn, stamped with
  the current time. Payloads are varied copies of the real captures in
  tests/data (``bench.common.varied_scrapes``: values rescaled, a tenth of the
  samples dropped), and every ``--big-every``-th push is a copy of the
  production-sized ``big_cpu.pb.gz`` (examples/bigservice, ~190 KB);
- ``--query-workers`` dashboard clients in this process, each looping over
  four queries a dashboard sends for one service over recent ranges: a CPU
  flame graph (last 5 min), CPU top (last 5 min), a goroutine trend grouped
  by instance (last 1 h, 60 s step) and a CPU diff (last 5 min against the 5
  min before);
- the server's RSS, read from ``/proc/PID/status`` every ``--rss-every`` seconds.

Phases: ``--warmup`` seconds of pushing only (fills the recent ranges); the
load phase of ``--duration`` seconds (pushes and queries together); then an
idle phase with pushing stopped, where every query is repeated
``--idle-repeats`` times one at a time on the same data. The ratio
``load / idle`` of each endpoint's p50 and p99 is the cost of concurrent
ingest, measured in the same run.

The push schedule is open-loop: if the server falls behind, pushes are not
dropped but the achieved rate drops below ``--rate``, and the report says so.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import DATA, varied_scrapes  # noqa: E402
from tests.support.pgserver import PostgresServer, free_port  # noqa: E402
from tests.support.tools import postgres_bindir  # noqa: E402

#: Kind of each capture, and how many varied copies of it the pushers cycle through.
CAPTURES = {
    "cpu": ("cpu.pb.gz", 40),
    "heap": ("heap.pb.gz", 20),
    "allocs": ("allocs.pb.gz", 20),
    "goroutine": ("goroutine.pb.gz", 20),
    "mutex": ("mutex.pb.gz", 5),
    "block": ("block.pb.gz", 10),
    "threadcreate": ("threadcreate.pb.gz", 2),
}
BIG = ("cpu", "big_cpu.pb.gz", 8)
QUERY_SERVICE = "svc-00"


# --------------------------------------------------------------------------- pushing (child process)


@dataclass
class PushStats:
    started: float = 0.0
    ended: float = 0.0
    ok: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    bytes_sent: int = 0
    latencies: list[float] = field(default_factory=list)
    big: int = 0


def _payloads() -> dict[str, list[bytes]]:
    out = {kind: varied_scrapes(DATA / name, count, seed=i) for i, (kind, (name, count)) in enumerate(CAPTURES.items())}
    out["big"] = varied_scrapes(DATA / BIG[1], BIG[2], seed=99)
    return out


def _schedule(services: int, instances: int, big_every: int) -> Iterator[tuple[str, str, str, bool]]:
    """(service, instance, kind, big) for each push: every instance sends the seven kinds in turn."""
    kinds = list(CAPTURES)
    for n in itertools.count():
        slot, kind_index = divmod(n, services * instances)
        service, instance = divmod(kind_index, instances)
        kind = kinds[(slot + kind_index) % len(kinds)]
        big = big_every > 0 and n % big_every == big_every - 1
        yield f"svc-{service:02d}", f"i-{service:02d}-{instance:02d}", "cpu" if big else kind, big


async def _push_loop(url: str, args: argparse.Namespace, stop_at: float, pushed: Synchronized[int]) -> PushStats:
    payloads = _payloads()
    counters = {kind: itertools.count() for kind in payloads}
    schedule = _schedule(args.services, args.instances, args.big_every)
    stats = PushStats(started=time.monotonic())
    next_index = itertools.count()
    limits = httpx.Limits(max_connections=args.pushers, max_keepalive_connections=args.pushers)

    async def worker(client: httpx.AsyncClient) -> None:
        while True:
            index = next(next_index)
            due = stats.started + index / args.rate
            if due >= stop_at or time.monotonic() >= stop_at:
                return  # a server that fell behind leaves its backlog unsent: the rate achieved says so
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            service, instance, kind, big = next(schedule)
            pool = payloads["big" if big else kind]
            body = pool[next(counters["big" if big else kind]) % len(pool)]
            params = {"service": service, "type": kind, "label": f"instance={instance}", "time": f"{time.time():.6f}"}
            began = time.perf_counter()
            try:
                response = await client.post("/api/v1/ingest", params=params, content=body)
                status = str(response.status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            stats.latencies.append(time.perf_counter() - began)
            if status == "201":
                stats.ok += 1
                stats.bytes_sent += len(body)
                stats.big += big
                with pushed.get_lock():
                    pushed.value += 1
            else:
                stats.failed[status] = stats.failed.get(status, 0) + 1

    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(args.pushers)))
    stats.ended = time.monotonic()
    return stats


def _push_process(
    url: str, args: argparse.Namespace, seconds: float, pushed: Synchronized[int], out: Any, ready: Any
) -> None:
    ready.set()
    stats = asyncio.run(_push_loop(url, args, time.monotonic() + seconds, pushed))
    out.put(stats)


def push_for(url: str, args: argparse.Namespace, seconds: float, pushed: Synchronized[int]) -> tuple[Any, Any]:
    out: Any = multiprocessing.get_context("spawn").Queue()
    ready = multiprocessing.get_context("spawn").Event()
    process = multiprocessing.get_context("spawn").Process(
        target=_push_process, args=(url, args, seconds, pushed, out, ready), daemon=True
    )
    process.start()
    ready.wait(60)
    return process, out


# --------------------------------------------------------------------------- queries


def queries() -> dict[str, tuple[str, dict[str, str]]]:
    selector = f'{{service="{QUERY_SERVICE}"}}'
    recent = {"query": selector, "from": "now-5m", "to": "now"}
    return {
        "flamegraph": ("/api/v1/flamegraph", {"type": "cpu", **recent}),
        "top": ("/api/v1/top", {"type": "cpu", "limit": "100", **recent}),
        "timeseries": (
            "/api/v1/timeseries",
            {"type": "goroutine", "query": selector, "from": "now-1h", "step": "60s", "group_by": "instance"},
        ),
        "diff": ("/api/v1/diff", {"type": "cpu", **recent, "base_from": "now-10m", "base_to": "now-5m"}),
    }


def timed_query(client: httpx.Client, path: str, params: dict[str, str]) -> tuple[float, int]:
    began = time.perf_counter()
    response = client.get(path, params=params)
    elapsed = time.perf_counter() - began
    if response.status_code != 200:
        raise RuntimeError(f"{path} answered {response.status_code}: {response.text[:300]}")
    return elapsed, len(response.content)


def query_workers(url: str, workers: int, stop: threading.Event) -> dict[str, list[float]]:
    latencies: dict[str, list[float]] = {name: [] for name in queries()}
    lock = threading.Lock()
    errors: list[str] = []

    def work(offset: int) -> None:
        order = list(queries().items())
        with httpx.Client(base_url=url, timeout=120) as client:
            for n in itertools.count(offset):
                if stop.is_set():
                    return
                name, (path, params) = order[n % len(order)]
                try:
                    elapsed, _ = timed_query(client, path, params)
                except (RuntimeError, httpx.HTTPError) as exc:
                    errors.append(f"{name}: {exc}")
                    continue
                with lock:
                    latencies[name].append(elapsed)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    stop.wait()
    for thread in threads:
        thread.join(180)
    if errors:
        latencies["errors"] = [float(len(errors))]
        print(f"query errors: {len(errors)}; first: {errors[0]}", file=sys.stderr)
    return latencies


def idle_latencies(url: str, repeats: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    with httpx.Client(base_url=url, timeout=120) as client:
        for name, (path, params) in queries().items():
            timed_query(client, path, params)  # warm
            out[name] = [timed_query(client, path, params)[0] for _ in range(repeats)]
    return out


# --------------------------------------------------------------------------- server and memory


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants: the server is its ingest worker processes too."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    tree, frontier = [pid], [pid]
    while frontier:
        frontier = [child for parent in frontier for child in children.get(parent, [])]
        tree += frontier
    return tree


def rss_mb(pid: int) -> float:
    """Resident memory of the server and its worker processes together."""
    total = 0.0
    for member in process_tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            continue  # exited meanwhile
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the server (workers included) so far: how much of the machine it got."""
    total = 0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def sample_rss(pid: int, every: float, stop: threading.Event, out: list[tuple[float, float]], t0: float) -> None:
    while not stop.is_set():
        out.append((time.monotonic() - t0, rss_mb(pid)))
        stop.wait(every)


def _progress(pushed: Synchronized[int], stop: threading.Event, t0: float, pid: int) -> None:
    """A line a minute, so a long run shows how it is going (and leaves something if it is cut short)."""
    last = (time.monotonic(), pushed.value)
    while not stop.wait(60):
        now = (time.monotonic(), pushed.value)
        rate = (now[1] - last[1]) / (now[0] - last[0])
        print(
            f"  t={now[0] - t0:.0f}s stored {now[1]} ({rate:.1f}/s in the last minute),"
            f" server RSS {rss_mb(pid):.0f} MB,"
            f" load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        last = now


def start_server(database_url: str, workdir: Path, ingest_processes: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "STACKYARD_INGEST_PROCESSES": str(ingest_processes),
        "STACKYARD_DATABASE_URL": database_url,
        "STACKYARD_LOG_LEVEL": "WARNING",
        "STACKYARD_PORT": str(port),
    }
    stackyard = Path(sys.executable).parent / "stackyard"
    log = (workdir / "server.log").open("wb")
    process = subprocess.Popen([str(stackyard), "serve"], cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"stackyard serve exited with {process.returncode}; see {workdir / 'server.log'}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("stackyard serve did not become ready in 120 s")


def database_size(database_url: str) -> dict[str, int]:
    """Bytes on disk and stored profiles, for sizing (docs/deploy.md): VACUUM first so dead rows do not count."""
    import psycopg

    dsn = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        profiles = conn.execute("SELECT count(*) FROM profiles").fetchone()
    assert size is not None and profiles is not None
    return {"bytes": int(size[0]), "profiles": int(profiles[0])}


# --------------------------------------------------------------------------- report


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def report(result: dict[str, Any]) -> str:
    lines = [
        f"load phase {result['duration_s']:.0f} s (after {result['warmup_s']:.0f} s warm-up); "
        f"target rate {result['rate']}/s; {result['pushers']} pushers, {result['query_workers']} query workers, "
        f"{result['ingest_processes']} ingest processes; "
        f"load average at start {result['loadavg_start']}, at end {result['loadavg_end']}; "
        f"the server (with its ingest processes) used {result['server_cores']:.2f} cores during the load phase",
        "",
        f"ingest: {result['ingest']['ok']} profiles stored in {result['ingest']['seconds']:.1f} s = "
        f"**{result['ingest']['per_second']:.1f} profiles/s** ({result['ingest']['big']} production-sized), "
        f"{result['ingest']['mb_per_second']:.2f} MB/s of pprof; failures {result['ingest']['failed']}; "
        f"push latency p50 {result['ingest']['p50_ms']:.0f} ms, p99 {result['ingest']['p99_ms']:.0f} ms",
        "",
        "| query | n under load | p50 load | p99 load | p50 idle | p99 idle | p50 ratio | p99 ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in result["queries"].items():
        lines.append(
            f"| {name} | {row['n']} | {row['p50_ms']:.0f} ms | {row['p99_ms']:.0f} ms | {row['idle_p50_ms']:.0f} ms "
            f"| {row['idle_p99_ms']:.0f} ms | {row['p50_ratio']:.1f}x | {row['p99_ratio']:.1f}x |"
        )
    rss = result["rss_mb"]
    lines += [
        "",
        "server RSS (MB) over time: " + ", ".join(f"{t:.0f}s {mb:.0f}" for t, mb in rss[:: max(1, len(rss) // 20)]),
        f"RSS: first minute of load avg {result['rss_first_min_mb']:.0f} MB, last minute avg "
        f"{result['rss_last_min_mb']:.0f} MB, max {result['rss_max_mb']:.0f} MB",
        f"database after VACUUM: {result['database']['bytes'] / 1e6:.1f} MB for {result['database']['profiles']} "
        f"profiles (the empty schema included)",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load (pushes + queries)")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds of pushing before the load phase")
    parser.add_argument("--rate", type=float, default=200.0, help="profiles pushed per second (target)")
    parser.add_argument("--pushers", type=int, default=16, help="concurrent push connections")
    parser.add_argument("--query-workers", type=int, default=4, help="concurrent dashboard clients")
    parser.add_argument(
        "--ingest-processes", type=int, default=2, help="the server's STACKYARD_INGEST_PROCESSES (0: ingest in threads)"
    )
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--instances", type=int, default=10, help="instances per service")
    parser.add_argument("--big-every", type=int, default=100, help="every Nth push is big_cpu.pb.gz (0: never)")
    parser.add_argument("--idle-repeats", type=int, default=30)
    parser.add_argument("--rss-every", type=float, default=5.0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="stackyard-load-"))
    postgres = PostgresServer(postgres_bindir())
    postgres.start()
    server: subprocess.Popen[bytes] | None = None
    try:
        database_url = postgres.create_database("stackyard_load")
        server, url = start_server(database_url, workdir, args.ingest_processes)
        print(f"server pid {server.pid} at {url}, PostgreSQL on port {postgres.port}; warming up", flush=True)
        t0 = time.monotonic()
        rss: list[tuple[float, float]] = []
        stop_rss = threading.Event()
        sampler = threading.Thread(target=sample_rss, args=(server.pid, args.rss_every, stop_rss, rss, t0), daemon=True)
        sampler.start()
        pushed: Synchronized[int] = multiprocessing.get_context("spawn").Value("l", 0)

        process, out = push_for(url, args, args.warmup + args.duration, pushed)
        time.sleep(args.warmup)
        load_start = time.monotonic() - t0
        loadavg_start = os.getloadavg()
        cpu_start = cpu_seconds(server.pid)
        print(f"warm-up done ({pushed.value} profiles); load phase for {args.duration:.0f} s", flush=True)
        stop_queries = threading.Event()
        timer = threading.Timer(args.duration, stop_queries.set)
        timer.start()
        progress = threading.Thread(target=_progress, args=(pushed, stop_queries, t0, server.pid), daemon=True)
        progress.start()
        under_load = query_workers(url, args.query_workers, stop_queries)
        server_cores = (cpu_seconds(server.pid) - cpu_start) / (time.monotonic() - t0 - load_start)
        stats: PushStats = out.get(timeout=300)
        process.join(30)
        load_end = time.monotonic() - t0
        loadavg_end = os.getloadavg()
        print(f"load done ({pushed.value} profiles); idle measurements", flush=True)
        idle = idle_latencies(url, args.idle_repeats)
        stop_rss.set()
        sampler.join()
        database = database_size(database_url)
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
        postgres.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    seconds = stats.ended - stats.started
    query_rows: dict[str, dict[str, float]] = {}
    for name in queries():
        loaded, quiet = under_load[name], idle[name]
        query_rows[name] = {
            "n": len(loaded),
            "p50_ms": pct(loaded, 0.5) * 1000,
            "p99_ms": pct(loaded, 0.99) * 1000,
            "idle_p50_ms": pct(quiet, 0.5) * 1000,
            "idle_p99_ms": pct(quiet, 0.99) * 1000,
            "p50_ratio": pct(loaded, 0.5) / pct(quiet, 0.5),
            "p99_ratio": pct(loaded, 0.99) / pct(quiet, 0.99),
        }
    in_load = [(t, mb) for t, mb in rss if load_start <= t <= load_end]
    first = [mb for t, mb in in_load if t <= load_start + 60] or [float("nan")]
    last = [mb for t, mb in in_load if t >= load_end - 60] or [float("nan")]
    result: dict[str, Any] = {
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "rate": args.rate,
        "pushers": args.pushers,
        "query_workers": args.query_workers,
        "ingest_processes": args.ingest_processes,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "loadavg_start": " ".join(f"{x:.1f}" for x in loadavg_start),
        "loadavg_end": " ".join(f"{x:.1f}" for x in loadavg_end),
        "server_cores": server_cores,
        "ingest": {
            "ok": stats.ok,
            "big": stats.big,
            "seconds": seconds,
            "per_second": stats.ok / seconds,
            "mb_per_second": stats.bytes_sent / seconds / 1e6,
            "failed": stats.failed,
            "p50_ms": pct(stats.latencies, 0.5) * 1000,
            "p99_ms": pct(stats.latencies, 0.99) * 1000,
        },
        "queries": query_rows,
        "query_errors": int(under_load.get("errors", [0.0])[0]),
        "rss_mb": rss,
        "rss_first_min_mb": statistics.fmean(first),
        "rss_last_min_mb": statistics.fmean(last),
        "rss_max_mb": max(mb for _, mb in rss),
        "database": database,
    }
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
