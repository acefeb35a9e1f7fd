"""A small real fleet for the dashboard tests and screenshots: two Go demo instances, their profiles, targets.

Service ``shop`` runs twice: version 1.4 (as built) and version 1.5, started with
``-slow-factor`` (more work in ``main.cpuHogB`` only) and ``-leak-rate`` (goroutines
that never end, ``main.leakyWorker``). Their real ``/debug/pprof`` profiles are
fetched with httpx and pushed through ``POST /api/v1/ingest`` at chosen times in the
last hour, so a page's default range shows a history. The server runs the real
in-process scraper too: version 1.4 is a scrape target (goroutine profiles every few
seconds: real health), and ``ghost`` is a target on a port nobody listens on (a real
``connection refused``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.browser import LiveServer, free_socket, serving
from tests.support.godemo import running

SERVICE = "shop"
SLOW_FACTOR = 8
LEAK_RATE = 200  # goroutines per second
CPU_SECONDS = "2"
CPU_MINUTES_AGO = (45, 25)
GOROUTINE_MINUTES_AGO = (50, 38, 26, 14)


@dataclass
class Demo:
    url: str
    version: str

    @property
    def instance(self) -> str:
        return self.url.removeprefix("http://")

    @property
    def labels(self) -> dict[str, str]:
        return {"instance": self.instance, "version": self.version}

    def fetch(self, kind: str, **params: str) -> bytes:
        response = httpx.get(f"{self.url}/debug/pprof/{kind}", params=params, timeout=60)
        response.raise_for_status()
        return response.content


@dataclass
class Fleet:
    live: LiveServer
    base: Demo  # version 1.4
    slow: Demo  # version 1.5: slower cpuHogB, leaking goroutines
    ghost_url: str
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)

    def selector(self, **labels: str) -> str:
        parts = [f'service="{SERVICE}"', *(f'{k}="{v}"' for k, v in labels.items())]
        return "{" + ", ".join(parts) + "}"


def push(live: LiveServer, demo: Demo, data: bytes, kind: str, at: float) -> dict[str, Any]:
    params = [("service", SERVICE), ("type", kind), ("time", f"{at:.3f}")]
    params += [("label", f"{k}={v}") for k, v in demo.labels.items()]
    result: dict[str, Any] = live.post("/api/v1/ingest", data, params)
    live.ingested.append(result)
    return result


def fill(fleet: Fleet) -> None:
    """Profiles at chosen times: CPU twice per instance, goroutines four times, heap once."""
    live, demos = fleet.live, (fleet.base, fleet.slow)
    now = time.time()
    with ThreadPoolExecutor(len(demos)) as pool:
        for minutes in CPU_MINUTES_AGO:  # both instances at once: the same wall time in both profiles
            profiles = list(pool.map(lambda d: d.fetch("profile", seconds=CPU_SECONDS), demos))
            for demo, data in zip(demos, profiles, strict=True):
                push(live, demo, data, "cpu", now - minutes * 60)
    for demo in demos:
        push(live, demo, demo.fetch("heap"), "heap", now - 30 * 60)
    for k, minutes in enumerate(GOROUTINE_MINUTES_AGO):
        if k:
            time.sleep(1.0)  # the leaking instance starts LEAK_RATE more goroutines a second meanwhile
        for demo in demos:
            push(live, demo, demo.fetch("goroutine"), "goroutine", now - minutes * 60)


def add_targets(fleet: Fleet) -> None:
    """Version 1.4 as a scrape target (goroutines every 2 s), and a target that refuses connections."""
    client = httpx.Client(base_url=fleet.live.url, timeout=30)
    with client:
        for name, body in (
            (
                "base",
                {
                    "url": fleet.base.url,
                    "service": SERVICE,
                    "labels": {"version": fleet.base.version},
                    "interval": "2s",
                    "profiles": ["goroutine"],
                },
            ),
            ("ghost", {"url": fleet.ghost_url, "service": "ghost", "interval": "2s", "profiles": ["heap"]}),
        ):
            response = client.post("/api/v1/targets", json=body)
            assert response.status_code == 201, response.text
            fleet.targets[name] = response.json()


def closed_port_url() -> str:
    """A loopback URL nobody listens on (the port was free a moment ago)."""
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


@contextmanager
def running_fleet(database: Path) -> Iterator[Fleet]:
    """The live server with scraper, the two demo instances, their pushed profiles and the two targets."""
    from stackyard.runtime import build_server

    with ExitStack() as stack:
        base_url = stack.enter_context(running())
        slow_url = stack.enter_context(running("-slow-factor", str(SLOW_FACTOR), "-leak-rate", str(LEAK_RATE)))
        live = stack.enter_context(serving(f"sqlite:///{database}", build=build_server))
        fleet = Fleet(live, Demo(base_url, "1.4"), Demo(slow_url, "1.5"), closed_port_url())
        fill(fleet)
        add_targets(fleet)
        yield fleet
