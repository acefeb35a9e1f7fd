"""PostgreSQL going away and coming back, with real processes: 503s, not-ready, buffering, nothing lost or doubled.

These tests stop and start a PostgreSQL server of their own (``pg_ctl stop``
and ``start``), so the session's shared server is never disturbed.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.pool import NullPool

from collector.errors import InvalidProfile
from collector.metrics import CollectorMetrics
from collector.sinks import ScrapedProfile
from server.app import create_app
from server.ingest.profile import ingest
from server.migrate import upgrade
from server.settings import Settings
from server.store.check import check_store
from server.store.models import ProfileRow, Series
from server.store.repository import Store
from stackyard.ingestsink import InProcessSink
from tests.conftest import TEST_RETENTION
from tests.support.godemo import running
from tests.support.pgserver import PostgresServer, free_port
from tests.support.procs import metric, stackyard, status, wait_for
from tests.support.tools import DATA, postgres_bindir

HEAP = (DATA / "heap.pb.gz").read_bytes()


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[PostgresServer]:
    server = PostgresServer(postgres_bindir())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg(own_postgres: PostgresServer) -> Iterator[PostgresServer]:
    """The module's server, running at the start of each test and again after it, whatever the test did."""
    if not own_postgres.running():
        own_postgres.resume()
    yield own_postgres
    if not own_postgres.running():
        own_postgres.resume()


def _fresh_database(pg: PostgresServer) -> str:
    return pg.create_database(f"f_{uuid.uuid4().hex[:12]}")


@pytest.mark.parametrize("ingest_processes", [0, 2], ids=["in-process", "ingest-workers"])
def test_ingest_answers_503_and_readyz_not_ready_while_postgres_is_down(
    pg: PostgresServer, ingest_processes: int
) -> None:
    url = _fresh_database(pg)
    upgrade(url)
    store = Store.from_url(url)
    settings = Settings(database_url=url, retention_raw=TEST_RETENTION, ingest_processes=ingest_processes)
    params = {"service": "api", "time": "2026-11-01T10:00:00Z"}
    try:
        with TestClient(create_app(settings, store)) as client:
            assert client.post("/api/v1/ingest", params=params, content=HEAP).status_code == 201
            assert client.get("/readyz").status_code == 200
            pg.pause()
            down = client.post("/api/v1/ingest", params=params, content=HEAP, headers={"Idempotency-Key": "k1"})
            assert down.status_code == 503
            body = down.json()
            assert body["status"] == 503 and body["error"].startswith("database unavailable")
            assert down.headers["Retry-After"] == "5"
            ready = client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["error"].startswith("database unavailable")
            query = client.get("/api/v1/top", params={"type": "heap", "from": "0"})
            assert query.status_code == 503 and query.json()["status"] == 503
            pg.resume()
            # The pool's dead connections are noticed on checkout (pre-ping) and replaced: no restart needed.
            wait_for(lambda: client.get("/readyz").status_code == 200, 30, "readyz after the restart")
            again = client.post("/api/v1/ingest", params=params, content=HEAP, headers={"Idempotency-Key": "k1"})
            assert again.status_code == 201, again.text
            replay = client.post("/api/v1/ingest", params=params, content=HEAP, headers={"Idempotency-Key": "k1"})
            assert replay.status_code == 200 and replay.json()["id"] == again.json()["id"]
            top = client.get("/api/v1/top", params={"type": "heap", "from": "0"})
            assert top.status_code == 200 and top.json()["profiles"] == 2
    finally:
        store.close()


def test_a_server_started_while_postgres_is_down_becomes_ready_when_it_comes_up(
    pg: PostgresServer, tmp_path: Path
) -> None:
    url = _fresh_database(pg)  # created, but never migrated: the server does that once it can
    pg.pause()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "STACKYARD_DATABASE_URL": url,
        "STACKYARD_PORT": str(port),
        "STACKYARD_DATABASE_RETRY_MAX_INTERVAL": "1",
        "STACKYARD_RETENTION_RAW": TEST_RETENTION,
    }
    with stackyard(["serve"], env) as process:
        wait_for(lambda: status(base + "/healthz") == 200, 60, "the server to listen", process)
        ready = httpx.get(base + "/readyz", timeout=5)
        assert ready.status_code == 503
        assert "database unavailable" in ready.json()["error"] and "migration pending" in ready.json()["error"]
        push = httpx.post(base + "/api/v1/ingest", params={"service": "api"}, content=HEAP, timeout=10)
        assert push.status_code == 503 and push.json()["error"].startswith("database unavailable")
        time.sleep(2)  # several failed attempts with backoff, and still serving
        assert process.poll() is None
        pg.resume()
        wait_for(lambda: status(base + "/readyz") == 200, 30, "readyz once PostgreSQL is up", process)
        push = httpx.post(base + "/api/v1/ingest", params={"service": "api"}, content=HEAP, timeout=10)
        assert push.status_code == 201, push.text
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(ProfileRow)).scalar_one() == 1
    finally:
        engine.dispose()


KINDS_OFF = ", ".join(
    f"{kind}: {{enabled: false}}"
    for kind in ("cpu", "allocs", "mutex", "block", "threadcreate", "goroutine_dump", "goroutineleak")
)
SINK = ("sent", "dropped", "rejected")


def _config(path: Path, job: str, target: str) -> Path:
    path.write_text(
        f"scrape_configs:\n  - job_name: {job}\n    scrape_interval: 1s\n"
        f"    profiles: {{{KINDS_OFF}}}\n"
        f"    static_configs:\n      - targets: ['{target.removeprefix('http://')}']\n"
    )
    return path


def _scraped(base: str) -> float:
    return metric(base, "stackyard_scrapes_total", result="success")


def _per_service(engine: Engine, since_ns: int = 0) -> dict[str, int]:
    with engine.connect() as conn:
        # Profiles first: a series is committed before any profile of it, so the labels read next
        # name every series these rows do (the other order misses a series created in between).
        rows = conn.execute(
            select(ProfileRow.series_id, func.count())
            .where(ProfileRow.time_ns >= since_ns)
            .group_by(ProfileRow.series_id)
        ).all()
        labels = dict(conn.execute(select(Series.id, Series.labels)).all())
    counts: dict[str, int] = {}
    for series_id, n in rows:
        service = labels[series_id]["service"]
        counts[service] = counts.get(service, 0) + int(n)
    return counts


@pytest.mark.timeout(300)
def test_postgres_stopped_mid_run_loses_and_doubles_nothing(pg: PostgresServer, tmp_path: Path) -> None:
    """Real Go targets scraped every second by ``serve`` (in-process) and by ``collect`` (pushing to it);
    PostgreSQL stopped for six seconds, then started again: every successful scrape is stored exactly once."""
    url = _fresh_database(pg)
    port, collector_port = free_port(), free_port()
    base, collector = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{collector_port}"
    env = {
        "STACKYARD_DATABASE_URL": url,
        "STACKYARD_PORT": str(port),
        "STACKYARD_SCRAPE_SYNC_INTERVAL": "1",
        "STACKYARD_DATABASE_RETRY_MAX_INTERVAL": "1",
        "STACKYARD_RETENTION_RAW": TEST_RETENTION,
    }
    engine = create_engine(url, poolclass=NullPool)  # the test's own connections must not outlive the outage

    def stored() -> int:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(ProfileRow)).scalar_one())

    targets = contextlib.ExitStack()
    try:
        in_process_target = targets.enter_context(running())
        pushed_target = targets.enter_context(running())
        serve_config = _config(tmp_path / "serve.yaml", "inproc", in_process_target)
        collect_config = _config(tmp_path / "collect.yaml", "pushed", pushed_target)
        collect_args = ["collect", "--push-url", base, "--config", str(collect_config)]
        with (
            stackyard(["serve", "--config", str(serve_config)], env) as server,
            stackyard([*collect_args, "--listen", f"127.0.0.1:{collector_port}"], env) as pusher,
        ):
            wait_for(lambda: status(base + "/readyz") == 200, 60, "the server", server)
            wait_for(lambda: len(_per_service(engine)) == 2 and stored() >= 8, 60, "profiles from both paths", pusher)
            down_from = time.time_ns()
            pg.pause()
            outage_ends = time.monotonic() + 6
            wait_for(lambda: status(base + "/readyz") == 503, 10, "readyz to say not ready", server)
            push = httpx.post(base + "/api/v1/ingest", params={"service": "x"}, content=HEAP, timeout=10)
            assert push.status_code == 503 and push.json()["error"].startswith("database unavailable")
            # Both collectors keep scraping into their buffers meanwhile.
            wait_for(lambda: metric(base, "stackyard_sink_buffered") >= 3, 10, "the in-process buffer", server)
            wait_for(lambda: metric(collector, "stackyard_sink_buffered") >= 3, 10, "the push buffer", pusher)
            time.sleep(max(0.0, outage_ends - time.monotonic()))
            up_from = time.time_ns()
            pg.resume()
            wait_for(lambda: status(base + "/readyz") == 200, 30, "readyz after the restart", server)
            wait_for(lambda: metric(base, "stackyard_sink_buffered") == 0, 60, "the in-process buffer to drain")
            wait_for(lambda: metric(collector, "stackyard_sink_buffered") == 0, 60, "the push buffer to drain")
            targets.close()  # no more successful scrapes from here on
            time.sleep(2.5)  # scrapes in flight end (refused), their profiles (if any) reach the sinks
            wait_for(lambda: metric(base, "stackyard_sink_buffered") == 0, 60, "the in-process buffer, finally")
            wait_for(lambda: metric(collector, "stackyard_sink_buffered") == 0, 60, "the push buffer, finally")
            in_process = {name: metric(base, f"stackyard_sink_{name}_total") for name in SINK}
            pushed = {name: metric(collector, f"stackyard_sink_{name}_total") for name in SINK}
            in_process_scraped, pushed_scraped = _scraped(base), _scraped(collector)
        report = check_store(engine)
        assert report.ok, report.problems
        with engine.connect() as conn:
            keyed = conn.execute(
                select(func.count(ProfileRow.id), func.count(func.distinct(ProfileRow.idempotency_key)))
            ).one()
        per_service = _per_service(engine)
        during = _per_service(engine, down_from)
        after_outage = _per_service(engine, up_from)
    finally:
        targets.close()
        engine.dispose()
    # Nothing dropped or refused, every successful scrape handed on once.
    assert in_process == {"sent": in_process_scraped, "dropped": 0, "rejected": 0}
    assert pushed == {"sent": pushed_scraped, "dropped": 0, "rejected": 0}
    # Stored exactly once each: counts match the scrapes, and every row has its own idempotency key.
    assert per_service == {"inproc": in_process_scraped, "pushed": pushed_scraped}
    assert keyed == (in_process_scraped + pushed_scraped, in_process_scraped + pushed_scraped)
    # And the outage was real: profiles scraped while PostgreSQL was down were written afterwards.
    outage_rows = {service: during[service] - after_outage.get(service, 0) for service in during}
    assert outage_rows["inproc"] >= 3 and outage_rows["pushed"] >= 3, outage_rows


def test_the_in_process_buffer_drops_the_oldest_when_full_and_writes_the_rest(pg: PostgresServer) -> None:
    url = _fresh_database(pg)
    upgrade(url)
    store = Store.from_url(url)
    settings = Settings(database_url=url, retention_raw=TEST_RETENTION)
    registry = CollectorRegistry()
    metrics = CollectorMetrics(registry)

    def ingest_scraped(data: bytes, labels: dict[str, str], kind: str, time_ns: int, key: str) -> object:
        return ingest(store, settings, data, labels, kind, time_ns, idempotency_key=key)

    sink = InProcessSink(ingest_scraped, metrics, buffer_size=3, max_backoff_s=0.5)
    times = [1_790_000_000 * 10**9 + n * 10**9 for n in range(5)]

    async def scenario() -> None:
        await sink.send(ScrapedProfile("heap", {"service": "buf"}, HEAP, times[0] - 10**9, "t"))  # stored at once
        pg.pause()
        for when in times:
            await sink.send(ScrapedProfile("heap", {"service": "buf"}, HEAP, when, "t"))
        assert sink.buffered() == 3
        with pytest.raises(InvalidProfile):  # behind a backlog, a bad profile is still refused at once
            await sink.send(ScrapedProfile("heap", {"service": "buf"}, b"not a profile", times[-1] + 1, "t"))
        await asyncio.sleep(1.5)  # retries fail meanwhile, nothing is lost from the buffer
        assert sink.buffered() == 3
        await asyncio.to_thread(pg.resume)
        await sink.close(deadline_s=30)

    try:
        asyncio.run(scenario())
        with store.engine.connect() as conn:
            stored = [int(t) for t in conn.execute(select(ProfileRow.time_ns).order_by(ProfileRow.time_ns)).scalars()]
    finally:
        store.close()
    assert sink.buffered() == 0
    assert registry.get_sample_value("stackyard_sink_dropped_total") == 2
    assert registry.get_sample_value("stackyard_sink_sent_total") == 4
    assert stored == [times[0] - 10**9, *times[2:]]  # the two oldest buffered ones were dropped, in order otherwise


def test_cli_commands_say_database_unavailable_and_exit_3(pg: PostgresServer) -> None:
    url = _fresh_database(pg)
    pg.pause()
    for command in (["migrate"], ["check"]):  # (targets, ingest and query ask a server, not the database)
        done = subprocess.run(
            [sys.executable, "-m", "stackyard", *command, "--database-url", url],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 3, (command, done.stderr)
        assert done.stderr.startswith("stackyard: database unavailable: ") and "Traceback" not in done.stderr
