"""The consistency checker: clean on a real store, and each kind of damage it exists for is named, on both DBs."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from sqlalchemy import Delete, delete, func, insert, select, update

from server.ingest.dumps import ingest_dump
from server.ingest.profile import ingest
from server.settings import Settings
from server.store import blob, linevectors, stackcodec, stacks, symbols
from server.store.check import check_store
from server.store.models import (
    GoroutineGroup,
    ProfileBlob,
    ProfileRow,
    Rollup,
    RollupBlob,
    SegmentKind,
    SegmentRow,
)
from server.store.repository import Store
from server.store.samplekeys import KeyRows, read_segments, segment_row
from server.upkeep.jobs import build_rollups
from tests.support.tools import DATA

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)

HOUR_NS = 3600 * 10**9
BASE_NS = 1_790_000_000 * 10**9 - (1_790_000_000 * 10**9) % HOUR_NS  # an hour long closed


def _fill(store: Store, settings: Settings) -> None:
    for index, name in enumerate(("cpu.pb.gz", "cpu2.pb.gz", "heap.pb.gz", "goroutine.pb.gz")):
        data = (DATA / name).read_bytes()
        for minute in (1, 2):
            ingest(store, settings, data, {"service": "svc"}, None, BASE_NS + minute * 60 * 10**9 + index)
    assert build_rollups(store)["hourly"] > 0


def _problems(store: Store) -> list[str]:
    return [problem.check for problem in check_store(store.engine).problems]


def _delete_segment(kind: SegmentKind, first_id: int) -> Delete:
    return delete(SegmentRow).where(SegmentRow.kind == kind, SegmentRow.first_id == first_id)


def test_a_real_store_is_consistent_and_the_cli_says_so(store: Store, settings: Settings, database_url: str) -> None:
    _fill(store, settings)
    report = check_store(store.engine)
    assert report.ok, report.problems
    assert report.counts["profiles"] == 8
    assert report.counts["rollups"] >= 3
    done = subprocess.run(
        [sys.executable, "-m", "stackyard", "check", "--database-url", database_url],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "store consistent: 8 profiles" in done.stdout
    nodes = store.dedup.stacks.size
    assert f"ids used: function_stacks {nodes:,} of 4,294,967,296 (0.0 %), functions " in done.stdout


def test_each_kind_of_damage_is_named(store: Store, settings: Settings, database_url: str) -> None:
    _fill(store, settings)
    dump = (DATA / "goroutine_debug2.txt").read_bytes()
    ingest_dump(store, settings, dump, {"service": "svc", "instance": "a:1"}, BASE_NS + 60 * 10**9)
    with store.engine.begin() as conn:
        victim = int(conn.execute(select(ProfileRow.id).order_by(ProfileRow.id)).scalars().first() or 0)
        conn.execute(delete(ProfileBlob).where(ProfileBlob.profile_id == victim))
        function = int(symbols.read_segments(conn)[0].ids[0])
        orphan = stackcodec.Segment(
            np.array([10**11]), np.array([10**11 - 1]), np.array([function]), np.array([False])
        )  # a node whose parent was never stored
        conn.execute(
            insert(SegmentRow).values(
                kind=SegmentKind.FUNCTION_STACKS,
                first_id=10**11,
                last_id=10**11,
                items=1,
                data=stackcodec.encode(orphan),
            )
        )
        # a key pointing at a node never stored (ids past every stored key, as an append gives them)
        keys = select(func.max(SegmentRow.last_id)).where(SegmentRow.kind == SegmentKind.SAMPLE_KEYS)
        high = int(conn.execute(keys).scalar_one())
        bad = KeyRows(*(np.array([v]) for v in (high + 1, 42, 10**12, 0)))
        conn.execute(insert(SegmentRow).values(**segment_row(bad)))
        # a key whose hash another key already has (what the unique index once refused)
        stored = read_segments(conn)[0]
        twice = KeyRows(*(np.array([v]) for v in (high + 2, int(stored.hashes[0]), int(stored.nodes[0]), 0)))
        conn.execute(insert(SegmentRow).values(**segment_row(twice)))
        # line vectors: one of a key never stored, one with fewer frames than its key's stack is deep
        vectors = linevectors.read_segments(conn)
        top = int(vectors[-1].ids[-1])
        short = linevectors.VectorRows(
            np.array([top + 1, top + 2]),
            np.array([10**12, int(stored.ids[0])]),
            np.array([0, 1, 1]),
            np.array([7 << 1]),
        )
        conn.execute(insert(SegmentRow).values(**linevectors.segment_row(short)))
        torn = {"first_id": 10**9, "last_id": 10**9, "items": 1, "data": b"LV torn"}
        conn.execute(insert(SegmentRow).values(kind=SegmentKind.LINE_VECTORS, **torn))
        conn.execute(insert(SegmentRow).values(kind=len(SegmentKind), **torn))  # a kind no release wrote
        # a kind migration 0022 converts, left behind
        converted = {"first_id": 10**9 + 1, "last_id": 10**9 + 1, "items": 1, "data": b"SN"}
        conn.execute(insert(SegmentRow).values(kind=SegmentKind.LINE_STACKS, **converted))
        other = int(conn.execute(select(ProfileRow.id).where(ProfileRow.id != victim)).scalars().first() or 0)
        data = bytes(conn.execute(select(ProfileBlob.data).where(ProfileBlob.profile_id == other)).scalar_one())
        conn.execute(update(ProfileBlob).where(ProfileBlob.profile_id == other).values(data=data[: len(data) // 2]))
        conn.execute(update(Rollup).where(Rollup.width_s == 3600).values(profiles=Rollup.profiles + 1))
        # Rows carrying another series than their owner's (on Citus they would sit on another node).
        third = int(
            conn.execute(select(ProfileRow.id).where(ProfileRow.id.not_in((victim, other)))).scalars().first() or 0
        )
        conn.execute(update(ProfileBlob).where(ProfileBlob.profile_id == third).values(series_id=10**9))
        conn.execute(update(RollupBlob).values(series_id=10**9))
        conn.execute(update(GoroutineGroup).values(series_id=10**9))
    problems = _problems(store)
    assert "profiles without a blob" in problems
    assert "stack nodes whose parent is missing" in problems
    assert "sample keys whose stack node is missing" in problems
    assert "sample keys whose hash is stored twice (by id)" in problems
    assert "line-vector segments that do not decode or disagree with their row (by first vector)" in problems
    assert "line vectors whose sample key is missing (by vector id)" in problems
    assert "line vectors whose frame count is not their key's stack depth (by vector id)" in problems
    unknown = [p for p in check_store(store.engine).problems if p.check.startswith("segments of no kind still written")]
    assert [(p.count, p.examples) for p in unknown] == [(2, (10**9, 10**9 + 1))]
    assert "profile blobs that do not decode" in problems or (
        "profile blobs that do not sum to the profile's totals" in problems
    )
    assert "rollups that no longer stand for every profile of their bucket" in problems
    assert "blobs whose series is not their profile's" in problems
    assert "rollup blobs whose series is not their rollup's" in problems
    assert "goroutine dumps whose groups name another series" in problems
    done = subprocess.run(
        [sys.executable, "-m", "stackyard", "check", "--database-url", database_url],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "store INCONSISTENT" in done.stderr and "profiles without a blob: 1 (e.g. " in done.stderr


def test_a_sample_key_missing_under_a_blob_is_found(store: Store, settings: Settings) -> None:
    _fill(store, settings)
    with store.engine.begin() as conn:  # the first segment's first key dropped, as a broken collection would
        first = read_segments(conn)[0]
        conn.execute(_delete_segment(SegmentKind.SAMPLE_KEYS, int(first.ids[0])))
        if len(first) > 1:
            conn.execute(insert(SegmentRow).values(**segment_row(first.take(np.arange(1, len(first))))))
    assert "sample keys named by profile blobs but missing" in _problems(store)


def test_functions_missing_torn_or_stored_twice_are_found(store: Store, settings: Settings) -> None:
    """What the functions' primary key and unique index once enforced, and what a broken collection would leave:
    a function named by stack nodes but missing, one stored twice, a segment that does not decode."""
    _fill(store, settings)
    assert _problems(store) == []
    with store.engine.begin() as conn:
        segments = symbols.read_segments(conn)
        victim = int(stacks.read_segments(conn)[0].frames[0])  # named by stack nodes
        holding = next(segment for segment in segments if victim in segment.ids.tolist())
        conn.execute(_delete_segment(SegmentKind.FUNCTIONS, int(holding.ids[0])))
        if len(holding) > 1:
            conn.execute(insert(SegmentRow).values(**symbols.segment_row(holding.take(holding.ids != victim))))
        high = int(segments[-1].ids[-1])
        kept = next(key for fid, key in zip(holding.ids.tolist(), holding.keys(), strict=True) if fid != victim)
        again = symbols.rows_of([kept], [0], high + 1)  # a function already stored, under a new id
        conn.execute(insert(SegmentRow).values(**symbols.segment_row(again)))
        conn.execute(
            insert(SegmentRow).values(
                kind=SegmentKind.FUNCTIONS, first_id=high + 2, last_id=high + 2, items=1, data=b"FS"
            )
        )
    problems = _problems(store)
    assert "stack nodes whose function is missing" in problems
    assert "functions whose (name, system name, file) is stored twice (by id)" in problems
    assert "function segments that do not decode or disagree with their row (by first function)" in problems


def test_a_rollup_whose_node_sums_disagree_is_found(store: Store, settings: Settings) -> None:
    """A rollup's values per stack node must add up to its totals, as its sample-key rows do."""
    _fill(store, settings)
    assert _problems(store) == []
    with store.engine.begin() as conn:
        rollup_id, data = conn.execute(select(RollupBlob.rollup_id, RollupBlob.data).limit(1)).one()
        keyed = blob.decode(bytes(data))
        per_node = blob.decode_nodes(bytes(data))
        assert per_node is not None and len(per_node)
        per_node.values[0] += 1
        conn.execute(
            update(RollupBlob).where(RollupBlob.rollup_id == rollup_id).values(data=blob.encode(keyed, per_node))
        )
    assert _problems(store) == ["rollup blobs that do not sum to the rollup's totals"]
