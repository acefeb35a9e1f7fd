"""Hostile inputs against a real server: time to refusal, peak memory, /healthz meanwhile.

    .venv/bin/python bench/hostile.py               # every input of tests/support/hostile.py
    .venv/bin/python bench/hostile.py --only "empty samples"

One ``stackyard serve`` on SQLite gets each input in turn: pushed profiles
inflating to 256 MiB (one per record type), the issue's repro served to a
scrape, and goroutine dumps of minimal goroutines pushed and scraped. For
each it prints the answer, the seconds until it came, the server's peak
resident memory while handling it (``VmHWM``, reset per input), and the
slowest ``/healthz`` round-trip meanwhile, against the server's resident
memory when idle (the baseline, measured in the same run). A good profile is
pushed last, to show the server still stores one.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.hostile import (
    MIB,
    Outcome,
    ServerProbe,
    bombs,
    empty_samples,
    goroutine_bomb,
    peak_rss,
    serving,
)
from tests.support.pgserver import free_port
from tests.support.procs import stackyard, status, wait_for
from tests.support.tools import DATA


def cases(probe: ServerProbe) -> dict[str, Callable[[], Outcome]]:
    found: dict[str, Callable[[], Outcome]] = {
        "push: 7 bytes of garbage (the overhead)": lambda: probe.push(b"garbage")
    }
    for name, body in bombs().items():
        found[f"push: {name}"] = lambda body=body: probe.push(body)  # type: ignore[misc]

    def scrape(body: bytes, kind: str) -> Outcome:
        with serving(body) as url:
            return probe.scrape(url, kind)

    found["scrape: empty samples"] = lambda: scrape(empty_samples(), "heap")
    found["push: dump of minimal goroutines"] = lambda: probe.push(goroutine_bomb(), "/api/v1/goroutines/ingest")
    found["scrape: dump of minimal goroutines"] = lambda: scrape(goroutine_bomb(), "goroutine_dump")
    found["push: a real profile (big_cpu)"] = lambda: probe.push(
        (DATA / "big_cpu.pb.gz").read_bytes(), time="2026-09-01T10:00:00Z"
    )
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", help="run only the cases whose name contains this")
    args = parser.parse_args()
    bombs()  # made before the server starts, so their cost is not in any measurement
    goroutine_bomb()
    with tempfile.TemporaryDirectory(prefix="stackyard-hostile-") as folder:
        port = free_port()
        env = {
            "STACKYARD_DATABASE_URL": f"sqlite:///{Path(folder) / 'stackyard.db'}",
            "STACKYARD_PORT": str(port),
            "STACKYARD_SCRAPE_SYNC_INTERVAL": "0.5",
            "STACKYARD_RETENTION_RAW": "36500d",
        }
        base = f"http://127.0.0.1:{port}"
        with stackyard(["serve"], env) as process:
            wait_for(lambda: status(base + "/readyz") == 200, 60, "the server to be ready", process)
            httpx.get(base + "/healthz", timeout=10)
            idle = peak_rss(process.pid)
            probe = ServerProbe(base, process.pid)
            print(f"server idle: {idle / MIB:.0f} MiB resident")
            print(
                f"{'case':<40} {'answer':>6} {'seconds':>8} {'peak MiB':>9} {'x idle':>7} {'healthz max s':>14} message"
            )
            for name, run in cases(probe).items():
                if args.only and not any(part in name for part in args.only):
                    continue
                outcome = run()
                message = outcome.message.replace("\n", " ")[:110]
                print(
                    f"{name:<40} {outcome.status:>6} {outcome.seconds:>8.2f} {outcome.peak_rss / MIB:>9.0f} "
                    f"{outcome.peak_rss / idle:>6.1f}x {outcome.healthz_worst:>14.3f}  {message}",
                    flush=True,
                )
    print("answer 0: a scrape, whose target is down with the message shown (its last_error)")
    print("seconds: push to answer, or target registered to its first scrape's outcome (includes scheduling)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
