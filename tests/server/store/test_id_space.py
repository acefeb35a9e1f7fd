"""The deduplicated kinds' id space: what /metrics reports of it, and the clear refusal when the stack tree has
handed out every node id, on both databases.

A real store cannot be filled to 2**32 node ids in a test (the tree would need tens of GB), so the refusal test
lowers the limit the tree checks against (``server.store.stacks.NODE_LIMIT``) to just past what the first profile
used; everything else (the store, the HTTP push, the profiles) is real.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from collector.metrics import CollectorMetrics
from collector.sinks import ScrapedProfile
from server.errors import IdsExhausted
from server.ingest.profile import ingest
from server.settings import Settings
from server.store import stacks as stacks_module
from server.store.gc import collect_garbage
from server.store.idspace import LIMITS, id_use
from server.store.models import ProfileRow, SegmentRow
from server.store.repository import Store
from server.store.stacks import StackTree
from stackyard.ingestsink import InProcessSink
from tests.support.helpers import push

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)

T0 = 1_790_000_000


def _use(store: Store) -> dict[str, tuple[int, int, int]]:
    return {u.kind: (u.highest, u.stored, u.limit) for u in id_use(store.engine)}


def test_id_use_counts_what_was_handed_out_and_what_is_still_stored(store: Store) -> None:
    assert _use(store) == {kind.name.lower(): (0, 0, limit) for kind, limit in LIMITS.items()}
    stacks = [[1, 2, 3], [1, 2, 4], [5, 6], [5, 7, 8, 9]]
    leaves = store.stacks.resolve(stacks)
    made = 3 + 1 + 2 + 3  # 1-2-3, 4 under 1-2, 5-6, 7-8-9 under 5
    assert _use(store)["function_stacks"] == (max(leaves), made, 2**32) and max(leaves) == made
    collect_garbage(store)  # no profile references them: only the highest node's path stays
    fresh = StackTree(store.engine)
    fresh.ensure(np.array([max(leaves)], dtype=np.int64))
    assert fresh.size == 4
    # The highest id stays handed out (appends number past it); the rows stored are what collection kept.
    assert _use(store)["function_stacks"] == (made, 4, 2**32)


def _families(client: TestClient) -> dict[str, dict[str, float]]:
    found: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        if family.name.startswith("stackyard_stored_"):
            found[family.name] = {s.labels["kind"]: s.value for s in family.samples}
    return found


def _profiles(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(ProfileRow)).scalar_one())


def _tree_segments(store: Store) -> list[tuple[int, int]]:
    with store.engine.connect() as conn:
        query = (
            select(SegmentRow.first_id, SegmentRow.last_id).where(SegmentRow.kind == 0).order_by(SegmentRow.first_id)
        )
        return [(int(a), int(b)) for a, b in conn.execute(query)]


def test_metrics_report_the_id_space(client: TestClient, store: Store, data_dir: Path) -> None:
    push(client, data_dir / "cpu.pb.gz", time=str(T0))
    families = _families(client)
    nodes = store.dedup.stacks.size
    assert nodes > 0
    assert families["stackyard_stored_ids_highest"]["function_stacks"] == nodes
    assert families["stackyard_stored_rows"]["function_stacks"] == nodes
    assert families["stackyard_stored_ids_limit"] == {
        "function_stacks": 2**32,
        "functions": 2**31,
        "sample_keys": 2**63,
        "line_vectors": 2**63,
    }
    functions = families["stackyard_stored_rows"]["functions"]
    assert functions > 0 and families["stackyard_stored_ids_highest"]["functions"] == functions
    assert families["stackyard_stored_rows"]["sample_keys"] > 0


def test_a_full_stack_tree_refuses_new_stacks_clearly_and_keeps_taking_known_ones(
    client: TestClient, store: Store, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    push(client, data_dir / "cpu.pb.gz", time=str(T0))
    highest = store.dedup.stacks.size
    before = (_profiles(store), _tree_segments(store))
    monkeypatch.setattr(stacks_module, "NODE_LIMIT", highest + 2)  # room for two more nodes only

    refused = client.post(
        "/api/v1/ingest",
        params={"service": "demo", "time": str(T0 + 10)},
        content=(data_dir / "heap.pb.gz").read_bytes(),
    )
    assert refused.status_code == 507
    body = refused.json()
    assert body["status"] == 507
    assert f"handed out all {highest + 2:,} node ids" in body["error"] and "docs/operations.md" in body["error"]
    # Refused whole: no profile row, no segment, and the ids were not taken.
    assert (_profiles(store), _tree_segments(store)) == before

    push(client, data_dir / "cpu.pb.gz", time=str(T0 + 20))  # known stacks only: still stored
    assert _profiles(store) == before[0] + 1
    assert _tree_segments(store) == before[1]


def test_appends_warn_as_the_node_ids_run_out(
    store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store.stacks.resolve([[1, 2, 3, 4]])  # nodes 1-4
    monkeypatch.setattr(stacks_module, "NODE_LIMIT", 10)
    with caplog.at_level("WARNING", logger="server.store.stacks"):
        store.stacks.resolve([[1, 2, 3, 4, 5, 6, 7, 8, 9]])  # nodes 5-9 (ids are below the limit): past 5, 7 and 9
    warnings = [r for r in caplog.records if r.getMessage() == "stack tree node ids running out"]
    assert [(r.__dict__["share"], r.__dict__["highest"], r.__dict__["limit"]) for r in warnings] == [
        (0.5, 9, 10),
        (0.75, 9, 10),
        (0.9, 9, 10),
    ]
    with pytest.raises(IdsExhausted, match="handed out all 10 node ids \\(the highest is 9\\)"):
        store.stacks.resolve([[2, 3]])
    assert store.stacks.resolve([[1, 2, 3]]) == [3]  # known stacks still resolve


def test_the_in_process_collector_reports_a_full_tree_as_the_servers_error_not_a_bad_profile(
    store: Store, settings: Settings, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def ingest_scraped(data: bytes, labels: dict[str, str], kind: str, time_ns: int, key: str) -> object:
        return ingest(store, settings, data, labels, kind, time_ns, idempotency_key=key)

    sink = InProcessSink(ingest_scraped, CollectorMetrics(CollectorRegistry()))
    heap = (data_dir / "heap.pb.gz").read_bytes()
    asyncio.run(sink.send(ScrapedProfile("heap", {"service": "s"}, heap, T0 * 10**9, "t")))
    monkeypatch.setattr(stacks_module, "NODE_LIMIT", store.dedup.stacks.size + 1)
    cpu = (data_dir / "cpu.pb.gz").read_bytes()
    with pytest.raises(IdsExhausted):  # not InvalidProfile: the target's health must not blame the profile
        asyncio.run(sink.send(ScrapedProfile("cpu", {"service": "s"}, cpu, T0 * 10**9, "t")))
    assert sink.buffered() == 0  # refused, not queued to block the profiles behind it
    asyncio.run(sink.send(ScrapedProfile("heap", {"service": "s"}, heap, (T0 + 15) * 10**9, "t")))  # known stacks


def test_a_full_function_table_refuses_new_functions_clearly_and_keeps_taking_known_ones(
    client: TestClient, store: Store, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    push(client, data_dir / "cpu.pb.gz", time=str(T0))
    functions = _use(store)["functions"][0]
    before = (_profiles(store), _use(store))
    monkeypatch.setattr(stacks_module, "FRAME_LIMIT", functions + 2)  # room for two more functions only

    refused = client.post(
        "/api/v1/ingest",
        params={"service": "demo", "time": str(T0 + 10)},
        content=(data_dir / "heap.pb.gz").read_bytes(),  # brings more than two new functions
    )
    assert refused.status_code == 507
    assert f"handed out all {functions + 2:,} function ids (the highest is {functions:,})" in refused.json()["error"]
    assert (_profiles(store), _use(store)) == before  # nothing of it written: no function, node or key

    push(client, data_dir / "cpu.pb.gz", time=str(T0 + 20))  # known functions only: still stored
    assert _profiles(store) == before[0] + 1
