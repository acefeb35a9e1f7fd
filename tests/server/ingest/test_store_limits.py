"""Limits that protect the store: each refuses with a clear 4xx naming its setting, and is counted in /metrics."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.settings import Settings
from server.store.repository import Store
from tests.conftest import TEST_RETENTION
from tests.support.tools import DATA

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)

CPU = (DATA / "cpu.pb.gz").read_bytes()
HEAP = (DATA / "heap.pb.gz").read_bytes()


@pytest.fixture
def limited(database_url: str, store: Store) -> Iterator[TestClient]:
    settings = Settings(
        database_url=database_url,
        retention_raw=TEST_RETENTION,
        max_labels_per_series=4,
        max_label_name_length=12,
        max_label_value_length=16,
        max_series_per_service=2,
    )
    with TestClient(create_app(settings, store)) as client:
        yield client


def push(client: TestClient, service: str, data: bytes = CPU, **labels: str) -> Any:
    params: list[tuple[str, str]] = [("service", service), ("time", "2026-09-01T10:00:00Z")]
    params += [("label", f"{name}={value}") for name, value in labels.items()]
    return client.post("/api/v1/ingest", params=params, content=data)


def rejections(client: TestClient) -> dict[str, float]:
    text = client.get("/metrics").text
    return {m[0]: float(m[1]) for m in re.findall(r'stackyard_limit_rejections_total\{limit="(\w+)"\} (\S+)', text)}


def test_every_limit_is_in_metrics_from_the_start(limited: TestClient) -> None:
    assert rejections(limited) == {
        "labels_per_series": 0,
        "label_name_length": 0,
        "label_value_length": 0,
        "series_per_service": 0,
        "profile_samples": 0,
        "profile_locations": 0,
        "profile_sample_types": 0,
        "profile_decoded_bytes": 0,
        "profile_record_bytes": 0,
        "dump_goroutines": 0,
        "dump_stacks": 0,
        "dump_bytes": 0,
    }


def test_label_limits(limited: TestClient) -> None:
    too_many = push(limited, "api", a="1", b="2", c="3", d="4")  # service is the fifth
    assert too_many.status_code == 400
    assert too_many.json()["error"] == "label: 5 labels exceed the limit of 4 per series (max_labels_per_series)"
    long_name = push(limited, "api", a_very_long_label_name="x")
    assert long_name.status_code == 400
    assert "is 22 characters, over the limit of 12 (max_label_name_length)" in long_name.json()["error"]
    long_value = push(limited, "api", env="x" * 17)
    assert long_value.status_code == 400
    assert long_value.json()["error"] == "label: the value of 'env' is 17 characters, over the limit of 16 " + (
        "(max_label_value_length)"
    )
    assert push(limited, "api", a="1", b="2", c="3").status_code == 201  # at the limits, accepted
    counts = rejections(limited)
    assert counts["labels_per_series"] == 1 and counts["label_name_length"] == 1 and counts["label_value_length"] == 1


def test_series_per_service(limited: TestClient, store: Store) -> None:
    assert push(limited, "api", instance="a").status_code == 201
    assert push(limited, "api", instance="b").status_code == 201
    refused = push(limited, "api", instance="c")
    assert refused.status_code == 422
    assert refused.json()["error"] == (
        "series limit: service 'api' already has 2 series, the limit (max_series_per_service); "
        "a new label set or profile type is refused"
    )
    # A new profile type is a new series too.
    assert push(limited, "api", HEAP, instance="a").status_code == 422
    # Existing series keep being written, and other services have their own budget.
    assert push(limited, "api", instance="a").status_code == 201
    assert push(limited, "web", instance="c").status_code == 201
    assert rejections(limited)["series_per_service"] == 2
    series = store.series.all()
    assert sorted((s.labels["service"], s.labels.get("instance")) for s in series) == [
        ("api", "a"),
        ("api", "b"),
        ("web", "c"),
    ]
    profiles = limited.get(
        "/api/v1/profiles", params={"type": "cpu", "query": '{service="api"}', "from": "0", "to": "now"}
    )
    assert profiles.status_code == 200 and len(profiles.json()["profiles"]) == 3


def test_series_limit_holds_across_processes(database_url: str) -> None:
    # A second store (another process) sees the series the first created: the count is read from the database.
    settings = Settings(database_url=database_url, retention_raw=TEST_RETENTION, max_series_per_service=1)
    first, second = Store.from_url(database_url), Store.from_url(database_url)
    try:
        with TestClient(create_app(settings, first)) as one, TestClient(create_app(settings, second)) as two:
            assert push(one, "api", instance="a").status_code == 201
            assert push(two, "api", instance="b").status_code == 422
            assert push(two, "api", instance="a").status_code == 201
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize(
    ("setting", "limit", "message"),
    [
        ("max_profile_samples", "profile_samples", "body: the profile has more than 10 samples, the limit"),
        ("max_profile_locations", "profile_locations", "body: the profile has more than 10 locations, the limit"),
    ],
)
def test_profile_size_limits(sqlite_url: str, setting: str, limit: str, message: str) -> None:
    settings = Settings(database_url=sqlite_url, retention_raw=TEST_RETENTION, **{setting: 10})  # type: ignore[arg-type]
    store = Store.from_url(sqlite_url)
    try:
        with TestClient(create_app(settings, store)) as client:
            refused = push(client, "api")
            assert refused.status_code == 413
            # Found while decoding, at the eleventh: the count of the rest is never known.
            assert refused.json()["error"] == f"{message} ({setting})"
            assert rejections(client)[limit] == 1
            assert store.series.all() == []  # refused before anything was written
    finally:
        store.close()


DUMP = (DATA / "goroutine_dump_long.txt").read_bytes()


def test_goroutine_dump_pushes_meet_the_same_limits(database_url: str, store: Store) -> None:
    """The probe's replay: with a series limit of 3 it stored 5 series, took 200 labels where the limit was 4,
    and a label name of 300 characters (a 500 on PostgreSQL, whose column holds 256)."""
    settings = Settings(
        database_url=database_url, retention_raw=TEST_RETENTION, max_series_per_service=3, max_labels_per_series=4
    )
    with TestClient(create_app(settings, store)) as client:

        def push_dump(**labels: str) -> Any:
            params = [("service", "api"), ("time", "2026-09-01T10:00:00Z")]
            params += [("label", f"{name}={value}") for name, value in labels.items()]
            return client.post("/api/v1/goroutines/ingest", params=params, content=DUMP)

        statuses = [push_dump(instance=f"i{n}").status_code for n in range(5)]
        assert statuses == [201, 201, 201, 422, 422]
        assert push_dump(instance="i0").status_code == 201  # an existing series is still written
        many = push_dump(**{f"l{n}": "x" for n in range(200)})
        assert many.status_code == 400
        assert many.json()["error"] == "label: 201 labels exceed the limit of 4 per series (max_labels_per_series)"
        long_name = push_dump(**{"n" * 300: "x"})
        assert long_name.status_code == 400
        assert "is 300 characters, over the limit of 128 (max_label_name_length)" in long_name.json()["error"]
        counts = rejections(client)
        assert counts["series_per_service"] == 2
        assert counts["labels_per_series"] == 1 and counts["label_name_length"] == 1
    dump_series = [s for s in store.series.all() if s.kind == "goroutine_dump"]
    assert sorted(s.labels["instance"] for s in dump_series) == ["i0", "i1", "i2"]


def test_a_dump_past_the_goroutine_limit_is_413_and_counted(sqlite_url: str) -> None:
    settings = Settings(database_url=sqlite_url, retention_raw=TEST_RETENTION, max_dump_goroutines=10)
    store = Store.from_url(sqlite_url)
    try:
        with TestClient(create_app(settings, store)) as client:
            refused = client.post("/api/v1/goroutines/ingest", params={"service": "api"}, content=DUMP)
            assert refused.status_code == 413
            assert refused.json()["error"] == (
                "body: the dump has more than 10 goroutines, the limit (max_dump_goroutines)"
            )
            assert rejections(client)["dump_goroutines"] == 1
            assert store.series.all() == []
    finally:
        store.close()
