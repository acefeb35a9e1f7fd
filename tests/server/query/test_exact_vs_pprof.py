"""Every number Stackyard shows equals what ``go tool pprof`` computes from the same files.

Runs against the committed real captures of the demo service (tests/data), on
SQLite and PostgreSQL: top totals, flat and cum for every sample type of every
profile kind, merges of several files, and the merged export reopened by pprof.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.support.helpers import UNITS, push, top
from tests.support.oracle import pprof_top
from tests.support.tools import DATA

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)

SAMPLE_TYPES = {
    "cpu": ["samples", "cpu"],
    "heap": ["alloc_objects", "alloc_space", "inuse_objects", "inuse_space"],
    "allocs": ["alloc_space", "inuse_objects"],
    "goroutine": ["goroutine"],
    "mutex": ["contentions", "delay"],
    "block": ["contentions", "delay"],
    "threadcreate": ["threadcreate"],
}
FILES = {kind: DATA / f"{kind}.pb.gz" for kind in SAMPLE_TYPES}
FILES["cpu"] = DATA / "big_cpu.pb.gz"


def _compare(ours: dict[str, object], files: list[Path], sample: str) -> None:
    expected = pprof_top(files, sample, UNITS[sample])
    assert ours["total"] == expected.total
    rows = {row["name"]: (row["flat"], row["cum"]) for row in ours["rows"]}  # type: ignore[attr-defined]
    assert rows == expected.rows


@pytest.mark.parametrize("kind", sorted(SAMPLE_TYPES))
def test_top_equals_pprof_for_every_sample_type(client: TestClient, kind: str) -> None:
    push(client, FILES[kind], type=kind)
    for sample in SAMPLE_TYPES[kind]:
        ours = top(client, type=kind, sample=sample, aggregation="sum", query='{service="demo"}')
        assert ours["profiles"] == 1
        _compare(ours, [FILES[kind]], sample)


def test_merged_cpu_profiles_equal_pprof_merge(client: TestClient) -> None:
    files = [DATA / "cpu.pb.gz", DATA / "cpu2.pb.gz", DATA / "cpu_slow.pb.gz"]
    for index, path in enumerate(files):
        push(client, path, label=f"instance=i{index}")
    for sample in ("samples", "cpu"):
        ours = top(client, type="cpu", sample=sample, query='{service="demo"}')
        assert ours["profiles"] == 3
        _compare(ours, files, sample)
    only_two = top(client, type="cpu", sample="cpu", query='{service="demo", instance=~"i0|i1"}')
    _compare(only_two, files[:2], "cpu")


def test_default_sample_type_is_pprofs(client: TestClient) -> None:
    push(client, DATA / "allocs.pb.gz", type="allocs")
    push(client, DATA / "heap.pb.gz", type="heap")
    assert top(client, type="allocs")["sample_type"] == "alloc_space"
    heap = top(client, type="heap")
    assert heap["sample_type"] == "inuse_space"
    assert heap["aggregation"] == "avg"


def test_avg_aggregation_is_the_pprof_sum_divided_by_profiles(client: TestClient) -> None:
    files = [DATA / "goroutine.pb.gz", DATA / "goroutine.pb.gz"]
    push(client, files[0], time="1000")
    push(client, files[1], time="2000")
    ours = top(client, type="goroutine")
    expected = pprof_top(files, "goroutine", "count")
    assert ours["aggregation"] == "avg"
    assert ours["total"] == expected.total / 2
    assert {r["name"]: (r["flat"], r["cum"]) for r in ours["rows"]} == {
        name: (flat / 2, cum / 2) for name, (flat, cum) in expected.rows.items()
    }


@pytest.mark.parametrize("kind", ["cpu", "heap", "goroutine", "block"])
def test_export_reopened_by_pprof_gives_the_same_numbers(client: TestClient, tmp_path: Path, kind: str) -> None:
    files = [FILES[kind], DATA / "cpu2.pb.gz"] if kind == "cpu" else [FILES[kind]]
    for path in files:
        push(client, path, type=kind)
    response = client.get("/api/v1/pprof", params={"type": kind, "from": "0", "to": "now+1h", "aggregation": "sum"})
    assert response.status_code == 200, response.text
    exported = tmp_path / f"export-{kind}.pb.gz"
    exported.write_bytes(response.content)
    for sample in SAMPLE_TYPES[kind]:
        original = pprof_top(files, sample, UNITS[sample])
        again = pprof_top([exported], sample, UNITS[sample])
        assert again.total == original.total
        assert again.rows == original.rows


def test_flamegraph_root_and_children_match_top(client: TestClient) -> None:
    push(client, DATA / "cpu.pb.gz")
    graph = client.get("/api/v1/flamegraph", params={"type": "cpu", "from": "0", "to": "now+1h"}).json()
    expected = pprof_top([DATA / "cpu.pb.gz"], "cpu", "nanoseconds")
    assert graph["total"] == expected.total
    names = graph["names"]
    # Sum of every node's self value equals the total; per function it equals pprof's flat.
    flat: dict[str, int] = {}
    for level in graph["levels"]:
        for i in range(0, len(level), 4):
            name = names[level[i + 3]]
            flat[name] = flat.get(name, 0) + level[i + 2]
    assert sum(flat.values()) == expected.total
    for name, (pprof_flat, _cum) in expected.rows.items():
        assert flat.get(name, 0) == pprof_flat, name
