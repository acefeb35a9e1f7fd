"""``kill -9`` of a real ``stackyard serve`` during a push burst: the store stays consistent and serves at once.

Each write is one transaction (profile row, blob, rollup invalidation), so a
crash can only lose writes that were never acknowledged. The test checks
that with ``stackyard check``, that every acknowledged profile survived, that
retries of every push after the restart store nothing twice, and that the
restarted server answers queries straight away; on SQLite and PostgreSQL.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import httpx
import pytest
from sqlalchemy import func, select

from server.ingest.profile import ingest
from server.settings import Settings
from server.store.models import ProfileBlob, ProfileRow, Rollup
from server.store.repository import Store
from server.upkeep.jobs import build_rollups
from tests.conftest import TEST_RETENTION
from tests.support.pgserver import free_port
from tests.support.procs import stackyard, status, wait_for
from tests.support.tools import DATA

FILES = {name: (DATA / f"{name}.pb.gz").read_bytes() for name in ("cpu", "cpu2", "heap", "goroutine", "allocs")}
HOUR_NS = 3600 * 10**9
PUSHERS = 4


def _prefill(database_url: str, now_ns: int) -> int:
    """Profiles in two closed hours, rolled up: the burst's late profiles land there and must drop those rollups."""
    store = Store.from_url(database_url)
    settings = Settings(database_url=database_url, retention_raw=TEST_RETENTION)
    try:
        hour = now_ns - now_ns % HOUR_NS
        for back in (3, 2):
            for index, data in enumerate(FILES.values()):
                ingest(store, settings, data, {"service": "burst"}, None, hour - back * HOUR_NS + index * 10**9)
        return build_rollups(store)["hourly"]
    finally:
        store.close()


class Burst:
    """Threads pushing as fast as the server takes it, each push with its own idempotency key."""

    def __init__(self, base: str, now_ns: int) -> None:
        self.base = base
        self.now_ns = now_ns
        self.acked: dict[str, int] = {}
        self.sent: list[str] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._push, args=(n,), daemon=True) for n in range(PUSHERS)]

    def _push(self, pusher: int) -> None:
        names = list(FILES)
        with httpx.Client(timeout=30) as client:
            for n in range(100_000):
                key = f"p{pusher}-{n}"
                name = names[n % len(names)]
                # Spread over the last three hours: many are late for an hour already rolled up.
                when = self.now_ns - (n * 7919 + pusher * 104729) % (3 * HOUR_NS // 10**9) * 10**9
                with self.lock:
                    self.sent.append(key)
                try:
                    response = client.post(
                        self.base + "/api/v1/ingest",
                        params={"service": "burst", "time": str(when // 10**9)},
                        content=FILES[name],
                        headers={"Idempotency-Key": key},
                    )
                except httpx.HTTPError:
                    return  # the server is gone
                assert response.status_code == 201, response.text
                with self.lock:
                    self.acked[key] = int(response.json()["id"])

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=60)


def _check(database_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stackyard", "check", "--database-url", database_url],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env={"STACKYARD_RETENTION_RAW": TEST_RETENTION, "PATH": "/usr/bin:/bin"},
    )


@pytest.mark.timeout(300)
def test_kill_9_during_a_push_burst_leaves_the_store_consistent(database_url: str) -> None:
    now_ns = time.time_ns()
    assert _prefill(database_url, now_ns) == 2 * 4  # two hours, four shapes (cpu twice)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "STACKYARD_DATABASE_URL": database_url,
        "STACKYARD_PORT": str(port),
        "STACKYARD_RETENTION_RAW": TEST_RETENTION,
    }
    burst = Burst(base, now_ns)
    started = time.monotonic()
    with stackyard(["serve"], env) as server:
        wait_for(lambda: status(base + "/readyz") == 200, 60, "the server", server)
        first_ready_s = time.monotonic() - started
        burst.start()
        wait_for(lambda: len(burst.acked) >= 60, 120, "a burst under way", server)
        server.kill()  # SIGKILL: no shutdown hook, no flush, transactions cut wherever they were
        server.wait(timeout=30)
        burst.join()
    assert server.returncode == -9
    in_flight = [key for key in burst.sent if key not in burst.acked]
    assert in_flight, "the kill should have caught pushes in flight"

    done = _check(database_url)
    assert done.returncode == 0, done.stderr
    assert "store consistent" in done.stdout

    store = Store.from_url(database_url)
    try:
        with store.engine.connect() as conn:
            surviving = dict(
                conn.execute(
                    select(ProfileRow.id, ProfileRow.id)
                    .join(ProfileBlob, ProfileBlob.profile_id == ProfileRow.id)
                    .where(ProfileRow.id.in_(list(burst.acked.values())))
                ).all()
            )
            rollups_left = int(conn.execute(select(func.count()).select_from(Rollup)).scalar_one())
    finally:
        store.close()
    # Acknowledged means committed: every one survived, with its blob.
    assert set(surviving) == set(burst.acked.values())
    assert rollups_left < 8  # late profiles landed in the rolled-up hours and dropped their rollups atomically

    started = time.monotonic()
    with stackyard(["serve"], env) as server:
        wait_for(lambda: status(base + "/readyz") == 200, 60, "the restarted server", server)
        ready_s = time.monotonic() - started
        top = httpx.get(base + "/api/v1/top", params={"type": "heap", "from": "now-6h"}, timeout=60)
        assert top.status_code == 200, top.text
        # Every push retried after the restart: the acknowledged ones answer with their profile, nothing doubles.
        with httpx.Client(timeout=30) as client:
            for key in burst.sent:
                pusher, n = key[1:].split("-")
                name = list(FILES)[int(n) % len(FILES)]
                when = now_ns - (int(n) * 7919 + int(pusher) * 104729) % (3 * HOUR_NS // 10**9) * 10**9
                response = client.post(
                    base + "/api/v1/ingest",
                    params={"service": "burst", "time": str(when // 10**9)},
                    content=FILES[name],
                    headers={"Idempotency-Key": key},
                )
                if key in burst.acked:
                    assert response.status_code == 200 and response.json()["id"] == burst.acked[key], response.text
                else:
                    assert response.status_code in (200, 201), response.text
        heap_pushed = sum(1 for key in burst.sent if int(key.split("-")[1]) % len(FILES) == 2)
        top = httpx.get(base + "/api/v1/top", params={"type": "heap", "from": "now-6h"}, timeout=60)
        assert top.status_code == 200
        assert top.json()["profiles"] == heap_pushed + 2  # the burst's heap profiles once each, and the prefill's
    store = Store.from_url(database_url)
    try:
        with store.engine.connect() as conn:
            rows, keys = conn.execute(
                select(func.count(ProfileRow.id), func.count(func.distinct(ProfileRow.idempotency_key)))
            ).one()
    finally:
        store.close()
    assert (rows, keys) == (len(burst.sent) + 10, len(burst.sent))  # the prefill's ten have no key
    assert _check(database_url).returncode == 0
    print(f"acked {len(burst.acked)}, in flight at the kill {len(in_flight)}")
    print(f"ready after the first start {first_ready_s:.2f} s, after the crash {ready_s:.2f} s")
