"""Query parameters: selectors, time ranges, sample types and limits, with clear errors."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.support.helpers import push, top
from tests.support.tools import DATA

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)


@pytest.fixture
def filled(client: TestClient) -> TestClient:
    push(client, DATA / "cpu.pb.gz", service="api", label="env=prod", time="1000")
    push(client, DATA / "cpu2.pb.gz", service="api", label="env=dev", time="2000")
    push(client, DATA / "cpu_slow.pb.gz", service="web", label="env=prod", time="3000")
    return client


def test_time_range_selects_profiles(filled: TestClient) -> None:
    assert top(filled, type="cpu", **{"from": "0", "to": "1500"})["profiles"] == 1
    assert top(filled, type="cpu", **{"from": "1500", "to": "3000"})["profiles"] == 2
    assert top(filled, type="cpu", **{"from": "1970-01-01T00:16:00Z", "to": "1970-01-01T00:40:00Z"})["profiles"] == 2


def test_selectors(filled: TestClient) -> None:
    assert top(filled, type="cpu", query='{service="api"}')["profiles"] == 2
    assert top(filled, type="cpu", query='{env=~"prod|dev", service!="web"}')["profiles"] == 2
    assert top(filled, type="cpu", query='{env!~"dev"}')["profiles"] == 2
    assert top(filled, type="cpu", query='{service="nope"}')["profiles"] == 0


def test_limit_keeps_the_largest_flat(filled: TestClient) -> None:
    rows = top(filled, type="cpu", limit="3")["rows"]
    assert len(rows) == 3
    assert rows[0]["flat"] >= rows[1]["flat"] >= rows[2]["flat"]


def test_empty_result_is_not_an_error(filled: TestClient) -> None:
    body = top(filled, type="heap")
    assert body["profiles"] == 0
    assert body["total"] == 0
    assert body["rows"] == []


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"type": "cpu", "query": '{service="api"'}, 400, "unclosed selector"),
        ({"type": "cpu", "query": "{service=api}"}, 400, "expected a quoted value at character 10"),
        ({"type": "cpu", "query": '{env=~"("}'}, 400, "invalid regular expression"),
        ({"type": "cpu", "from": "now", "to": "now-1h"}, 400, "must be before"),
        ({"type": "cpu", "from": "tomorrow"}, 400, "from: 'tomorrow' is not RFC 3339"),
        ({"type": "wall"}, 400, "unknown profile type 'wall'"),
        ({}, 400, "type: required"),
        ({"type": "cpu", "sample": "bogus", "from": "0"}, 400, "unknown sample type 'bogus'"),
        ({"type": "cpu", "aggregation": "median"}, 400, "is not sum or avg"),
        ({"type": "cpu", "limit": "0"}, 422, "limit"),
    ],
)
def test_bad_queries(filled: TestClient, params: dict[str, str], status: int, message: str) -> None:
    response = filled.get("/api/v1/top", params=params)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


def test_too_many_profiles_is_refused(filled: TestClient) -> None:
    filled.app.state.settings.max_query_profiles = 2  # type: ignore[attr-defined]
    response = filled.get("/api/v1/top", params={"type": "cpu", "from": "0"})
    assert response.status_code == 422
    assert "more than 2 stored profiles" in response.json()["error"]


def test_flamegraph_folds_small_nodes_into_other(client: TestClient) -> None:
    push(client, DATA / "big_cpu.pb.gz")
    full = client.get("/api/v1/flamegraph", params={"type": "cpu", "from": "0", "max_nodes": "100000"}).json()
    small = client.get("/api/v1/flamegraph", params={"type": "cpu", "from": "0", "max_nodes": "50"}).json()
    assert full["truncated"] is False
    assert small["truncated"] is True
    assert small["nodes"] < full["nodes"]
    assert "other" in small["names"]
    assert small["total"] == full["total"]
    # Every level's totals still add up to at most the root: folding loses no value.
    for level in small["levels"][1:2]:
        assert sum(level[i + 1] for i in range(0, len(level), 4)) <= small["total"]
    level1_full = sum(full["levels"][1][i + 1] for i in range(0, len(full["levels"][1]), 4))
    level1_small = sum(small["levels"][1][i + 1] for i in range(0, len(small["levels"][1]), 4))
    assert level1_small == level1_full


def test_max_nodes_is_a_real_bound(client: TestClient) -> None:
    push(client, DATA / "big_cpu.pb.gz")
    for limit in (1, 50, 2048, 5000):
        graph = client.get("/api/v1/flamegraph", params={"type": "cpu", "from": "0", "max_nodes": str(limit)}).json()
        other = graph["names"].index("other") if "other" in graph["names"] else -1
        real = sum(1 for level in graph["levels"][1:] for i in range(3, len(level), 4) if level[i] != other)
        assert real <= limit, (limit, real)
