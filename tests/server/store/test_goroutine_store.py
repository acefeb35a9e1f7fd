"""Stored goroutine dumps and leak suspects, on SQLite and PostgreSQL.

The dumps here are made of real goroutine blocks from a captured demo dump,
repeated: N leaked workers means N real ``main.leakyWorker`` blocks, so the
parser, the grouping and the store see exactly what Go writes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from server.errors import InvalidParameter
from server.goroutines.parse import DumpError
from server.ingest.dumps import ingest_dump
from server.query.leaks import MIN_DUMPS, find_leak_suspects
from server.settings import Settings
from server.store.models import GoroutineDump, GoroutineGroup, GoroutineStack
from server.store.repository import Store
from server.upkeep.retention import apply_retention

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)

T0 = 1_790_000_000 * 10**9
MINUTE = 60 * 10**9


@pytest.fixture(scope="module")
def blocks(data_dir: Path) -> dict[str, list[str]]:
    """The real dump's goroutine blocks, by a short name of what they are."""
    text = (data_dir / "goroutine_dump_long.txt").read_text()
    found: dict[str, list[str]] = {"leak": [], "sleep": [], "other": []}
    for block in text.strip("\n").split("\n\n"):
        if "main.leakyWorker" in block:
            found["leak"].append(block)
        elif block.split("\n", 1)[0].endswith("[sleep]:"):
            found["sleep"].append(block)
        else:
            found["other"].append(block)
    return found


def dump(blocks: dict[str, list[str]], leaked: int, sleepers: int = 1) -> bytes:
    chosen = blocks["other"] + blocks["sleep"][:1] * sleepers + (blocks["leak"] * 10)[:leaked]
    return ("\n\n".join(chosen) + "\n").encode()


def labels(instance: str) -> dict[str, str]:
    return {"service": "demo", "instance": instance, "env": "test"}


def test_groups_are_stored_once_per_stack(store: Store, settings: Settings, blocks: dict[str, list[str]]) -> None:
    first = ingest_dump(store, settings, dump(blocks, 30), labels("a:1"), T0)
    second = ingest_dump(store, settings, dump(blocks, 40), labels("a:1"), T0 + MINUTE)
    again = ingest_dump(store, settings, dump(blocks, 50), labels("a:1"), T0 + MINUTE)  # a retried push
    assert again.id == second.id and again.goroutines == second.goroutines
    assert second.goroutines == len(blocks["other"]) + 1 + 40
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(GoroutineDump)).scalar() == 2
        stacks = conn.execute(select(func.count()).select_from(GoroutineStack)).scalar()
        used = conn.execute(select(func.count(func.distinct(GoroutineGroup.stack_id)))).scalar()
        groups = conn.execute(select(func.count()).select_from(GoroutineGroup)).scalar()
    assert stacks == used and groups is not None and stacks is not None and groups > stacks  # both dumps share stacks
    assert len(store.goroutines.groups([first.id])) == len(store.goroutines.groups([second.id]))
    stored = store.goroutines.groups([second.id])
    leak = max(stored, key=lambda g: g.count)
    assert leak.count == 40 and leak.state == "chan receive" and leak.max_wait_minutes == 1
    info = store.goroutines.stacks([leak.stack_id])[leak.stack_id]
    assert info.function == "main.leakyWorker" and info.location.startswith("stackyard/examples/demo/main.go:")
    assert info.created_by == "main.startWorkers" and info.frames[0][0] == "main.leakyWorker"
    at = store.goroutines.latest_at([second.series_id], T0 + MINUTE - 1)
    assert [d.id for d in at] == [first.id]


def test_a_broken_dump_stores_nothing(store: Store, settings: Settings, blocks: dict[str, list[str]]) -> None:
    with pytest.raises(DumpError):
        ingest_dump(store, settings, dump(blocks, 5)[:-10], labels("a:1"), T0)
    with pytest.raises(InvalidParameter, match="service"):
        ingest_dump(store, settings, dump(blocks, 5), {"instance": "a:1"}, T0)
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(GoroutineDump)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(GoroutineStack)).scalar() == 0


def test_the_growing_stack_is_the_suspect(store: Store, settings: Settings, blocks: dict[str, list[str]]) -> None:
    leaked = [10, 14, 19, 22, 28, 33, 35, 41]
    for i, n in enumerate(leaked):
        ingest_dump(store, settings, dump(blocks, n), labels("leaky:1"), T0 + i * MINUTE)
        # A healthy instance: the same stacks, and one burst of sleepers that comes and goes.
        ingest_dump(store, settings, dump(blocks, 3, sleepers=8 if i == 4 else 1), labels("calm:1"), T0 + i * MINUTE)
    suspects = find_leak_suspects(store, '{service="demo"}', T0, T0 + len(leaked) * MINUTE)
    assert [s.labels["instance"] for s in suspects] == ["leaky:1"]
    suspect = suspects[0]
    assert suspect.function == "main.leakyWorker" and suspect.created_by == "main.startWorkers"
    assert suspect.location.startswith("stackyard/examples/demo/main.go:")
    assert suspect.labels == labels("leaky:1") and suspect.state == "chan receive"
    assert (suspect.count_start, suspect.count_end) == (10, 41)
    hours = np.arange(len(leaked)) / 60
    assert suspect.growth_per_hour == pytest.approx(np.polyfit(hours, leaked, 1)[0])
    assert suspect.rising_fraction == 1.0 and suspect.score > 0
    assert find_leak_suspects(store, '{instance="calm:1"}', T0, T0 + len(leaked) * MINUTE) == []
    # Too few dumps in the window to call anything a trend.
    short = T0 + (MIN_DUMPS - 2) * MINUTE
    assert find_leak_suspects(store, '{instance="leaky:1"}', T0, short) == []


def test_a_one_off_jump_or_a_few_more_is_not_a_leak(
    store: Store, settings: Settings, blocks: dict[str, list[str]]
) -> None:
    for i, (jump, few) in enumerate(zip([5, 5, 5, 60, 60, 61], [1, 2, 3, 4, 4, 5], strict=True)):
        ingest_dump(store, settings, dump(blocks, jump), labels("jump:1"), T0 + i * MINUTE)
        # Rising all along, but by 4 goroutines in all: a few keep-alive connections, not a leak.
        ingest_dump(store, settings, dump(blocks, few), labels("few:1"), T0 + i * MINUTE)
    assert find_leak_suspects(store, "", T0, T0 + 10 * MINUTE) == []
    # The same shape, larger, is one.
    for i, n in enumerate([10, 20, 30, 40, 40, 50]):
        ingest_dump(store, settings, dump(blocks, n), labels("more:1"), T0 + i * MINUTE)
    assert [s.labels["instance"] for s in find_leak_suspects(store, "", T0, T0 + 10 * MINUTE)] == ["more:1"]


def test_retention_deletes_old_dumps_and_their_stacks(
    store: Store, settings: Settings, blocks: dict[str, list[str]]
) -> None:
    ingest_dump(store, settings, dump(blocks, 5), labels("a:1"), T0)
    recent = ingest_dump(store, settings, dump(blocks, 5, sleepers=0), labels("a:1"), T0 + 10 * 86_400 * 10**9)
    short = Settings(database_url=settings.database_url, retention_raw="7d")
    deleted = apply_retention(store, short, now_ns=T0 + 11 * 86_400 * 10**9)
    assert deleted["goroutine_dumps"] == 1
    with store.engine.connect() as conn:
        assert conn.execute(select(GoroutineDump.id)).scalars().all() == [recent.id]
        used = conn.execute(select(func.count(func.distinct(GoroutineGroup.stack_id)))).scalar()
        assert conn.execute(select(func.count()).select_from(GoroutineStack)).scalar() == used
    assert store.goroutines.groups([recent.id])  # the kept dump still reads whole


def test_a_slow_leak_under_frequent_dumps_is_found(
    store: Store, settings: Settings, blocks: dict[str, list[str]]
) -> None:
    """One more goroutine every seven dumps: most dump-to-dump intervals are flat, every stretch of the range rises."""
    counts = [10 + i // 7 for i in range(85)]  # 84 minutes: twelve parts of seven dumps
    for i, n in enumerate(counts):
        ingest_dump(store, settings, dump(blocks, n), labels("slow:1"), T0 + i * MINUTE)
    (suspect,) = find_leak_suspects(store, "", T0, T0 + len(counts) * MINUTE)
    assert (suspect.function, suspect.count_start, suspect.count_end) == ("main.leakyWorker", 10, 22)
    assert suspect.rising_fraction == 1.0  # each part ends one higher, though 6 of its 7 steps are flat
    assert suspect.growth_per_hour == pytest.approx(np.polyfit(np.arange(85) / 60, counts, 1)[0])
