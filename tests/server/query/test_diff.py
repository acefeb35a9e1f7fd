"""Diffs of two ranges or two selectors equal ``go tool pprof -diff_base`` on the same files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.helpers import push
from tests.support.oracle import pprof_top
from tests.support.tools import DATA

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)

BASE = [DATA / "cpu.pb.gz", DATA / "cpu2.pb.gz"]
NEW = [DATA / "cpu_slow.pb.gz"]


@pytest.fixture
def two_ranges(client: TestClient) -> TestClient:
    push(client, BASE[0], time="1000", label="version=1.4")
    push(client, BASE[1], time="1010", label="version=1.4")
    push(client, NEW[0], time="2000", label="version=1.5")
    return client


def _diff(client: TestClient, **params: str) -> dict[str, Any]:
    response = client.get("/api/v1/diff", params={"type": "cpu", "sample": "cpu", **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _changes(body: dict[str, Any]) -> dict[str, tuple[int, int]]:
    return {r["name"]: (r["flat_change"], r["cum_change"]) for r in body["rows"] if r["flat_change"] or r["cum_change"]}


def _expected(base: list[Path], new: list[Path], normalize: bool = False) -> tuple[int, dict[str, tuple[int, int]]]:
    result = pprof_top(new, "cpu", "nanoseconds", diff_base=base, normalize=normalize)
    return result.total, result.rows


def test_time_ranges_diff_equals_pprof(two_ranges: TestClient) -> None:
    body = _diff(two_ranges, **{"from": "1500", "to": "2500", "base_from": "500", "base_to": "1500"})
    total, rows = _expected(BASE, NEW)
    assert body["base_profiles"] == 2 and body["profiles"] == 1
    assert body["base_total"] == total
    assert _changes(body) == rows
    grew = max(body["rows"], key=lambda r: r["flat_change"])
    assert grew["name"] == "main.mix", "the function the slow instance made slower grew most"
    assert grew["flat"] - grew["base_flat"] == grew["flat_change"] > 0
    sizes = [abs(r["flat_change"]) for r in body["rows"]]
    assert sizes == sorted(sizes, reverse=True), "rows are ordered by the size of the change"


def test_selectors_diff_equals_pprof(two_ranges: TestClient) -> None:
    body = _diff(two_ranges, query='{version="1.5"}', base_query='{version="1.4"}', **{"from": "0", "to": "3000"})
    total, rows = _expected(BASE, NEW)
    assert body["base_total"] == total
    assert _changes(body) == rows


def test_diff_flamegraph_carries_both_sides(two_ranges: TestClient) -> None:
    params = {"query": '{version="1.5"}', "base_query": '{version="1.4"}', "from": "0", "to": "3000"}
    graph = _diff(two_ranges, format="flamegraph", **params)
    top = _diff(two_ranges, **params)
    assert graph["total"] == [top["base_total"], top["total"]]
    names = graph["names"]
    base_flat: dict[str, int] = {}
    new_flat: dict[str, int] = {}
    for level in graph["levels"][1:]:
        for i in range(0, len(level), 6):
            name = names[level[i + 5]]
            base_flat[name] = base_flat.get(name, 0) + level[i + 2]
            new_flat[name] = new_flat.get(name, 0) + level[i + 4]
    for row in top["rows"]:
        assert base_flat.get(row["name"], 0) == row["base_flat"]
        assert new_flat.get(row["name"], 0) == row["flat"]


def test_bad_diff_parameters(two_ranges: TestClient) -> None:
    response = two_ranges.get("/api/v1/diff", params={"type": "cpu", "base_query": "{x="})
    assert response.status_code == 400
    assert response.json()["error"].startswith("base_query: ")
    response = two_ranges.get("/api/v1/diff", params={"type": "cpu", "base_from": "now", "base_to": "now-1h"})
    assert response.status_code == 400
    assert "base_from" in response.json()["error"]
    response = two_ranges.get("/api/v1/diff", params={"type": "cpu", "format": "svg"})
    assert response.status_code == 422


def test_normalized_diff_equals_pprof_exactly(two_ranges: TestClient) -> None:
    """-normalize rounds each pprof sample separately: exact only because the store keeps pprof's sample identity."""
    body = _diff(two_ranges, normalize="true", **{"from": "1500", "to": "2500", "base_from": "500", "base_to": "1500"})
    total, rows = _expected(BASE, NEW, normalize=True)
    assert body["normalized"] is True
    assert body["base_total"] == total
    assert _changes(body) == rows
    assert abs(body["total"] - body["base_total"]) < 1000, "after scaling the comparison totals about the base"


def test_normalized_diff_of_merged_ranges(client: TestClient) -> None:
    new = [DATA / "cpu2.pb.gz", DATA / "cpu_slow.pb.gz"]
    push(client, DATA / "cpu.pb.gz", time="100")
    for index, path in enumerate(new):
        push(client, path, time=str(200 + index))
    body = _diff(client, normalize="true", **{"from": "150", "to": "250", "base_from": "50", "base_to": "150"})
    total, rows = _expected([DATA / "cpu.pb.gz"], new, normalize=True)
    assert body["profiles"] == 2
    assert body["base_total"] == total
    assert _changes(body) == rows
