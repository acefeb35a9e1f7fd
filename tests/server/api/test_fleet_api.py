"""``GET /api/v1/fleet``: one row per instance with status, labels and newest goroutine count, on both databases.

Scrape health comes from a scraper; without one (as here) a target is ``waiting``.
The up and down states of real scrapes are checked in the browser against real Go
demo instances (tests/web/test_web_dashboard.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.oracle import pprof_top
from tests.support.tools import DATA

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)

T0 = 1_790_000_000  # 2026-09-21: pushed profiles carry explicit times, never the clock's


def push(client: TestClient, path: Path, service: str, time: int, **labels: str) -> None:
    params = [("service", service), ("time", str(time)), *(("label", f"{k}={v}") for k, v in labels.items())]
    response = client.post("/api/v1/ingest", params=params, content=path.read_bytes())
    assert response.status_code == 201, response.text


def _fleet(client: TestClient) -> dict[str, Any]:
    response = client.get("/api/v1/fleet")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_one_row_per_instance_with_its_newest_goroutine_count(client: TestClient) -> None:
    goroutines = DATA / "goroutine.pb.gz"
    push(client, DATA / "cpu.pb.gz", "checkout", T0, instance="a:1")
    push(client, goroutines, "checkout", T0 + 60, instance="a:1", env="prod")
    push(client, DATA / "heap.pb.gz", "search", T0 + 30, instance="b:1")
    for body in (
        {"url": "http://10.1.0.1:6060", "service": "checkout", "labels": {"instance": "a:1", "team": "pay"}},
        {"url": "http://10.1.0.2:6060", "service": "checkout", "paused": True},
        {"url": "http://10.1.0.3:6060", "service": "api", "labels": {"zone": "eu-1"}},
    ):
        assert client.post("/api/v1/targets", json=body).status_code == 201
    fleet = _fleet(client)
    rows = {(i["service"], i["instance"]): i for i in fleet["instances"]}
    assert set(rows) == {
        ("checkout", "a:1"),
        ("checkout", "10.1.0.2:6060"),
        ("api", "10.1.0.3:6060"),
        ("search", "b:1"),
    }
    # a target nobody has scraped yet waits; targets come before those that only push, the paused after
    assert [(i["service"], i["status"]) for i in fleet["instances"]] == [
        ("api", "waiting"),
        ("checkout", "waiting"),
        ("checkout", "paused"),
        ("search", "push"),
    ]
    assert fleet["services"] == 3
    assert fleet["statuses"] == {"down": 0, "waiting": 2, "up": 0, "paused": 1, "push": 1}
    a = rows[("checkout", "a:1")]
    # labels of the target and of the stored series, joined
    assert a["labels"] == {"service": "checkout", "instance": "a:1", "team": "pay", "env": "prod"}
    assert len(a["targets"]) == 1 and isinstance(a["targets"][0], int)
    # the newest goroutine profile's count, as go tool pprof totals it
    assert a["goroutines"] == pprof_top([goroutines], "goroutine", "count").total
    assert a["goroutines_at"] == "2026-09-21T14:14:20Z"
    assert "goroutine_dump" in a["kinds"] and "cpu" in a["kinds"]
    assert a["last_scrape"] is None and a["errors"] == []
    # an instance that only pushes: when its newest profile arrived
    search = rows[("search", "b:1")]
    assert search["targets"] == [] and search["goroutines"] is None
    assert search["last_profile"] == "2026-09-21T14:13:50Z" and search["kinds"] == ["heap"]
    assert rows[("api", "10.1.0.3:6060")]["labels"]["zone"] == "eu-1"


def test_the_newest_of_several_goroutine_profiles_counts(client: TestClient) -> None:
    goroutines = DATA / "goroutine.pb.gz"
    total = pprof_top([goroutines], "goroutine", "count").total
    # two series of one instance (its version changed), the newer one later in time
    push(client, goroutines, "checkout", T0, instance="a:1", version="1.4")
    push(client, goroutines, "checkout", T0 + 120, instance="a:1", version="1.5")
    push(client, goroutines, "checkout", T0 + 60, instance="a:1", version="1.4")
    (row,) = _fleet(client)["instances"]
    assert row["goroutines"] == total and row["goroutines_at"] == "2026-09-21T14:15:20Z"
    assert row["labels"]["version"] == "1.5"  # the newest series' labels win
    assert row["last_profile"] == "2026-09-21T14:15:20Z"


def test_an_empty_fleet(client: TestClient) -> None:
    assert _fleet(client) == {
        "instances": [],
        "services": 0,
        "statuses": {"down": 0, "waiting": 0, "up": 0, "paused": 0, "push": 0},
    }
