"""Collector scale: the real ScrapeManager + Fetcher against a fleet of fake Go targets on loopback.

    .venv/bin/python bench/scrape.py            # full run: 1,000 targets x 6 kinds, every 15 s, for 180 s
    .venv/bin/python bench/scrape.py --quick    # a smoke run: 200 targets, 60 s
    .venv/bin/python bench/scrape.py --max-in-flight 10000 --max-per-host 10   # limits raised past the fleet
    .venv/bin/python bench/scrape.py --max-in-flight 10000 --max-per-host 10 --per-host-pools   # what-if
    .venv/bin/python bench/scrape.py --gc-threshold 700,10,10   # what-if: Python's default full collections
    .venv/bin/python bench/scrape.py --duration 60 --cprofile /tmp/scrape.prof   # where the collector's CPU goes

Aim: 1,000 targets with 6 profile types each at a 15 s interval on one core,
p99 lag under 1 s, flat memory. Results and their reading: docs/benchmarks.md.

The targets are one asyncio HTTP/1.1 keep-alive server in a child process,
with one listening socket (on a kernel-chosen port) on each of the loopback
addresses 127.0.0.2, 127.0.0.3, ... (the whole 127.0.0.0/8 is loopback on
Linux), so every target is its own ``host:port`` and the collector's per-host
limit applies per target, as in a real fleet. It serves the real Go captures
of tests/data and, like Go, waits ``seconds=N`` before answering a CPU or
delta request. The collector is this process: the real ``ScrapeManager``
(APScheduler jobs, health, metrics) and ``Fetcher`` (httpx, global and
per-host semaphores) with a sink that only counts, so no database is involved
(bench/ingest.py measures that path).

Measured in the collector's process: the schedule lag the manager itself
observes (raw values, through a recording ``schedule_lag`` histogram), the
lag at which each request really starts (after the fetcher's semaphores),
scrape durations, failures by result, CPU time / wall time ("cores used"),
RSS every 10 s (beside the blocks Python's own allocator has in use: when
the resident set grows and they do not, the growth is below Python's
objects), the event loop's lateness, garbage-collector pauses and the
duration of target syncs. The baseline, measured in the same run against the
same server, is a bare ``httpx.AsyncClient`` GET loop over the same snapshot
endpoints, 64 concurrent with a pool of 64 (the Fetcher's default limits):
the ratio is the collector's CPU per completed scrape over the bare GET's CPU
per request.

The what-if flags change the process around the collector, never collector
code: ``--per-host-pools`` hands the Fetcher (through its ``transport``
argument) one small httpx pool per target, ``--gc-threshold`` calls
``gc.set_threshold`` before the run (otherwise the collector's full collections are spaced as a
started collector spaces them: ``gc_full_collection_every``, ``server/gcfreeze.py``;
``--gc-threshold 700,10,10`` is Python's default).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import ctypes
import ctypes.util
import gc
import ipaddress
import logging
import math
import multiprocessing
import os
import ssl
import statistics
import sys
import time
from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, Histogram

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import DATA
from collector.fetch import USER_AGENT, Fetcher, FetchLimits
from collector.manager import ScrapeManager
from collector.metrics import CollectorMetrics
from collector.sinks import ScrapedProfile
from server.gcfreeze import space_full_collections
from server.scrape.spec import PROFILE_PATHS, TIMED_KINDS, ProfileSpec, TargetSpec, offset_s
from server.settings import Settings

FIRST_ADDRESS = ipaddress.IPv4Address("127.0.0.2")
CAPTURES = {
    "heap": "heap.pb.gz",
    "allocs": "allocs.pb.gz",
    "goroutine": "goroutine.pb.gz",
    "mutex": "mutex.pb.gz",
    "block": "block.pb.gz",
    "profile": "cpu.pb.gz",
    "threadcreate": "threadcreate.pb.gz",
}
DEFAULT_KINDS = ("cpu", "heap", "allocs", "goroutine", "mutex", "block")
KIND_BY_PATH = {path: kind for kind, path in PROFILE_PATHS.items()}
SAMPLE_EVERY_S = 10.0
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


# -- the fleet: one process, many loopback addresses -------------------------


def _responses() -> dict[bytes, bytes]:
    """Whole HTTP responses (head and body) per request path, built once."""
    responses: dict[bytes, bytes] = {}
    for name, file in CAPTURES.items():
        body = (DATA / file).read_bytes()
        head = (
            "HTTP/1.1 200 OK\r\n"
            "Content-Type: application/octet-stream\r\n"
            f'Content-Disposition: attachment; filename="{name}"\r\n'
            "X-Content-Type-Options: nosniff\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        responses[f"/debug/pprof/{name}".encode()] = head.encode() + body
    return responses


NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nnot found\n"


@dataclass(slots=True)
class _ServerStats:
    requests: int = 0
    connections: int = 0
    open_connections: int = 0
    max_open_connections: int = 0


def _seconds(query: bytes) -> int:
    for part in query.split(b"&"):
        name, _, value = part.partition(b"=")
        if name == b"seconds" and value.isdigit():
            return int(value)
    return 0


async def _handle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, responses: dict[bytes, bytes], stats: _ServerStats
) -> None:
    """Minimal HTTP/1.1: GET only, no request bodies, keep-alive unless the client says close."""
    stats.connections += 1
    stats.open_connections += 1
    stats.max_open_connections = max(stats.max_open_connections, stats.open_connections)
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line = head[: head.index(b"\r\n")].split(b" ")
            if len(request_line) != 3:
                break
            path, _, query = request_line[1].partition(b"?")
            seconds = _seconds(query)
            if seconds:
                await asyncio.sleep(seconds)  # as Go's pprof handler does for CPU and delta profiles
            writer.write(responses.get(path, NOT_FOUND))
            stats.requests += 1
            if b"connection: close" in head.lower():
                await writer.drain()
                break
            if writer.transport.get_write_buffer_size() > 1 << 16:
                await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        pass
    except asyncio.CancelledError:  # the server process is shutting down with requests still sleeping
        pass
    finally:
        stats.open_connections -= 1
        writer.close()


async def _serve(hosts: list[str], conn: Connection) -> None:
    responses = _responses()
    stats = _ServerStats()
    server = await asyncio.start_server(
        lambda r, w: _handle(r, w, responses, stats), host=hosts, port=0, backlog=1024, reuse_address=True
    )
    addresses = sorted(
        ((sock.getsockname()[0], sock.getsockname()[1]) for sock in server.sockets),
        key=lambda address: ipaddress.IPv4Address(address[0]),
    )
    conn.send(addresses)
    while True:
        message = await asyncio.to_thread(conn.recv)
        conn.send(
            {
                "cpu_s": time.process_time(),
                "requests": stats.requests,
                "connections": stats.connections,
                "max_open": stats.max_open_connections,
            }
        )
        if message == "stop":
            break
    server.close()


def _server_main(hosts: list[str], conn: Connection) -> None:
    asyncio.run(_serve(hosts, conn))


# -- the collector, instrumented without touching collector code ------------


class _RawHistogram(Histogram):
    """An unregistered histogram that also keeps every observed value and when it came."""

    def __init__(self, name: str) -> None:
        super().__init__(name, "raw values kept by bench/scrape.py", registry=None)
        self.times = array("d")
        self.values = array("d")

    def observe(self, amount: float, exemplar: dict[str, str] | None = None) -> None:
        super().observe(amount, exemplar)
        self.times.append(time.monotonic())
        self.values.append(amount)


class RecordingMetrics(CollectorMetrics):
    """The manager's metrics, with ``schedule_lag`` (observed by ``ScrapeManager._run``) kept raw."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
        self.raw_lag = _RawHistogram("bench_schedule_lag_seconds")
        self.schedule_lag = self.raw_lag

    def scrapes_by_result(self) -> Counter[tuple[str, str]]:
        counts: Counter[tuple[str, str]] = Counter()
        for metric in self.scrapes.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    counts[(sample.labels["kind"], sample.labels["result"])] += int(sample.value)
        return counts


_SLOT: ContextVar[tuple[float, float]] = ContextVar("slot", default=(0.0, 0.0))


class TimingFetcher(Fetcher):
    """The real fetcher; also records when each request gets past the semaphores, relative to its slot."""

    def __init__(self, limits: FetchLimits, transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(limits, transport)
        self.waits = array("d")  # seconds queued on the global and per-host semaphores
        self.start_lags = array("d")  # seconds from the slot to the request really starting
        self.start_times = array("d")

    async def get(
        self,
        target: TargetSpec,
        url: str,
        timeout_s: float,
        timed: bool = False,
        on_start: Callable[[], None] | None = None,
    ) -> bytes:
        now = time.time()
        kind = KIND_BY_PATH.get(url.partition("?")[0].rsplit("/", 1)[-1], "")
        interval = target.interval_s
        offset = offset_s(f"{target.key}|{kind}", interval)
        slot = math.floor((now - offset) / interval) * interval + offset  # as ScrapeManager._run computes it
        _SLOT.set((slot, time.perf_counter()))
        return await super().get(target, url, timeout_s, timed, on_start)

    async def _get(self, target: TargetSpec, url: str, headers: dict[str, str], auth: httpx.BasicAuth | None) -> bytes:
        # Runs inside the semaphores (wait_for's task inherits the context set in get()).
        slot, called = _SLOT.get()
        self.waits.append(time.perf_counter() - called)
        self.start_lags.append(time.time() - slot)
        self.start_times.append(time.monotonic())
        return await super()._get(target, url, headers, auth)


class PerHostPools(httpx.AsyncBaseTransport):
    """What-if (``--per-host-pools``): one small httpcore pool per ``host:port`` instead of one shared pool.

    Passed through ``Fetcher``'s public ``transport`` argument; collector code is unchanged. httpcore's
    pool scans all of its connections on every request start and end, so one pool per host keeps each
    scan to a handful of connections. One SSL context is shared by all pools.
    """

    def __init__(self, per_host: int) -> None:
        self._per_host = per_host
        self._pools: dict[tuple[bytes, bytes, int | None], httpx.AsyncHTTPTransport] = {}
        self._ssl = ssl.create_default_context()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        key = (request.url.raw_scheme, request.url.raw_host, request.url.port)
        pool = self._pools.get(key)
        if pool is None:
            limits = httpx.Limits(max_connections=self._per_host, max_keepalive_connections=self._per_host)
            pool = self._pools[key] = httpx.AsyncHTTPTransport(verify=self._ssl, limits=limits)
        return await pool.handle_async_request(request)

    async def aclose(self) -> None:
        for pool in self._pools.values():
            await pool.aclose()


@dataclass(slots=True)
class CountingSink:
    """Counts what arrives and how long each scrape took (fetch start to hand-over); keeps no profile."""

    done_times: dict[str, array[float]] = field(default_factory=dict)
    durations: dict[str, array[float]] = field(default_factory=dict)
    bytes_received: int = 0

    async def send(self, profile: ScrapedProfile) -> None:
        self.done_times.setdefault(profile.kind, array("d")).append(time.monotonic())
        self.durations.setdefault(profile.kind, array("d")).append((time.time_ns() - profile.time_ns) / 1e9)
        self.bytes_received += len(profile.data)

    async def close(self, deadline_s: float) -> None:
        return None


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_SIZE


def _rss_after_trim() -> int | None:
    """The resident set after glibc's ``malloc_trim(0)`` hands the free pages inside its heaps back to the system:
    what it drops by is memory the C allocator held free, not memory in use. None where there is no glibc."""
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        trim = None
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim(0)
    return _rss_bytes()


@dataclass(slots=True)
class Sample:
    at_s: float
    rss: int
    cpu_s: float
    done: int
    blocks: int  # memory blocks Python's own allocator has handed out and not had back (sys.getallocatedblocks)


@dataclass(slots=True)
class CollectorRun:
    started: float
    window: tuple[float, float]  # monotonic start and end of the steady-state window
    cpu_window_s: float
    samples: list[Sample]
    metrics: RecordingMetrics
    fetcher: TimingFetcher
    sink: CountingSink
    jobs: int
    cancelled_at_stop: int
    load: tuple[float, float]  # 1-minute load average of the machine at the window's start and end
    stalls: _Stalls
    sync_seconds: array[float]
    gc_tracked: int  # objects the garbage collector tracks at the window's end
    rss_trimmed: int | None  # the resident set right after malloc_trim(0) at the window's end (None: not glibc)


class TimedSyncManager(ScrapeManager):
    """The real manager; also times each target sync (it runs on the event loop every 5 s)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sync_seconds = array("d")

    async def sync(self) -> None:
        started = time.perf_counter()
        await super().sync()
        self.sync_seconds.append(time.perf_counter() - started)


@dataclass(slots=True)
class _Stalls:
    """Why the event loop runs late: its own lateness, and the garbage collector's pauses."""

    loop_late: array[float] = field(default_factory=lambda: array("d"))
    gc_pauses: dict[int, array[float]] = field(default_factory=dict)
    _gc_started: float = 0.0

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            pause = time.perf_counter() - self._gc_started
            self.gc_pauses.setdefault(info["generation"], array("d")).append(pause)

    async def probe(self, every_s: float = 0.05) -> None:
        """Sleep ``every_s`` again and again; how much later than asked the loop wakes us is its lateness."""
        while True:
            started = time.perf_counter()
            await asyncio.sleep(every_s)
            self.loop_late.append(time.perf_counter() - started - every_s)


class _CountingHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


async def _sample_forever(samples: list[Sample], sink: CountingSink, started: float) -> None:
    while True:
        done = sum(len(times) for times in sink.done_times.values())
        samples.append(
            Sample(time.monotonic() - started, _rss_bytes(), time.process_time(), done, sys.getallocatedblocks())
        )
        await asyncio.sleep(SAMPLE_EVERY_S)


async def run_collector(
    targets: list[TargetSpec], limits: FetchLimits, duration_s: float, warmup_s: float, per_host_pools: bool
) -> CollectorRun:
    registry = CollectorRegistry()
    metrics = RecordingMetrics(registry)
    fetcher = TimingFetcher(limits, PerHostPools(limits.max_per_host) if per_host_pools else None)
    sink = CountingSink()
    manager = TimedSyncManager([lambda: targets], sink, fetcher, metrics, sync_interval_s=5.0)
    samples: list[Sample] = []
    started = time.monotonic()
    await manager.start()
    sampler = asyncio.create_task(_sample_forever(samples, sink, started))
    stalls = _Stalls()
    await asyncio.sleep(max(0.0, started + warmup_s - time.monotonic()))
    prober = asyncio.create_task(stalls.probe())
    gc.callbacks.append(stalls.on_gc)
    cpu_start = time.process_time()
    window_start = time.monotonic()
    load_start = os.getloadavg()[0]
    await asyncio.sleep(max(0.0, started + duration_s - time.monotonic()))
    cpu_end = time.process_time()
    cpu_window = cpu_end - cpu_start
    rss_end = _rss_bytes()
    done_end = sum(len(times) for times in sink.done_times.values())
    load_end = os.getloadavg()[0]
    gc_tracked = len(gc.get_objects())
    window_end = time.monotonic()
    jobs = manager.scheduled_jobs()
    gc.callbacks.remove(stalls.on_gc)
    prober.cancel()
    sampler.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await prober
    with contextlib.suppress(asyncio.CancelledError):
        await sampler
    samples.append(Sample(window_end - started, rss_end, cpu_end, done_end, sys.getallocatedblocks()))
    rss_trimmed = _rss_after_trim()
    # stop() cancels the scrapes still in flight after its deadline; APScheduler logs each cancelled job
    # as an ERROR with a traceback. Count those records instead of printing thousands of tracebacks.
    executor_log = logging.getLogger("apscheduler.executors.default")
    counter = _CountingHandler()
    executor_log.addHandler(counter)
    executor_log.propagate = False
    try:
        await manager.stop(deadline_s=1.0)
    finally:
        executor_log.removeHandler(counter)
        executor_log.propagate = True
    return CollectorRun(
        started,
        (window_start, window_end),
        cpu_window,
        samples,
        metrics,
        fetcher,
        sink,
        jobs,
        counter.count,
        (load_start, load_end),
        stalls,
        manager.sync_seconds,
        gc_tracked,
        rss_trimmed,
    )


# -- the baseline ------------------------------------------------------------


async def bare_httpx(urls: list[str], requests: int, concurrency: int) -> tuple[float, float]:
    """CPU seconds and wall seconds per GET of a bare httpx client looping over ``urls``.

    ``concurrency`` workers share one client whose pool holds as many connections as there are workers
    (the Fetcher's default: 64 in flight, a pool of 64), whatever limits the collector run used, so the
    baseline is the same in every run.
    """
    client = httpx.AsyncClient(
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=100),
    )
    numbers = iter(range(requests))

    async def worker() -> None:
        for number in numbers:
            response = await client.get(urls[number % len(urls)])
            if response.status_code != 200:
                raise RuntimeError(f"baseline GET {response.url}: HTTP {response.status_code}")

    async with client:
        await asyncio.gather(*(worker() for _ in range(min(concurrency, 8))))  # warm-up
        numbers = iter(range(requests))
        cpu = time.process_time()
        wall = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return (time.process_time() - cpu) / requests, (time.perf_counter() - wall) / requests


# -- report -------------------------------------------------------------------


def _pct(values: Sequence[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _in_window(times: array[float], window: tuple[float, float]) -> int:
    return sum(1 for t in times if window[0] <= t < window[1])


def _ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.0f}" if seconds >= 0.1 else f"{seconds * 1000:.1f}"


def report(
    args: argparse.Namespace,
    run: CollectorRun,
    limits: FetchLimits,
    first: str,
    last: str,
    server_stats: dict[str, float],
    baseline: tuple[float, float],
    baseline_requests: int,
    baseline_concurrency: int,
) -> None:
    kinds: list[str] = args.kinds
    window_s = run.window[1] - run.window[0]
    expected_rate = args.targets / args.interval
    print(
        f"scrape benchmark: {args.targets} targets x {len(kinds)} kinds ({','.join(kinds)}) every {args.interval:g} s, "
        f"{args.duration:g} s run, steady window {window_s:.0f} s after {args.warmup:g} s warm-up"
    )
    print(
        f"targets: one port on each of {first} .. {last} (loopback), served by one child process; "
        f"fetch limits: {limits.max_in_flight} in flight, {limits.max_per_host} per host; "
        f"{'WHAT-IF one httpx pool per host; ' if args.per_host_pools else ''}"
        f"{run.jobs} scheduled jobs; {os.cpu_count()} cores, "
        f"load average {run.load[0]:.1f} at the window's start and {run.load[1]:.1f} at its end"
    )
    print()
    print(f"{'kind':<10} {'expect/s':>8} {'done/s':>7} {'done %':>7} {'dur p50 ms':>10} {'dur p99 ms':>10}")
    total_done = 0
    for kind in kinds:
        done = _in_window(run.sink.done_times.get(kind, array("d")), run.window)
        total_done += done
        durations = run.sink.durations.get(kind, array("d"))
        print(
            f"{kind:<10} {expected_rate:>8.1f} {done / window_s:>7.1f} {done / window_s / expected_rate:>7.1%} "
            f"{_ms(_pct(durations, 0.5)):>10} {_ms(_pct(durations, 0.99)):>10}"
        )
    all_expected = expected_rate * len(kinds)
    print(
        f"{'all':<10} {all_expected:>8.1f} {total_done / window_s:>7.1f} {total_done / window_s / all_expected:>7.1%}"
    )
    print("(done = profiles handed to the sink inside the steady window; dur = fetch start to sink, whole run;")
    print(" timed kinds include the seconds= wait the target spends profiling)")
    print()

    lag = run.metrics.raw_lag
    lag_window = [v for t, v in zip(lag.times, lag.values, strict=True) if run.window[0] <= t < run.window[1]]
    start_window = [
        v
        for t, v in zip(run.fetcher.start_times, run.fetcher.start_lags, strict=True)
        if run.window[0] <= t < run.window[1]
    ]
    wait_window = [
        v for t, v in zip(run.fetcher.start_times, run.fetcher.waits, strict=True) if run.window[0] <= t < run.window[1]
    ]
    print(f"{'lag (s), steady window':<44} {'n':>7} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7}")
    for name, values in (
        ("schedule lag (slot -> manager._run starts)", lag_window),
        ("request start lag (slot -> past semaphores)", start_window),
        ("semaphore wait (fetcher.get -> request)", wait_window),
    ):
        print(
            f"{name:<44} {len(values):>7} {_pct(values, 0.5):>7.3f} {_pct(values, 0.9):>7.3f} "
            f"{_pct(values, 0.99):>7.3f} {max(values, default=math.nan):>7.3f}"
        )
    print(f"runs started in window: {len(lag_window)} of {all_expected * window_s:.0f} expected ticks")
    results = run.metrics.scrapes_by_result()
    failures = {f"{kind}/{result}": n for (kind, result), n in sorted(results.items()) if result != "success"}
    print(f"failures by kind/result (whole run): {failures or 'none'}")
    print(f"scrapes cancelled by manager.stop() (each logged by APScheduler with a traceback): {run.cancelled_at_stop}")
    late = run.stalls.loop_late
    print(
        f"event loop lateness (50 ms sleep probe, steady window): p50 {_pct(late, 0.5):.3f} s, "
        f"p99 {_pct(late, 0.99):.3f} s, max {max(late, default=math.nan):.3f} s"
    )
    pauses = run.stalls.gc_pauses
    print(
        f"GC ({run.gc_tracked / 1e6:.2f} M tracked objects at the end, thresholds {gc.get_threshold()}) pauses: "
        + ", ".join(
            f"gen{gen} {len(p)} x (max {max(p):.3f} s, total {sum(p):.1f} s)" for gen, p in sorted(pauses.items())
        )
    )
    syncs = run.sync_seconds
    print(
        f"target syncs (every 5 s, on the event loop): {len(syncs)}, "
        f"median {_pct(syncs, 0.5):.3f} s, max {max(syncs, default=math.nan):.3f} s"
    )
    print()

    cores = run.cpu_window_s / window_s
    per_scrape = run.cpu_window_s / max(1, total_done)
    bare_cpu, bare_wall = baseline
    print(f"collector CPU: {run.cpu_window_s:.1f} s in {window_s:.0f} s wall = {cores:.2f} cores used")
    print(f"{'':<44} {'CPU ms/scrape':>13} {'ratio':>6}")
    print(f"{'collector (per completed scrape)':<44} {per_scrape * 1000:>13.2f} {per_scrape / bare_cpu:>5.1f}x")
    print(
        f"{'bare httpx GET (baseline)':<44} {bare_cpu * 1000:>13.2f} {1.0:>5.1f}x"
        f"   ({baseline_requests} GETs of heap/goroutine across all targets, {baseline_concurrency} concurrent, "
        f"{1 / bare_wall:.0f} GET/s)"
    )
    print(
        f"target server process: {server_stats['cpu_s']:.1f} s CPU for {server_stats['requests']:.0f} requests "
        f"over {server_stats['connections']:.0f} connections (max {server_stats['max_open']:.0f} open at once)"
    )
    print()
    print("collector RSS and CPU every 10 s:")
    print(f"{'t s':>5} {'RSS MB':>7} {'cores':>6} {'done':>7} {'blocks M':>8}")
    previous: Sample | None = None
    for sample in run.samples:
        cores_slice = (
            "" if previous is None else f"{(sample.cpu_s - previous.cpu_s) / (sample.at_s - previous.at_s):.2f}"
        )
        print(
            f"{sample.at_s:>5.0f} {sample.rss / 1e6:>7.1f} {cores_slice:>6} {sample.done:>7}"
            f" {sample.blocks / 1e6:>8.3f}"
        )
        previous = sample
    first_minute = [s.rss for s in run.samples if s.at_s < 60]
    last_minute = [s.rss for s in run.samples if s.at_s >= run.samples[-1].at_s - 60]
    first_mean = sum(first_minute) / len(first_minute) / 1e6
    last_mean = sum(last_minute) / len(last_minute) / 1e6
    recorded = sum(
        len(a) * a.itemsize
        for a in (lag.times, lag.values, run.fetcher.waits, run.fetcher.start_lags, run.fetcher.start_times)
    ) + sum(len(a) * a.itemsize * 2 for a in run.sink.done_times.values())
    print(
        f"RSS mean, first minute {first_mean:.1f} MB, last minute {last_mean:.1f} MB "
        f"({last_mean - first_mean:+.1f} MB; the benchmark's own per-scrape records are {recorded / 1e6:.1f} MB)"
    )
    # Python's own allocator's blocks in use: flat while the resident set grows means the growth is not objects
    # Python holds (the records above are arrays, outside these blocks). From the second minute: the first is
    # the start-up.
    second = [s.blocks for s in run.samples if 60 <= s.at_s < 120] or [run.samples[-1].blocks]
    last_blocks = statistics.mean(s.blocks for s in run.samples if s.at_s >= run.samples[-1].at_s - 60) / 1e6
    print(
        f"Python allocator blocks in use, second minute {statistics.mean(second) / 1e6:.3f} M, "
        f"last minute {last_blocks:.3f} M"
    )
    if run.rss_trimmed is not None:
        print(
            f"RSS at the window's end {run.samples[-1].rss / 1e6:.1f} MB, after malloc_trim(0) "
            f"{run.rss_trimmed / 1e6:.1f} MB (what it drops by was held free by the C allocator)"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=15.0, help="scrape interval, seconds")
    parser.add_argument("--duration", type=float, default=180.0, help="run length, seconds")
    parser.add_argument("--warmup", type=float, default=None, help="seconds left out of rates and lags (one interval)")
    parser.add_argument("--kinds", default=",".join(DEFAULT_KINDS), help="comma-separated profile kinds")
    parser.add_argument("--max-in-flight", type=int, default=FetchLimits().max_in_flight)
    parser.add_argument("--max-per-host", type=int, default=FetchLimits().max_per_host)
    parser.add_argument("--baseline-requests", type=int, default=None)
    parser.add_argument(
        "--per-host-pools", action="store_true", help="what-if: give the Fetcher one httpx pool per host:port"
    )
    parser.add_argument(
        "--gc-threshold", default=None, help="what-if: gc.set_threshold(A, B, C) in the collector, given as A,B,C"
    )
    parser.add_argument("--cprofile", type=Path, default=None, help="write cProfile stats of the collector run here")
    parser.add_argument("--quick", action="store_true", help="200 targets for 60 s, for a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.targets, args.duration = 200, 60.0
    args.kinds = [k for k in args.kinds.split(",") if k]
    unknown = [k for k in args.kinds if k not in PROFILE_PATHS]
    if unknown:
        parser.error(f"unknown kinds {unknown}; choose from {', '.join(PROFILE_PATHS)}")
    if args.warmup is None:
        args.warmup = args.interval + 1 if set(args.kinds) & TIMED_KINDS else 1.0
    if args.warmup >= args.duration:
        parser.error("--duration must be longer than the warm-up (one interval)")
    limits = FetchLimits(max_in_flight=args.max_in_flight, max_per_host=args.max_per_host)
    baseline_requests = args.baseline_requests or (1000 if args.quick else 4000)
    baseline_concurrency = FetchLimits().max_in_flight

    hosts = [str(FIRST_ADDRESS + i) for i in range(args.targets)]
    parent, child = multiprocessing.get_context("fork").Pipe()
    server = multiprocessing.get_context("fork").Process(target=_server_main, args=(hosts, child), daemon=True)
    server.start()
    addresses: list[tuple[str, int]] = parent.recv()
    targets = [
        TargetSpec(
            url=f"http://{host}:{port}",
            service=f"service-{index % 50}",
            interval_s=args.interval,
            profiles=tuple(ProfileSpec(kind) for kind in args.kinds),
            source="config",
        )
        for index, (host, port) in enumerate(addresses)
    ]

    # As a started collector spaces them (server/gcfreeze.py); the what-if replaces all three thresholds.
    space_full_collections(Settings().gc_full_collection_every)
    if args.gc_threshold:
        gc.set_threshold(*(int(part) for part in args.gc_threshold.split(",")))
    profiler = cProfile.Profile() if args.cprofile else None
    if profiler is not None:
        profiler.enable()
    run = asyncio.run(run_collector(targets, limits, args.duration, args.warmup, args.per_host_pools))
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.cprofile)
    parent.send("stats")
    server_stats: dict[str, float] = parent.recv()

    snapshot_urls = [
        target.url_for(ProfileSpec(kind), None)
        for kind in ("heap", "goroutine")
        for target in targets  # consecutive requests go to different targets, as the collector's do
    ]
    baseline = asyncio.run(bare_httpx(snapshot_urls, baseline_requests, baseline_concurrency))
    parent.send("stop")
    parent.recv()
    server.join(timeout=5)
    report(
        args,
        run,
        limits,
        addresses[0][0],
        addresses[-1][0],
        server_stats,
        baseline,
        baseline_requests,
        baseline_concurrency,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
