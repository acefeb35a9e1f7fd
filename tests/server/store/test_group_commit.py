"""Group commit: concurrent writers share transactions, yet each gets its own row, result and error."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest
from sqlalchemy import func, select

from server.ingest.profile import ingest
from server.pprof.decode import decode_columns
from server.settings import Settings
from server.store.groupcommit import GroupCommit
from server.store.models import ProfileBlob, ProfileRow
from server.store.repository import Store
from server.store.state import lock_for_gc
from tests.support.tools import DATA

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)

CAPTURES = ["cpu.pb.gz", "heap.pb.gz", "goroutine.pb.gz", "mutex.pb.gz"]


class _SlowBatches:
    """A batch writer that records its batches and holds the first one long enough for a queue to form."""

    def __init__(self, fail: set[int] | None = None) -> None:
        self.batches: list[list[int]] = []
        self.fail = fail or set()
        self.first_started = threading.Event()

    def __call__(self, items: Sequence[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        if len(self.batches) == 1:
            self.first_started.set()
            time.sleep(0.3)
        if len(items) > 1 and self.fail & set(items):
            raise RuntimeError("the whole batch fails")
        return [ValueError(f"item {i}") if i in self.fail else i * 10 for i in items]


def _submit_all(commits: GroupCommit[int, int], items: list[int], writer: _SlowBatches) -> dict[int, object]:
    results: dict[int, object] = {}

    def one(item: int) -> None:
        try:
            results[item] = commits.submit(item)
        except Exception as exc:
            results[item] = exc

    first = threading.Thread(target=one, args=(items[0],))
    first.start()
    assert writer.first_started.wait(5)
    rest = [threading.Thread(target=one, args=(i,)) for i in items[1:]]
    for thread in rest:
        thread.start()
    for thread in [first, *rest]:
        thread.join(10)
    return results


def test_writers_arriving_during_a_write_share_the_next_one() -> None:
    writer = _SlowBatches()
    results = _submit_all(GroupCommit(writer, writers=1), list(range(9)), writer)
    assert results == {i: i * 10 for i in range(9)}
    assert writer.batches[0] == [0]  # a lone writer does not wait for company
    assert sorted(writer.batches[1]) == list(range(1, 9))  # the eight that queued meanwhile: one transaction
    assert len(writer.batches) == 2


def test_an_item_error_reaches_only_its_own_writer() -> None:
    writer = _SlowBatches(fail={3})
    results = _submit_all(GroupCommit(writer, writers=1), list(range(6)), writer)
    error = results.pop(3)
    assert isinstance(error, ValueError) and str(error) == "item 3"
    assert results == {i: i * 10 for i in (0, 1, 2, 4, 5)}
    # The failed batch of five was retried item by item.
    assert sorted(writer.batches[1]) == [1, 2, 3, 4, 5]
    assert sorted(tuple(b) for b in writer.batches[2:]) == [(1,), (2,), (3,), (4,), (5,)]


def test_batches_are_capped() -> None:
    writer = _SlowBatches()
    results = _submit_all(GroupCommit(writer, max_batch=3, writers=1), list(range(8)), writer)
    assert results == {i: i * 10 for i in range(8)}
    assert max(len(batch) for batch in writer.batches) == 3
    assert sorted(i for batch in writer.batches for i in batch) == list(range(8))


class _Overlapping:
    """A batch writer that takes 0.2 s a batch and records how many batches ran at once."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.running = 0
        self.most = 0
        self.lock = threading.Lock()

    def __call__(self, items: Sequence[int]) -> list[int | BaseException]:
        with self.lock:
            self.batches.append(list(items))
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(0.2)
        with self.lock:
            self.running -= 1
        return [i * 10 for i in items]


def test_two_writers_overlap_and_the_rest_share_their_transactions() -> None:
    writer = _Overlapping()
    commits: GroupCommit[int, int] = GroupCommit(writer, writers=2)
    results: dict[int, int] = {}
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, commits.submit(i))) for i in range(12)]
    for thread in threads[:2]:
        thread.start()
    deadline = time.monotonic() + 5
    while len(writer.batches) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    for thread in threads[2:]:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == {i: i * 10 for i in range(12)}
    assert writer.most == 2  # never more than two transactions at once, and two did overlap
    assert sorted(len(batch) for batch in writer.batches[:2]) == [1, 1]  # the first two wrote alone, at once
    assert len(writer.batches) <= 4  # the ten that queued meanwhile went in at most two more transactions
    assert sorted(i for batch in writer.batches for i in batch) == list(range(12))


def _counts(store: Store) -> tuple[int, int]:
    with store.engine.connect() as conn:
        rows = int(conn.execute(select(func.count()).select_from(ProfileRow)).scalar_one())
        blobs = int(conn.execute(select(func.count()).select_from(ProfileBlob)).scalar_one())
    return rows, blobs


def test_concurrent_ingest_stores_every_profile_once_with_its_blob(store: Store, settings: Settings) -> None:
    """Sixteen threads push 96 profiles (some retried under one key): each answer names its own stored profile."""
    payloads = [(DATA / name).read_bytes() for name in CAPTURES]
    answers: dict[tuple[int, int], tuple[int, bool, list[int]]] = {}
    errors: list[BaseException] = []

    def pusher(worker: int) -> None:
        try:
            for n in range(6):
                data = payloads[(worker + n) % len(payloads)]
                key = f"w{worker % 4}-n{n}" if worker % 2 == 0 else None  # workers 0/4, 2/6, ... share keys
                result = ingest(store, settings, data, {"service": f"s{worker % 4}"}, None, None, None, key)
                answers[(worker, n)] = (result.stored.id, result.stored.created, result.stored.totals)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=pusher, args=(w,)) for w in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    created = [pid for pid, was_created, _ in answers.values() if was_created]
    assert len(created) == len(set(created))  # no id handed to two writers as new
    # Keyed retries: workers w and w+4 (w even) share keys, so of each pair one created, one replayed the same id.
    for worker in (0, 2):
        for n in range(6):
            pair = [answers[(w, n)] for w in range(worker, 16, 4)]
            assert len({pid for pid, _, _ in pair}) == 1
            assert sum(was_created for _, was_created, _ in pair) == 1
    stored = len(set(created))
    assert _counts(store) == (stored, stored)
    # Every stored profile's totals are those of the payload its writer sent.
    with store.engine.connect() as conn:
        totals = dict(conn.execute(select(ProfileRow.id, ProfileRow.totals)).all())
    for (worker, n), (pid, _, answered) in answers.items():
        assert list(totals[pid]) == answered
        columns = decode_columns(payloads[(worker + n) % len(payloads)])
        assert answered[-1] == int(columns.sample_values.reshape(-1, len(answered))[:, -1].sum())


def test_a_batch_written_across_a_collection_resolves_stale_writers_again(store: Store, settings: Settings) -> None:
    """A writer whose cached ids predate a collection is refused inside the batch and resolves again."""
    data = (DATA / "cpu.pb.gz").read_bytes()
    first = ingest(store, settings, data, {"service": "gc"}, "cpu")
    with store.engine.begin() as conn:
        lock_for_gc(conn)  # bumps the epoch, as a collection does
    again = ingest(store, settings, data, {"service": "gc"}, "cpu")
    assert again.stored.id != first.stored.id and again.stored.totals == first.stored.totals
    assert _counts(store) == (2, 2)
