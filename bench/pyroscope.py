"""SelectMergeStacktraces (Pyroscope's Connect API) against ``/api/v1/flamegraph`` for the same query, one process.

    .venv/bin/python bench/pyroscope.py              # 12 h of 10 s production-sized CPU profiles (4,320)
    .venv/bin/python bench/pyroscope.py --quick      # 1 h of them (360)
    .venv/bin/python bench/pyroscope.py --hours 24 --repeat 21 --workdir /tmp/sy-pyro --keep

The store (SQLite) is built in the same run: ``--distinct`` varied copies of
the production-sized real capture ``tests/data/big_cpu.pb.gz`` (~2,600
functions, stacks of 30-55 frames; ``bench.common.varied_scrapes``), one every
10 s, each through the real ``server.ingest.profile.ingest()``, ending at a fixed
time (``END``, 2026-05-28 00:00 UTC), then hourly and daily rollups built as
the server builds them.

Both requests go through the same app in the same process (Starlette's test
client: no sockets, so the numbers are the server's own work): the JSON
flame graph of ``GET /api/v1/flamegraph?aggregation=sum`` and the binary
protobuf answer of ``POST /querier.v1.QuerierService/SelectMergeStacktraces``
as Grafana's backend sends it (``application/proto``, ``Accept-Encoding:
gzip``), and JSON Connect for reference. Runs alternate between the two,
and each is measured in process CPU time (this process's threads, server and
client, and no other process) and in wall time. The aim is a ratio of median
CPU times of at most 1.10; wall times (best of each) are printed beside it,
but on a shared machine they move with other work more than with the code.
Ranges: the last hour, the whole range (rollups), and the whole
range shifted by 7 min 13 s (raw profiles at both edges); node limits 2,048
(Stackyard's default) and 16,384 (Grafana's). Correctness: every case's two
answers must hold the same flat and cum per function; a mismatch exits 1.
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
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi.testclient import TestClient
from google.protobuf import json_format

from bench.common import DATA, varied_scrapes
from server.app import create_app
from server.ingest.profile import ingest
from server.migrate import upgrade
from server.pyroscope.proto.querier.v1 import querier_pb2
from server.settings import Settings
from server.store.repository import Store
from server.upkeep.jobs import build_rollups

NS = 1_000_000_000
END_S = 1_779_926_400  # 2026-05-28T00:00:00Z
STEP_S = 10
CPU = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
AIM = 1.10


def build(store: Store, settings: Settings, hours: float, distinct: int) -> tuple[int, float]:
    payloads = varied_scrapes(DATA / "big_cpu.pb.gz", distinct)
    count = round(hours * 3600 / STEP_S)
    start_s = END_S - count * STEP_S
    started = time.perf_counter()
    for index in range(count):
        ingest(
            store,
            settings,
            payloads[index % distinct],
            {"service": "bigservice"},
            "cpu",
            (start_s + index * STEP_S) * NS,
        )
        if (index + 1) % max(1, count // 10) == 0:
            print(f"  ingest {index + 1:,}/{count:,} ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    build_rollups(store, now_ns=END_S * NS + 3600 * NS)
    return count, time.perf_counter() - started


def per_function(names: list[str], levels: list[list[int]]) -> dict[str, tuple[int, int]]:
    """Flat and cum per function from 4-int levels, parents found by position (as Grafana reads them)."""
    flat: dict[str, int] = defaultdict(int)
    cum: dict[str, int] = defaultdict(int)
    previous: list[tuple[int, int, int, frozenset[str]]] = []  # start, total, name index, ancestors' names
    for depth, level in enumerate(levels):
        current = []
        x = 0
        for i in range(0, len(level), 4):
            start = x + level[i]
            total, self_, name = level[i + 1], level[i + 2], names[level[i + 3]]
            x = start + total
            if total == 0:
                continue
            above = next((p for p in previous if p[0] <= start and start + total <= p[0] + p[1]), None)
            ancestors = (above[3] | {names[above[2]]}) if above is not None and depth > 1 else frozenset()
            if depth > 0:
                flat[name] += self_
                if name not in ancestors:
                    cum[name] += total
            current.append((start, total, level[i + 3], ancestors))
        previous = current
    return {name: (flat[name], cum[name]) for name in cum}


@dataclass
class Runs:
    """Wall-clock and process CPU seconds of each run."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def timed_pair(first: Callable[[], Any], second: Callable[[], Any], repeat: int) -> tuple[Runs, Runs]:
    """Both functions' runs, ``repeat`` each, alternating which goes first (after two warm-up rounds).

    Process CPU time counts the server's threads and the client's, and no
    other process: on a shared machine it moves far less than wall time.
    """
    for _ in range(2):
        first()
        second()
    a, b = Runs(), Runs()
    for index in range(repeat):
        for function, runs in ((first, a), (second, b)) if index % 2 == 0 else ((second, b), (first, a)):
            wall, cpu = time.perf_counter(), time.process_time()
            function()
            runs.cpu.append(time.process_time() - cpu)
            runs.wall.append(time.perf_counter() - wall)
    return a, b


def run_case(client: TestClient, start_s: int, end_s: int, nodes: int, repeat: int) -> tuple[str, bool]:
    """Time one query both ways; the table cells and whether the two answers agree."""
    params = {
        "type": "cpu", "sample": "cpu", "query": '{service="bigservice"}', "from": str(start_s), "to": str(end_s),
        "aggregation": "sum", "max_nodes": str(nodes),
    }  # fmt: skip
    request = querier_pb2.SelectMergeStacktracesRequest(
        profile_typeID=CPU,
        label_selector='{service_name="bigservice"}',
        start=start_s * 1000,
        end=end_s * 1000,  # the same profiles, and the same plan (rollups or raw), as the API range
        max_nodes=nodes,
    )
    body, json_body = request.SerializeToString(), json_format.MessageToJson(request)
    proto = {"Content-Type": "application/proto", "Connect-Protocol-Version": "1", "Accept-Encoding": "gzip"}
    path = "/querier.v1.QuerierService/SelectMergeStacktraces"

    # Timed: the request and its body as received; decoding the answer is the client's business.
    def api() -> bytes:
        response = client.get("/api/v1/flamegraph", params=params)
        assert response.status_code == 200, response.text
        return bytes(response.content)

    def connect() -> bytes:
        response = client.post(path, content=body, headers=proto)
        assert response.status_code == 200, response.text
        return bytes(response.content)

    def connect_json() -> bytes:
        response = client.post(path, content=json_body, headers={"Content-Type": "application/json"})
        assert response.status_code == 200, response.text
        return bytes(response.content)

    theirs = json.loads(api())
    ours = querier_pb2.SelectMergeStacktracesResponse.FromString(connect()).flamegraph
    same = theirs["total"] == ours.total and per_function(theirs["names"], theirs["levels"]) == per_function(
        list(ours.names), [list(level.values) for level in ours.levels]
    )
    api_runs, connect_runs = timed_pair(api, connect, repeat)
    api_again, json_runs = timed_pair(api, connect_json, repeat)
    cpu_ratio = statistics.median(connect_runs.cpu) / statistics.median(api_runs.cpu)
    wall_ratio = min(connect_runs.wall) / min(api_runs.wall)
    verdict = ("ok" if cpu_ratio <= AIM else "over") + ("" if same else " MISMATCH")
    row = (
        f"{statistics.median(api_runs.cpu) * 1000:.0f} ms | {statistics.median(connect_runs.cpu) * 1000:.0f} ms | "
        f"**{cpu_ratio:.2f}x** {verdict} | {min(api_runs.wall) * 1000:.0f} / {min(connect_runs.wall) * 1000:.0f} ms, "
        f"{wall_ratio:.2f}x | {statistics.median(json_runs.cpu) / statistics.median(api_again.cpu):.2f}x"
    )
    return row, same


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=12.0)
    parser.add_argument("--quick", action="store_true", help="1 h of profiles, 7 repeats")
    parser.add_argument("--distinct", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    hours, repeat = (1.0, 7) if args.quick else (args.hours, args.repeat)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="stackyard-bench-pyroscope-"))
    workdir.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{workdir / 'stackyard.db'}"
    upgrade(url)
    settings = Settings(database_url=url, retention_raw="36500d", max_flamegraph_nodes=100_000)
    store = Store.from_url(url)
    failed = False
    try:
        print(
            f"building {hours:g} h of 10 s CPU profiles from big_cpu.pb.gz ({args.distinct} variants)...",
            file=sys.stderr,
        )
        count, seconds = build(store, settings, hours, args.distinct)
        print(f"{count:,} profiles ingested and rolled up in {seconds:.0f} s ({seconds / count * 1000:.1f} ms each)")
        print(f"machine: {os.cpu_count()} cores, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        span_s = count * STEP_S
        shift = 7 * 60 + 13
        ranges = [
            ("last 1 h", END_S - 3600, END_S - 1),
            (f"all {hours:g} h", END_S - span_s, END_S - 1),
            (f"all {hours:g} h shifted 7m13s", END_S - span_s + shift, END_S - 1 - shift),
        ]
        print()
        print("| range | max_nodes | /api/v1/flamegraph CPU | SelectMergeStacktraces (proto, gzip) CPU ", end="")
        print("| ratio | wall, best of each | Connect JSON, CPU ratio |")
        print("|---|---|---|---|---|---|---|")
        with TestClient(create_app(settings, store)) as client:
            for label, start_s, end_s in ranges:
                for nodes in (2048, 16384):
                    row, same = run_case(client, start_s, end_s, nodes, repeat)
                    failed = failed or not same
                    print(f"| {label} | {nodes:,} | {row} |")
        print()
        print(f"aim: SelectMergeStacktraces within {AIM:.2f}x of /api/v1/flamegraph in median process CPU time", end="")
        print(f" ({repeat} warm runs each, alternating); wall time, best of each, beside it")
        if failed:
            print("MISMATCH: a Connect flame graph differs from the API's")
    finally:
        store.close()
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
