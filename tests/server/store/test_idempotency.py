"""Idempotency keys: a repeated write answers with the first profile and never stores a second row, on both DBs."""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from server.ingest.profile import ingest
from server.settings import Settings
from server.store.models import ProfileBlob, ProfileRow
from server.store.repository import Store
from tests.support.tools import DATA

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)

HEAP = (DATA / "heap.pb.gz").read_bytes()
CPU = (DATA / "cpu.pb.gz").read_bytes()
WHEN = "2026-11-01T10:00:00Z"


def _counts(store: Store) -> tuple[int, int, int]:
    with store.engine.connect() as conn:
        profiles = int(conn.execute(select(func.count()).select_from(ProfileRow)).scalar_one())
        blobs = int(conn.execute(select(func.count()).select_from(ProfileBlob)).scalar_one())
        keys = int(conn.execute(select(func.count(func.distinct(ProfileRow.idempotency_key)))).scalar_one())
    return profiles, blobs, keys


def _post(client: TestClient, data: bytes, service: str = "demo", **extra: str) -> tuple[int, dict[str, object]]:
    headers = {"Idempotency-Key": extra.pop("key")} if "key" in extra else {}
    response = client.post(
        "/api/v1/ingest", params={"service": service, "time": WHEN, **extra}, content=data, headers=headers
    )
    return response.status_code, response.json()


def test_a_repeated_push_is_answered_with_the_first_profile(client: TestClient, store: Store) -> None:
    status, first = _post(client, HEAP, key="push-1")
    assert status == 201, first
    assert "replayed" not in first
    for _ in range(3):
        status, again = _post(client, HEAP, key="push-1")
        assert status == 200, again
        assert again["id"] == first["id"]
        assert again["replayed"] is True
        assert again["totals"] == first["totals"]
        assert again["series"] == first["series"]
    assert _counts(store) == (1, 1, 1)
    # Another key, or none, is another profile (pushes without a key are never deduplicated).
    status, other = _post(client, HEAP, key="push-2")
    assert status == 201 and other["id"] != first["id"]
    status, keyless = _post(client, HEAP)
    status_again, keyless_again = _post(client, HEAP)
    assert (status, status_again) == (201, 201) and keyless["id"] != keyless_again["id"]
    assert _counts(store) == (4, 4, 2)


def test_the_key_may_come_as_a_query_parameter(client: TestClient, store: Store) -> None:
    status, first = _post(client, CPU, idempotency_key="q-1")
    assert status == 201
    status, again = _post(client, CPU, key="q-1")  # the header names the same key
    assert status == 200 and again["id"] == first["id"]
    assert _counts(store) == (1, 1, 1)


def test_a_key_reused_for_another_series_is_a_conflict(client: TestClient, store: Store) -> None:
    status, _ = _post(client, HEAP, key="shared")
    assert status == 201
    status, body = _post(client, HEAP, service="other", key="shared")
    assert status == 409
    assert body["status"] == 409 and "idempotency key" in str(body["error"])
    assert _counts(store) == (1, 1, 1)


@pytest.mark.parametrize("key", ["", "x" * 257, "tab\there"])
def test_a_malformed_key_is_refused(client: TestClient, store: Store, key: str) -> None:
    status, body = _post(client, HEAP, idempotency_key=key)
    assert status == 400, body
    assert "Idempotency-Key" in str(body["error"])
    assert _counts(store)[0] == 0


def test_racing_writers_with_one_key_store_one_row(store: Store, settings: Settings) -> None:
    """Eight threads at once (two processes' retries, say): the unique index settles it inside the transaction."""
    results: list[tuple[int, bool]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def write() -> None:
        try:
            barrier.wait()
            stored = ingest(
                store, settings, HEAP, {"service": "race"}, None, 1_790_000_000 * 10**9, idempotency_key="race-key"
            ).stored
            results.append((stored.id, stored.created))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len({pid for pid, _ in results}) == 1
    assert sorted(created for _, created in results) == [False] * 7 + [True]
    assert _counts(store) == (1, 1, 1)
