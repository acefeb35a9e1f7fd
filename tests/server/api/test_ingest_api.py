"""Push ingest over HTTP: good profiles are stored; every kind of bad input is a clear 4xx and stores nothing."""

from __future__ import annotations

import gzip

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from server.pprof import profile_pb2
from server.store.models import Base
from server.store.repository import Store
from tests.support.helpers import push
from tests.support.hostile import long_string
from tests.support.tools import DATA

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)


def _row_counts(store: Store) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {
            table.name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            for table in Base.metadata.sorted_tables
        }


def test_push_answers_with_the_stored_profile(client: TestClient) -> None:
    body = push(client, DATA / "cpu.pb.gz", label="env=prod", time="2026-11-01T10:00:00Z")
    assert body["type"] == "cpu"
    assert body["time"] == "2026-11-01T10:00:00Z"
    assert body["series"]["labels"] == {"env": "prod", "service": "demo"}
    assert body["samples"] > 0
    assert set(body["totals"]) == {"samples", "cpu"}
    assert body["totals"]["cpu"] == body["totals"]["samples"] * 10_000_000


def test_time_as_unix_seconds_and_raw_protobuf(client: TestClient) -> None:
    raw = gzip.decompress((DATA / "goroutine.pb.gz").read_bytes())
    response = client.post("/api/v1/ingest", params={"service": "demo", "time": "1700000000"}, content=raw)
    assert response.status_code == 201, response.text
    assert response.json()["time"] == "2023-11-14T22:13:20Z"
    assert response.json()["type"] == "goroutine"


def test_same_content_is_stored_once(client: TestClient, store: Store) -> None:
    push(client, DATA / "big_cpu.pb.gz")
    first = _row_counts(store)
    push(client, DATA / "big_cpu.pb.gz")
    second = _row_counts(store)
    assert second["profiles"] == first["profiles"] + 1
    assert second["segments"] == first["segments"]  # no new function, node, frame or key: no segment written
    assert second["series"] == first["series"]


def _invalid_messages() -> dict[str, bytes]:
    message = profile_pb2.Profile()
    message.ParseFromString(gzip.decompress((DATA / "cpu.pb.gz").read_bytes()))
    dangling = profile_pb2.Profile()
    dangling.CopyFrom(message)
    dangling.sample[0].location_id.append(987654)
    mismatched = profile_pb2.Profile()
    mismatched.CopyFrom(message)
    mismatched.sample[1].value.append(1)
    data = (DATA / "cpu.pb.gz").read_bytes()
    return {
        "garbage": b"\x00\x01garbage bytes that are not pprof",
        "truncated_gzip": data[: len(data) // 3],
        "gzip_of_invalid_protobuf": gzip.compress(b"\x12\x7fnot a message"),
        "dangling_ids": gzip.compress(dangling.SerializeToString()),
        "mismatched_value_counts": gzip.compress(mismatched.SerializeToString()),
    }


BAD_BODIES = _invalid_messages()
EXPECTED = {
    "garbage": "profile",
    "truncated_gzip": "decompressing profile: truncated gzip",
    "gzip_of_invalid_protobuf": "parsing profile",
    "dangling_ids": "location 987654",
    "mismatched_value_counts": "values but the profile declares",
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_bad_bodies_are_rejected_and_nothing_is_stored(client: TestClient, store: Store, case: str) -> None:
    push(client, DATA / "heap.pb.gz")
    before = _row_counts(store)
    response = client.post("/api/v1/ingest", params={"service": "demo"}, content=BAD_BODIES[case])
    assert response.status_code == 400, response.text
    assert EXPECTED[case] in response.json()["error"]
    assert _row_counts(store) == before


def test_empty_body(client: TestClient, store: Store) -> None:
    before = _row_counts(store)
    response = client.post("/api/v1/ingest", params={"service": "demo"}, content=b"")
    assert response.status_code == 400
    assert "empty body" in response.json()["error"]
    assert _row_counts(store) == before


def test_gzip_bomb_is_413(client: TestClient, store: Store) -> None:
    client.app.state.settings.max_decompressed_bytes = 4 * 1024 * 1024  # type: ignore[attr-defined]
    bomb = long_string(12 * 1024 * 1024)
    assert len(bomb) < 128 * 1024
    before = _row_counts(store)
    response = client.post("/api/v1/ingest", params={"service": "demo"}, content=bomb)
    assert response.status_code == 413
    assert "exceeds the limit of 4194304 bytes" in response.json()["error"]
    assert _row_counts(store) == before


def test_gzip_bomb_of_garbage_is_refused_at_its_first_byte(client: TestClient, store: Store) -> None:
    bomb = gzip.compress(b"\x00" * (64 * 1024 * 1024))
    before = _row_counts(store)
    response = client.post("/api/v1/ingest", params={"service": "demo"}, content=bomb)
    assert response.status_code == 400
    assert response.json()["error"] == "parsing profile: invalid field number 0 at offset 0"
    assert _row_counts(store) == before


def test_body_over_the_limit_is_413(client: TestClient) -> None:
    client.app.state.settings.max_body_bytes = 1000  # type: ignore[attr-defined]
    response = client.post("/api/v1/ingest", params={"service": "demo"}, content=(DATA / "cpu.pb.gz").read_bytes())
    assert response.status_code == 413
    assert "limit of 1000 bytes" in response.json()["error"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"service": "demo", "type": "cpuu"}, "unknown profile type 'cpuu'"),
        ({}, "service"),
        ({"service": "demo", "label": "no-equals"}, "is not KEY=VALUE"),
        ({"service": "demo", "label": "1bad=x"}, "not a valid label name"),
        ({"service": "demo", "time": "yesterday-ish"}, "time: 'yesterday-ish' is not RFC 3339"),
    ],
)
def test_bad_parameters(client: TestClient, store: Store, params: dict[str, str], message: str) -> None:
    before = _row_counts(store)
    response = client.post("/api/v1/ingest", params=params, content=(DATA / "cpu.pb.gz").read_bytes())
    assert 400 <= response.status_code < 500
    assert message in response.json()["error"]
    assert _row_counts(store) == before


def test_ambiguous_contention_profile_needs_a_type(client: TestClient) -> None:
    message = profile_pb2.Profile()
    message.ParseFromString(gzip.decompress((DATA / "mutex.pb.gz").read_bytes()))
    del message.sample[:]
    response = client.post("/api/v1/ingest", params={"service": "demo"}, content=message.SerializeToString())
    assert response.status_code == 400
    assert "pass type=" in response.json()["error"]
    ok = client.post("/api/v1/ingest", params={"service": "demo", "type": "mutex"}, content=message.SerializeToString())
    assert ok.status_code == 201
    assert ok.json()["totals"] == {"contentions": 0, "delay": 0}


def test_labels_and_values(client: TestClient) -> None:
    push(client, DATA / "cpu.pb.gz", service="api", label="env=prod")
    push(client, DATA / "cpu.pb.gz", service="web", label="env=dev")
    push(client, DATA / "heap.pb.gz", service="db", label="region=eu")
    assert client.get("/api/v1/labels").json()["names"] == ["env", "region", "service"]
    assert client.get("/api/v1/labels", params={"type": "cpu"}).json()["names"] == ["env", "service"]
    values = client.get("/api/v1/labels/service/values").json()
    assert values == {"name": "service", "values": ["api", "db", "web"], "sample_label": False}
    filtered = client.get("/api/v1/labels/service/values", params={"query": '{env="prod"}'}).json()
    assert filtered["values"] == ["api"]


def test_health(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/readyz").json() == {"status": "ok"}
