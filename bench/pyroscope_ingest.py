"""What Pyroscope's push routes cost over ``POST /api/v1/ingest`` of the same profile, in the same run.

    .venv/bin/python bench/pyroscope_ingest.py            # 200 requests of each
    .venv/bin/python bench/pyroscope_ingest.py --quick    # a smoke run

Each route is called through the app in this process (ASGI, no sockets) on a
SQLite file, with the pyroscope-go SDK's real uploads (tests/data/pyroscope):
its CPU profile (one stored profile) and its heap profile (two: ``heap`` and
``allocs``). The baseline is the profile part alone pushed to
``/api/v1/ingest``, called in turn with the others (so load on a shared machine
weighs on all alike); the ratio is the price of the multipart parse, the
name and label translation, and, for the heap, the second stored profile.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from itertools import count
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi.testclient import TestClient

from server.app import create_app
from server.migrate import upgrade
from server.pyroscope.proto.push.v1 import push_pb2
from server.pyroscope.proto.types.v1 import types_pb2
from server.settings import Settings
from tests.support.pyroscope_captures import load

START_S = 1_790_000_000


def _ok(response: object, status: int) -> None:
    code = getattr(response, "status_code", None)
    if code != status:
        raise SystemExit(f"unexpected answer {code}: {getattr(response, 'text', '')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 requests of each instead of 200")
    args = parser.parse_args()
    repeat = 20 if args.quick else 200
    with tempfile.TemporaryDirectory() as workdir:
        url = f"sqlite:///{Path(workdir) / 'bench.db'}"
        upgrade(url)
        settings = Settings(database_url=url, retention_raw="36500d")
        with TestClient(create_app(settings)) as client:
            seconds = count(START_S)
            print(f"{'profile':8} {'route':34} {'ms/request':>10} {'x /api/v1/ingest':>17}")
            for what, index in (("cpu", 4), ("heap", 0)):
                capture = load(index)
                profile = capture.parts()["profile"]
                query = {name: value for name, value in capture.query.items() if name not in ("from", "until")}

                def baseline(profile: bytes = profile) -> None:
                    params = {"service": "bench", "time": str(next(seconds))}
                    _ok(client.post("/api/v1/ingest", params=params, content=profile), 201)

                def sdk(
                    capture_body: bytes = capture.body,
                    headers: dict[str, str] = capture.headers,
                    query: dict[str, str] = query,
                ) -> None:
                    path = "/ingest?" + urlencode({**query, "from": str(next(seconds) * 10**9)})
                    _ok(client.post(path, content=capture_body, headers=headers), 200)

                def push(profile: bytes = profile, name: str = "memory" if what == "heap" else "process_cpu") -> None:
                    labels = {"__name__": name, "service_name": "bench", "__delta__": "false"}
                    request = push_pb2.PushRequest(
                        series=[
                            push_pb2.RawProfileSeries(
                                labels=[types_pb2.LabelPair(name=k, value=v) for k, v in labels.items()],
                                samples=[push_pb2.RawSample(raw_profile=profile, ID=f"bench-{next(seconds)}")],
                            )
                        ]
                    )
                    body, headers = request.SerializeToString(), {"Content-Type": "application/proto"}
                    _ok(client.post("/push.v1.PusherService/Push", content=body, headers=headers), 200)

                routes: list[tuple[str, Callable[[], None]]] = [
                    ("/api/v1/ingest (baseline)", baseline),
                    ("/ingest (SDK multipart)", sdk),
                    ("push.v1.PusherService/Push", push),
                ]
                medians = interleaved_medians([function for _, function in routes], repeat)
                for (label, _), took in zip(routes, medians, strict=True):
                    print(f"{what:8} {label:34} {took * 1000:10.2f} {took / medians[0]:17.2f}")


def interleaved_medians(functions: list[Callable[[], None]], repeat: int, warmup: int = 2) -> list[float]:
    """Median seconds of each function, called in turn, so that a load change on a shared machine
    weighs on all of them alike instead of on whichever ran during it."""
    for _ in range(warmup):
        for function in functions:
            function()
    times: list[list[float]] = [[] for _ in functions]
    for _ in range(repeat):
        for function, seen in zip(functions, times, strict=True):
            started = time.perf_counter()
            function()
            seen.append(time.perf_counter() - started)
    return [statistics.median(seen) for seen in times]


if __name__ == "__main__":
    main()
