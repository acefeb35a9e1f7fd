"""End to end with a real Go process: capture every profile kind from the demo, push it, compare with pprof."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.support.godemo import running
from tests.support.helpers import UNITS, push, top
from tests.support.oracle import pprof_top

ENDPOINTS = {
    "cpu": ("profile?seconds=2", ["samples", "cpu"]),
    "heap": ("heap", ["alloc_space", "inuse_space", "inuse_objects"]),
    "allocs": ("allocs", ["alloc_objects", "alloc_space"]),
    "goroutine": ("goroutine", ["goroutine"]),
    "mutex": ("mutex", ["contentions", "delay"]),
    "block": ("block", ["contentions", "delay"]),
    "threadcreate": ("threadcreate", ["threadcreate"]),
}


@pytest.fixture(scope="module")
def captures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """Two captures of every kind from one live demo instance (leaking, with pinned threads)."""
    out = tmp_path_factory.mktemp("captures")
    files: dict[str, list[Path]] = {kind: [] for kind in ENDPOINTS}
    with running("-leak-rate", "20", "-threads", "2") as base, httpx.Client(base_url=base, timeout=30) as http:
        for round_ in range(2):
            for kind, (endpoint, _) in ENDPOINTS.items():
                response = http.get(f"/debug/pprof/{endpoint}")
                assert response.status_code == 200, f"{kind}: {response.status_code}"
                path = out / f"{kind}-{round_}.pb.gz"
                path.write_bytes(response.content)
                files[kind].append(path)
    return files


@pytest.mark.parametrize("kind", sorted(ENDPOINTS))
def test_live_captures_match_pprof(client: TestClient, captures: dict[str, list[Path]], kind: str) -> None:
    for index, path in enumerate(captures[kind]):
        body = push(client, path, label=f"round=r{index}")
        assert body["type"] == kind, "the kind is inferred from the profile itself"
    for sample in ENDPOINTS[kind][1]:
        single = top(client, type=kind, sample=sample, aggregation="sum", query='{round="r0"}')
        expected = pprof_top(captures[kind][:1], sample, UNITS[sample])
        assert single["total"] == expected.total
        assert {r["name"]: (r["flat"], r["cum"]) for r in single["rows"]} == expected.rows
        merged = top(client, type=kind, sample=sample, aggregation="sum")
        expected = pprof_top(captures[kind], sample, UNITS[sample])
        assert merged["profiles"] == 2
        assert merged["total"] == expected.total
        assert {r["name"]: (r["flat"], r["cum"]) for r in merged["rows"]} == expected.rows


def test_live_demo_names_show_up(client: TestClient, captures: dict[str, list[Path]]) -> None:
    for path in captures["cpu"]:
        push(client, path)
    for path in captures["goroutine"]:
        push(client, path)
    cpu_names = {r["name"] for r in top(client, type="cpu", sample="cpu")["rows"]}
    assert {"main.cpuHogA", "main.cpuHogB", "main.hashLoop", "main.fib"} <= cpu_names
    goroutines = {r["name"]: r["cum"] for r in top(client, type="goroutine")["rows"]}
    assert goroutines["main.leakyWorker"] > 0
