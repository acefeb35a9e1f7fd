"""Deduplication on its own, on both databases: a real profile's samples become ids that give its stacks back.

Each sample's sample key must lead to a stack node whose path to the root
is exactly the sample's frames (inlined ones expanded, as ``go tool pprof``
counts them) and to its ``pprof.Do`` labels; the same profile must resolve to
the same ids every time, in this process or a fresh one, and a profile seen
before must not touch the database at all.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, event, func, select

from server.ingest.profile import ingest
from server.pprof.columns import ProfileColumns
from server.pprof.decode import decode_columns, to_profile
from server.query import service
from server.query.request import ProfileQuery
from server.query.selector import parse_selector
from server.settings import Settings
from server.store import symbols
from server.store.check import check_store
from server.store.database import make_engine
from server.store.dedup import CachesStale, Dedup
from server.store.gc import collect_garbage
from server.store.linestacks import LineStacks
from server.store.models import SegmentKind, SegmentRow
from server.store.repository import Store
from server.store.state import read_generation
from server.upkeep.retention import apply_retention
from tests.support.oracle import pprof_top
from tests.support.stacknames import stack_names
from tests.support.statements import bound_kinds
from tests.support.tools import DATA

CPU = (DATA / "cpu.pb.gz").read_bytes()
_KEY_COUNT = select(func.sum(SegmentRow.items)).where(SegmentRow.kind == SegmentKind.SAMPLE_KEYS)

#: The kinds of segment a write appends (the line tree's and line frames' are no longer written).
_WRITTEN = set(SegmentKind) - {SegmentKind.LINE_STACKS, SegmentKind.LINE_FRAMES}


def _columns() -> ProfileColumns:
    return decode_columns(CPU)


@contextmanager
def _statements(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


@contextmanager
def _segment_statements(engine: Engine) -> Iterator[list[tuple[str, SegmentKind]]]:
    """``(verb, kind)`` of every statement on the segments table with a kind bound to it: ``INSERT`` for an append,
    ``SELECT`` for a catch-up read of the kind's segments."""
    seen: list[tuple[str, SegmentKind]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, context: Any, _many: bool) -> None:
        if "segments" not in statement:
            return
        verb = statement.lstrip().split()[0].upper()
        seen.extend((verb, SegmentKind(kind)) for kind in bound_kinds(statement, parameters, context))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_every_sample_key_gives_back_its_frames_and_labels(store: Store) -> None:
    dedup = Dedup(store.engine)
    columns = _columns()
    keys = dedup.sample_key_ids(columns)
    profile = to_profile(columns)
    assert keys.shape[0] == len(profile.samples) and bool((keys > 0).all())
    nodes, labelsets = dedup.sample_keys.resolve(keys)
    label_sets = dedup.labelsets.get(labelsets.tolist())
    for sample, node, labelset in zip(profile.samples, nodes.tolist(), labelsets.tolist(), strict=True):
        assert stack_names(dedup, store, node) == [f.name for f in sample.frames()]
        assert label_sets[labelset] == (sample.labels, sample.num_labels)
    # The capture's labels (tests/data/README.md): some samples carry handler=..., others none (label set 0).
    handlers = {dict(label_sets[ls][0]).get("handler") for ls in labelsets.tolist()}
    assert {"/checkout", "/search", None} <= handlers
    assert 0 in labelsets.tolist()


def test_functions_are_stored_once_by_content(store: Store) -> None:
    dedup = Dedup(store.engine)
    dedup.sample_key_ids(_columns())
    profile = to_profile(_columns())
    distinct = {f.key() for f in profile.all_functions()}
    with store.engine.connect() as conn:
        functions = select(func.sum(SegmentRow.items)).where(SegmentRow.kind == SegmentKind.FUNCTIONS)
        assert conn.execute(functions).scalar_one() == len(distinct)
        stored = symbols.concatenate(symbols.read_segments(conn))
    assert set(stored.keys()) == distinct and len(stored.keys()) == len(distinct)


def test_a_profile_seen_before_resolves_from_memory(store: Store) -> None:
    dedup = Dedup(store.engine)
    first = dedup.sample_key_ids(_columns())
    with _statements(store.engine) as statements:
        again = dedup.sample_key_ids(_columns())
    assert again.tolist() == first.tolist()
    assert statements == []


def test_a_fresh_process_and_a_reset_find_the_same_ids(store: Store) -> None:
    first = Dedup(store.engine)
    keys = first.sample_key_ids(_columns()).tolist()
    with store.engine.connect() as conn:
        stored = conn.execute(_KEY_COUNT).scalar_one()
    fresh = Dedup(store.engine)  # another replica or worker process: empty caches, the same database
    assert fresh.sample_key_ids(_columns()).tolist() == keys
    reset = first.fresh(epoch=3)
    assert reset.epoch == 3 and int(reset.stacks.known.sum()) == 1  # the root alone
    assert reset.sample_key_ids(_columns()).tolist() == keys
    with store.engine.connect() as conn:
        assert conn.execute(_KEY_COUNT).scalar_one() == stored  # nothing added


def test_the_epoch_is_read_once(store: Store) -> None:
    dedup = Dedup(store.engine)
    assert dedup.epoch is None
    dedup.ensure_epoch()
    assert dedup.epoch == 0  # a fresh database: no collection ran
    with _statements(store.engine) as statements:
        dedup.ensure_epoch()
    assert statements == []


def test_a_profile_s_new_rows_go_in_one_transaction(store: Store) -> None:
    """Functions, stack nodes, sample keys and their line vectors: one begin and one commit, not one a table."""
    dedup = Dedup(store.engine)
    columns = _columns()
    dedup.labelset_ids(columns)  # label sets have a transaction of their own
    commits: list[int] = []
    event.listen(store.engine, "commit", lambda _conn: commits.append(1))
    with _segment_statements(store.engine) as statements:
        dedup.sample_key_ids(columns)
    assert {kind for verb, kind in statements if verb == "INSERT"} == _WRITTEN
    assert len(commits) == 1
    with store.engine.connect() as conn:
        kinds = conn.execute(select(func.count(func.distinct(SegmentRow.kind)))).scalar_one()
    assert kinds == len(_WRITTEN)


def test_a_writer_reads_the_segments_only_others_appended(store: Store) -> None:
    """The first id of the newest segment of functions, sample keys, line vectors and the stack tree comes with
    the epoch, under the append locks: a writer that loaded it skips the catch-up read; one behind another writer
    reads what it appended, and both agree."""
    mine, other = Dedup(store.engine), Dedup(store.engine)
    mine.sample_key_ids(_columns())
    kinds = _WRITTEN

    def caught_up(statements: list[tuple[str, SegmentKind]]) -> set[SegmentKind]:
        return {kind for verb, kind in statements if verb == "SELECT"}

    def appended(statements: list[tuple[str, SegmentKind]]) -> set[SegmentKind]:
        return {kind for verb, kind in statements if verb == "INSERT"}

    with _segment_statements(store.engine) as statements:
        mine.sample_key_ids(decode_columns((DATA / "cpu2.pb.gz").read_bytes()))
    assert appended(statements) == kinds
    assert caught_up(statements) == set()
    with _segment_statements(store.engine) as statements:
        other.sample_key_ids(decode_columns((DATA / "cpu_slow.pb.gz").read_bytes()))
    others = appended(statements)
    big = (DATA / "big_cpu.pb.gz").read_bytes()
    with _segment_statements(store.engine) as statements:
        keys = mine.sample_key_ids(decode_columns(big))
    assert appended(statements) == kinds
    assert caught_up(statements) == others  # the kinds the other writer appended to, and only those
    assert other.sample_key_ids(decode_columns(big)).tolist() == keys.tolist()
    assert Dedup(store.engine).sample_key_ids(decode_columns(big)).tolist() == keys.tolist()
    fresh = Dedup(store.engine)
    # Both processes' trees hold the same nodes as the segments.
    mine_tree, other_tree, read = mine.stacks, other.stacks, fresh.stacks
    read.ensure(np.array([mine_tree.size], dtype=np.int64))
    assert mine_tree.size == other_tree.size == read.size
    for column in ("parent", "function", "recursive"):
        top = read.size + 1
        assert getattr(mine_tree, column)[:top].tolist() == getattr(read, column)[:top].tolist()
    # And every key's line vector, whichever process wrote it.
    for process in (mine, other, fresh):
        assert not bool(process.line_vectors.lacking(keys).any())
    for process in (other, fresh):
        assert [v.tolist() for v in process.line_vectors.vectors(keys)] == [
            v.tolist() for v in mine.line_vectors.vectors(keys)
        ]


def test_concurrent_writers_of_the_same_new_profiles_agree(database_url: str) -> None:
    """Writers with caches of their own (replicas, worker processes) store two profiles' new rows at once,
    each in one transaction: every writer gets the same ids, and nothing is stored twice."""
    payloads = [decode_columns((DATA / name).read_bytes()) for name in ("cpu.pb.gz", "cpu2.pb.gz", "cpu_slow.pb.gz")]
    results: dict[int, list[list[int]]] = {}
    failures: list[BaseException] = []
    start = threading.Barrier(3)

    def writer(number: int) -> None:
        engine = make_engine(database_url)
        try:
            dedup = Dedup(engine)
            dedup.ensure_epoch()
            order = payloads[number:] + payloads[:number]  # each starts on another profile, then meets the rest
            start.wait()
            found = {id(columns): dedup.sample_key_ids(columns).tolist() for columns in order}
            results[number] = [found[id(columns)] for columns in payloads]
        except BaseException as exc:  # reported below: a thread's exception would vanish
            failures.append(exc)
            start.abort()  # the others, if still waiting to start, fail at once instead of waiting forever
        finally:
            engine.dispose()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    assert results[0] == results[1] == results[2]
    engine = make_engine(database_url)
    try:
        report = check_store(engine, blobs=False)
        with engine.connect() as conn:
            functions = symbols.concatenate(symbols.read_segments(conn)).keys()
    finally:
        engine.dispose()
    assert report.ok, report.problems
    assert len(functions) == len(set(functions)) > 0


def test_writers_and_a_collection_never_wait_on_each_other(database_url: str) -> None:
    """Writers with caches of their own store new profiles while collections run: every lock is taken in one
    order (a collection's), so nothing deadlocks, stale writers resolve again, and the store stays whole."""
    names = ("cpu.pb.gz", "cpu2.pb.gz", "cpu_slow.pb.gz")
    payloads = [(DATA / name).read_bytes() for name in names]
    settings = Settings(database_url=database_url, retention_raw="36500d")
    failures: list[BaseException] = []
    start = threading.Barrier(3)
    stored: list[int] = []

    def writer(number: int) -> None:
        store = Store.from_url(database_url)
        try:
            start.wait()
            for n in range(4):
                data = payloads[(number + n) % len(payloads)]
                labels = {"service": f"w{number}-{n}"}  # new series, and new stacks for the first of each
                for _ in range(5):  # a write resolves again once by itself; two collections during it reach here
                    try:
                        written = ingest(store, settings, data, labels, time_ns=1_764_000_000_000_000_000 + n)
                    except CachesStale:
                        continue
                    stored.append(written.stored.id)
                    break
        except BaseException as exc:  # reported below: a thread's exception would vanish
            failures.append(exc)
            start.abort()
        finally:
            store.close()

    def collector() -> None:
        store = Store.from_url(database_url)
        try:
            start.wait()
            for _ in range(3):
                collect_garbage(store)
        except BaseException as exc:
            failures.append(exc)
            start.abort()
        finally:
            store.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(2)] + [threading.Thread(target=collector)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    assert len(set(stored)) == 8
    _assert_whole(database_url)


def _assert_whole(database_url: str) -> None:
    """``stackyard check`` finds nothing wrong, blobs included: every id a stored profile names is there."""
    engine = make_engine(database_url)
    try:
        report = check_store(engine, blobs=True)
    finally:
        engine.dispose()
    assert report.ok, report.problems


def test_nothing_is_appended_once_a_collection_ran(store: Store) -> None:
    """Caches filled before a collection may hold nodes, frames and functions it deleted: a new node could hang off
    a parent that is gone. No segment of any table is appended; the profile is resolved again instead."""
    stale = Dedup(store.engine, epoch=7)  # resolved under an epoch the database has moved past (it is at 0)
    with pytest.raises(CachesStale):
        stale.sample_key_ids(_columns())
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(SegmentRow)).scalar_one() == 0
    assert stale.stacks.size == 0 and not bool(stale.sample_keys.known.any())
    assert stale.fresh(0).sample_key_ids(_columns()).size > 0


@pytest.mark.parametrize("renumbering", [False, True], ids=["sweep", "renumbering"])
def test_a_profile_is_not_committed_between_a_collections_epoch_bump_and_its_sweep(
    database_url: str, monkeypatch: pytest.MonkeyPatch, renumbering: bool
) -> None:
    """A profile that brings new rows commits its own row in their transaction. A collection bumps the epoch
    and reads the newest blobs before it takes the append locks: a writer that held only those could commit
    a profile in between, whose sample keys the sweep then deletes (it did, on PostgreSQL). The collection
    is held right there while a writer stores a profile of new stacks: the writer must wait for the
    collection and resolve its ids again after it, and nothing any blob names may be missing. Also when the
    collection renumbers the tree (its rule made to hold: the test cannot hand out 2**31 ids), which rewrites
    every key's node: the writer's nodes must be of the new numbering."""
    from server.store import gc, renumber

    if renumbering:
        monkeypatch.setattr(renumber, "wanted", lambda highest, live: True)

    settings = Settings(database_url=database_url, retention_raw="36500d")
    store = Store.from_url(database_url)
    paused, written = threading.Event(), threading.Event()
    real_highest = gc._highest
    calls: list[int] = []

    def held_highest(conn: Any) -> tuple[int, int]:
        calls.append(1)
        highest = real_highest(conn)
        if len(calls) == 2:  # inside the sweep's transaction, after its epoch bump and its reading of the newest
            paused.set()
            written.wait(timeout=3)  # a writer that need not wait for the collection is done by then
        return highest

    monkeypatch.setattr(gc, "_highest", held_highest)
    failures: list[BaseException] = []
    stored: list[int] = []

    def writer() -> None:
        try:
            paused.wait(timeout=30)
            for _ in range(3):  # the collection's epoch makes it resolve once more
                try:
                    result = ingest(store, settings, (DATA / "cpu2.pb.gz").read_bytes(), {"service": "late"}, time_ns=2)
                except CachesStale:
                    continue
                stored.append(result.stored.id)
                break
        except BaseException as exc:
            failures.append(exc)
        finally:
            written.set()

    try:
        ingest(store, settings, CPU, {"service": "early"}, time_ns=1)
        thread = threading.Thread(target=writer)
        thread.start()
        collector = Store.from_url(database_url)
        try:
            collect_garbage(collector)
        finally:
            collector.close()
        thread.join()
        assert not failures, failures
        assert len(stored) == 1
        _assert_whole(database_url)
        if renumbering:
            fresh = Store.from_url(database_url)
            try:  # the late profile reads back as pprof reads its file, through the renumbered tree
                with fresh.engine.connect() as conn:
                    assert read_generation(conn) == 1
                late = ProfileQuery("cpu", parse_selector('{service="late"}'), 0, 10, "cpu")
                answer = service.top(fresh.pinned(), settings, late)
                expected = pprof_top([DATA / "cpu2.pb.gz"], "cpu", "nanoseconds")
                assert answer.total == expected.total
                assert {row.name: (row.flat, row.cum) for row in answer.rows} == expected.rows
            finally:
                fresh.close()
    finally:
        store.close()


def test_caches_a_query_filled_before_a_collection_elsewhere_never_write_what_it_dropped(
    store: Store, settings: Settings
) -> None:
    """A replica's caches may be filled by a query long before its first write. If another process collected in
    between, the epoch they hold must be the one read before their first read, not the one read at that first
    write: else the write is accepted with key ids the collection dropped, and the profile cannot be read."""
    day = 86_400 * 10**9
    t0 = 1_790_000_000 * 10**9
    ingest(store, settings, CPU, {"service": "s"}, "cpu", t0)
    replica = Store.from_url(settings.database_url)
    try:
        old = ProfileQuery("cpu", parse_selector('{service="s"}'), t0, t0 + 1, "cpu")
        assert service.top(replica.pinned(), settings, old).total > 0  # its caches hold the profile's keys
        short = Settings(database_url=settings.database_url, retention_raw="30d")
        assert apply_retention(store, short, now_ns=t0 + 40 * day)["sample_keys"] > 0  # another process collects
        ingest(replica, settings, CPU, {"service": "s"}, "cpu", t0 + 41 * day)  # the same stacks, first write
    finally:
        replica.close()
    report = check_store(store.engine)
    assert report.ok, report.problems
    fresh = Store.from_url(settings.database_url)
    try:
        new = ProfileQuery("cpu", parse_selector('{service="s"}'), t0 + 41 * day, t0 + 41 * day + 1, "cpu")
        expected = service.top(store.pinned(), settings, old)  # not stored any more: empty
        assert expected.total == 0
        expected_new = pprof_top([DATA / "cpu.pb.gz"], "cpu", "nanoseconds")
        answer = service.top(fresh.pinned(), settings, new)
        assert answer.total == expected_new.total
        assert {row.name: (row.flat, row.cum) for row in answer.rows} == expected_new.rows
    finally:
        fresh.close()


def test_a_line_vector_that_does_not_fit_its_keys_stack_is_refused(store: Store) -> None:
    """Line stacks are built by walking each key's node up as its vector's values run: a vector one frame
    longer or shorter than the stack (a damaged store, which ``stackyard check`` reports) is a LookupError, not
    a stack of the wrong functions."""
    dedup = Dedup(store.engine)
    keys = dedup.sample_key_ids(decode_columns((DATA / "cpu2.pb.gz").read_bytes()))
    keys = np.unique(keys)
    nodes = dedup.sample_keys.node[keys]
    deep = np.flatnonzero(dedup.stacks.parent[nodes] > 0)  # keys whose node has a parent: one frame to cut
    assert deep.size
    wrong = nodes.copy()
    wrong[deep[0]] = int(dedup.stacks.parent[nodes[deep[0]]])  # its parent's stack: one frame shorter
    with pytest.raises(LookupError, match="does not fit"):
        LineStacks().leaves(keys, wrong, dedup.stacks, dedup.line_vectors)
    leaves = LineStacks().leaves(keys, nodes, dedup.stacks, dedup.line_vectors)
    assert bool((leaves > 0).all())
