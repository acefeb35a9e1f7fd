"""Pushes stored by worker processes answer exactly as in-process ingest does, on both databases."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from sqlalchemy import func, select

from server.app import create_app
from server.ingest.storelimits import limit_rejections
from server.ingest.workers import IngestWorkers, PushAnswer, RemoteRefusal, WorkerFailed
from server.settings import Settings
from server.store.availability import is_unavailable
from server.store.models import ProfileBlob, ProfileRow
from server.store.repository import Store
from stackyard.ingestsink import scraped_ingest
from tests.conftest import TEST_RETENTION
from tests.support.tools import DATA

WHEN = "2026-09-01T10:00:00Z"
WINDOW = ("2026-09-01T09:00:00Z", "2026-09-01T11:00:00Z")
CAPTURES = ["cpu.pb.gz", "heap.pb.gz", "goroutine.pb.gz", "mutex.pb.gz", "block.pb.gz"]


@pytest.fixture
def pooled(database_url: str) -> Iterator[TestClient]:
    settings = Settings(
        database_url=database_url, retention_raw=TEST_RETENTION, ingest_processes=2, max_profile_samples=500
    )
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def threaded(database_url: str) -> Iterator[TestClient]:
    settings = Settings(database_url=database_url, retention_raw=TEST_RETENTION, max_profile_samples=500)
    with TestClient(create_app(settings)) as client:
        yield client


def _push(client: TestClient, data: bytes, service: str, **params: str) -> tuple[int, dict[str, object]]:
    response = client.post("/api/v1/ingest", params={"service": service, "time": WHEN, **params}, content=data)
    return response.status_code, response.json()


def _rows(database_url: str) -> tuple[int, int]:
    store = Store.from_url(database_url)
    try:
        with store.engine.connect() as conn:
            rows = int(conn.execute(select(func.count()).select_from(ProfileRow)).scalar_one())
            blobs = int(conn.execute(select(func.count()).select_from(ProfileBlob)).scalar_one())
    finally:
        store.close()
    return rows, blobs


def test_answers_equal_in_process_ingest(pooled: TestClient, database_url: str) -> None:
    """Each capture pushed through the workers and through threads: same type, samples and totals."""
    settings = Settings(database_url=database_url, retention_raw=TEST_RETENTION)
    with TestClient(create_app(settings)) as threaded:
        for name in CAPTURES:
            data = (DATA / name).read_bytes()
            status, by_worker = _push(pooled, data, "pooled")
            status_threaded, in_process = _push(threaded, data, "threaded")
            assert (status, status_threaded) == (201, 201), (by_worker, in_process)
            for field in ("type", "samples", "totals", "time"):
                assert by_worker[field] == in_process[field], field
            assert by_worker["id"] != in_process["id"]
    assert _rows(database_url) == (2 * len(CAPTURES), 2 * len(CAPTURES))
    # The API process reads what the workers wrote (its caches never saw those stacks): the same flame graph.
    graphs = []
    for service in ("pooled", "threaded"):
        params = {"type": "cpu", "query": f'{{service="{service}"}}', "from": WINDOW[0], "to": WINDOW[1]}
        response = pooled.get("/api/v1/flamegraph", params=params)
        assert response.status_code == 200, response.text
        graphs.append(response.json())
    assert graphs[0]["total"] == graphs[1]["total"] > 0
    assert graphs[0]["names"] == graphs[1]["names"] and graphs[0]["levels"] == graphs[1]["levels"]


def test_an_idempotent_retry_is_replayed_by_any_worker(pooled: TestClient, database_url: str) -> None:
    data = (DATA / "heap.pb.gz").read_bytes()
    status, first = _push(pooled, data, "keyed", idempotency_key="k-1")
    assert status == 201
    for _ in range(4):  # two workers: the retries land on both
        status, again = _push(pooled, data, "keyed", idempotency_key="k-1")
        assert status == 200 and again["id"] == first["id"] and again["replayed"] is True
    assert _rows(database_url) == (1, 1)


def test_refusals_are_the_same_errors_as_in_process(pooled: TestClient, threaded: TestClient) -> None:
    cases = [
        (b"not a profile at all", {}),
        ((DATA / "heap.pb.gz").read_bytes(), {"type": "nonsense"}),
        ((DATA / "cpu.pb.gz").read_bytes(), {"idempotency_key": "x" * 300}),
    ]
    for data, params in cases:
        assert _push(pooled, data, "bad", **params) == _push(threaded, data, "bad", **params)
        status, body = _push(pooled, data, "bad", **params)
        assert 400 <= status < 500 and body["status"] == status and body["error"]


def test_a_store_limit_refused_in_a_worker_is_counted_here(pooled: TestClient) -> None:
    """The production-sized capture has about 2,000 samples: over max_profile_samples=500."""
    big = (DATA / "big_cpu.pb.gz").read_bytes()
    status, body = _push(pooled, big, "limited")
    assert status == 413, body
    assert "max_profile_samples" in str(body["error"])
    metrics = pooled.get("/metrics").text
    assert 'stackyard_limit_rejections_total{limit="profile_samples"} 1.0' in metrics


def test_a_killed_worker_costs_one_retryable_503_at_most(pooled: TestClient, database_url: str) -> None:
    data = (DATA / "cpu.pb.gz").read_bytes()
    assert _push(pooled, data, "crash")[0] == 201
    workers = pooled.app.state.ingest_workers  # type: ignore[attr-defined]
    pids = list(workers._executor._processes)
    assert len(pids) == 2
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    statuses = [_push(pooled, data, "crash")[0] for _ in range(6)]
    # The push in flight when the pool breaks is refused with a 503 (the client retries);
    # a new pool takes every later push.
    assert set(statuses) <= {201, 503}
    assert statuses[-3:] == [201, 201, 201]
    stored = 1 + statuses.count(201)
    assert _rows(database_url) == (stored, stored)
    assert not set(pids) & set(workers._executor._processes)


def test_scraped_profiles_go_through_the_workers_too(database_url: str) -> None:
    """The in-process collector's ingest function hands pprof kinds to the pool, refusals counted here."""
    settings = Settings(database_url=database_url, retention_raw=TEST_RETENTION, max_profile_samples=500)
    workers = IngestWorkers(settings, 1)
    registry = CollectorRegistry()
    rejections = limit_rejections(registry)
    store = Store.from_url(database_url)
    asyncio.run(workers.start())
    try:
        pid = next(iter(workers._executor._processes))  # type: ignore[union-attr]
        ingest_scraped = scraped_ingest(store, settings, rejections, None, workers)
        answer = ingest_scraped((DATA / "heap.pb.gz").read_bytes(), {"service": "scraped"}, "heap", 10**18, "s-1")
        assert isinstance(answer, PushAnswer) and answer.created and answer.body.kind == "heap"
        # Stored by the worker, which then is the only process that has seen its stacks.
        assert store.stacks.known.sum() == 1  # the root alone: this process resolved nothing
        assert _rows(database_url) == (1, 1)
        with pytest.raises(RemoteRefusal) as refused:
            ingest_scraped((DATA / "big_cpu.pb.gz").read_bytes(), {"service": "scraped"}, "cpu", 10**18, "s-2")
        assert refused.value.status_code == 413 and refused.value.limit == "profile_samples"
        assert registry.get_sample_value("stackyard_limit_rejections_total", {"limit": "profile_samples"}) == 1
        # A killed worker is an outage to the collector's sink (it buffers and retries), not a bad profile.
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(WorkerFailed) as failed:
            for _ in range(3):  # the pool may notice the death only at the next call
                ingest_scraped((DATA / "heap.pb.gz").read_bytes(), {"service": "scraped"}, "heap", 10**18 + 1, "s-3")
        assert is_unavailable(failed.value)
        again = ingest_scraped((DATA / "heap.pb.gz").read_bytes(), {"service": "scraped"}, "heap", 10**18 + 1, "s-3")
        assert isinstance(again, PushAnswer) and again.body.kind == "heap"
    finally:
        asyncio.run(workers.stop())
        store.close()
