"""Feed the demo service's profiles to a local Stackyard for `make run`.

Stands in for the scheduled collector until targets can be registered: every
15 s it fetches each /debug/pprof endpoint of the demo and pushes it to
``POST /api/v1/ingest``, waiting for the server to come up first.
"""

from __future__ import annotations

import argparse
import sys
import time

import httpx

ENDPOINTS = {
    "cpu": "profile?seconds=10",
    "heap": "heap",
    "allocs": "allocs?seconds=10",
    "goroutine": "goroutine",
    "mutex": "mutex?seconds=10",
    "block": "block?seconds=10",
    "threadcreate": "threadcreate",
}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--server", required=True)
    parser.add_argument("--interval", type=float, default=15.0)
    args = parser.parse_args()
    with httpx.Client(timeout=30) as http:
        while True:
            started = time.monotonic()
            for kind, endpoint in ENDPOINTS.items():
                try:
                    profile = http.get(f"{args.target}/debug/pprof/{endpoint}")
                    profile.raise_for_status()
                    http.post(
                        f"{args.server}/api/v1/ingest",
                        params={"service": "demo", "type": kind, "label": "instance=127.0.0.1:6060"},
                        content=profile.content,
                    )
                except httpx.HTTPError as exc:
                    print(f"push_demo: {kind}: {exc}", file=sys.stderr)
            time.sleep(max(0.0, args.interval - (time.monotonic() - started)))


if __name__ == "__main__":
    sys.exit(main())
