"""The goroutine endpoints and /metrics over stored data, on SQLite and PostgreSQL.

Dumps are real goroutine blocks from a captured demo dump (see
tests/server/store/test_goroutine_store.py), pushed through ``POST /api/v1/goroutines/ingest``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from server.goroutines.groups import group_goroutines
from server.goroutines.parse import parse_dump
from server.pprof.decode import decode_columns
from server.pprof.header import Header
from tests.support.helpers import push

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)

T0 = 1_790_000_000
LEAKED = [12, 20, 26, 35, 41, 50]


@pytest.fixture(scope="module")
def blocks(data_dir: Path) -> tuple[list[str], list[str]]:
    text = (data_dir / "goroutine_dump_long.txt").read_text()
    all_blocks = text.strip("\n").split("\n\n")
    return [b for b in all_blocks if "main.leakyWorker" not in b], [b for b in all_blocks if "main.leakyWorker" in b]


def dump(blocks: tuple[list[str], list[str]], leaked: int) -> bytes:
    others, leaks = blocks
    return ("\n\n".join(others + leaks[:leaked]) + "\n").encode()


def push_dump(client: TestClient, body: bytes, instance: str, time_s: int) -> dict[str, object]:
    response = client.post(
        "/api/v1/goroutines/ingest",
        params={"service": "demo", "label": [f"instance={instance}", "env=prod"], "time": str(time_s)},
        content=body,
    )
    assert response.status_code == 201, response.text
    result: dict[str, object] = response.json()
    return result


@pytest.fixture
def pushed(client: TestClient, blocks: tuple[list[str], list[str]]) -> TestClient:
    for i, n in enumerate(LEAKED):
        push_dump(client, dump(blocks, n), "leaky:6060", T0 + 60 * i)
        push_dump(client, dump(blocks, 2), "calm:6060", T0 + 60 * i)
    return client


def test_groups_at_a_time(pushed: TestClient, blocks: tuple[list[str], list[str]]) -> None:
    at = T0 + 60 * 2 + 30  # between the third and the fourth dump
    body = pushed.get("/api/v1/goroutines/groups", params={"query": '{instance="leaky:6060"}', "at": str(at)}).json()
    (instance,) = body["instances"]
    assert instance["labels"] == {"service": "demo", "instance": "leaky:6060", "env": "prod"}
    assert instance["time_ns"] == (T0 + 120) * 10**9
    expected = group_goroutines(parse_dump(dump(blocks, LEAKED[2])))
    assert instance["goroutines"] == sum(g.count for g in expected)
    top = instance["groups"][0]
    assert (top["count"], top["state"]) == (expected[0].count, "chan receive")
    assert top["function"] == "main.leakyWorker" and top["created_by"] == "main.startWorkers"
    assert top["location"].startswith("stackyard/examples/demo/main.go:") and top["max_wait_minutes"] == 1
    assert top["frames"][0]["function"] == "main.leakyWorker"
    assert [g["count"] for g in instance["groups"]] == sorted((g.count for g in expected), reverse=True)
    locked = [g for g in instance["groups"] if g["locked"]]
    assert [(g["function"], g["locked"]) for g in locked] == [("main.lockThread", 2)]
    both = pushed.get("/api/v1/goroutines/groups", params={"query": '{env="prod"}', "at": str(at)}).json()
    assert [i["labels"]["instance"] for i in both["instances"]] == ["calm:6060", "leaky:6060"]
    before = pushed.get("/api/v1/goroutines/groups", params={"at": str(T0 - 1)}).json()
    assert before["instances"] == []


def test_leaks_and_the_suspects_trend(pushed: TestClient) -> None:
    window = {"from": str(T0), "to": str(T0 + 3600)}
    body = pushed.get("/api/v1/goroutines/leaks", params={"query": '{service="demo"}', **window}).json()
    (suspect,) = body["suspects"]
    assert suspect["labels"]["instance"] == "leaky:6060"
    assert suspect["function"] == "main.leakyWorker" and suspect["created_by"] == "main.startWorkers"
    assert (suspect["count_start"], suspect["count_end"]) == (LEAKED[0], LEAKED[-1])
    assert suspect["rising_fraction"] == 1.0 and suspect["growth_per_hour"] > 0
    assert suspect["frames"][0]["function"] == "main.leakyWorker"
    trend = pushed.get(
        f"/api/v1/goroutines/stacks/{suspect['stack_id']}/trend", params={"query": '{env="prod"}', **window}
    ).json()
    by_instance = {s["labels"]["instance"]: [p["count"] for p in s["points"]] for s in trend["series"]}
    assert by_instance == {"leaky:6060": LEAKED, "calm:6060": [2] * len(LEAKED)}
    calm = pushed.get("/api/v1/goroutines/leaks", params={"query": '{instance="calm:6060"}', **window}).json()
    assert calm["suspects"] == []


def test_metrics_from_stored_data(pushed: TestClient, data_dir: Path, blocks: tuple[list[str], list[str]]) -> None:
    heap = data_dir / "heap.pb.gz"
    push(pushed, heap, service="demo", label="instance=leaky:6060", time=str(T0))
    families = {f.name: f for f in text_string_to_metric_families(pushed.get("/metrics").text)}
    goroutines = {s.labels["instance"]: s.value for s in families["stackyard_goroutines"].samples}
    assert goroutines == {
        "leaky:6060": len(parse_dump(dump(blocks, LEAKED[-1]))),  # the newest dump, not the first
        "calm:6060": len(parse_dump(dump(blocks, 2))),
    }
    columns = decode_columns(heap.read_bytes(), 1 << 30)
    header = Header.of(columns)
    n_types = len(header.sample_types)
    sums = columns.sample_values.reshape(-1, n_types).sum(axis=0).tolist()
    expected = {str(v.type): total for v, total in zip(header.sample_types, sums, strict=True)}
    last = {
        s.labels["sample"]: s.value
        for s in families["stackyard_profile_last_total"].samples
        if s.labels["type"] == "heap" and s.labels["instance"] == "leaky:6060"
    }
    assert last == expected


@pytest.mark.parametrize(
    ("path", "params", "body", "status", "message"),
    [
        (
            "/api/v1/goroutines/ingest",
            {"service": "demo"},
            b"goroutine 1 [select]:\nmain.main()\n",
            400,
            "no file:line",
        ),
        ("/api/v1/goroutines/ingest", {"service": "demo"}, b"<html>login</html>\n", 400, "not a goroutine dump"),
        ("/api/v1/goroutines/ingest", {"service": "demo", "label": "bad-name=x"}, b"x\n", 400, "label"),
        ("/api/v1/goroutines/groups", {"query": '{service="demo"'}, None, 400, "query"),
        ("/api/v1/goroutines/groups", {"at": "yesterday"}, None, 400, "at"),
        ("/api/v1/goroutines/leaks", {"from": "now", "to": "now-1h"}, None, 400, "from"),
        ("/api/v1/goroutines/leaks", {"query": '{service=~"("}'}, None, 400, "query"),
        ("/api/v1/goroutines/stacks/999999/trend", {}, None, 404, "no goroutine stack"),
    ],
)
def test_bad_requests_name_the_problem(
    client: TestClient, path: str, params: dict[str, str], body: bytes | None, status: int, message: str
) -> None:
    response = client.get(path, params=params) if body is None else client.post(path, params=params, content=body)
    assert response.status_code == status, response.text
    error = response.json()
    assert error["status"] == status and message in error["error"]
