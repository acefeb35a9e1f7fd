"""Line-granularity storage on both databases: every sample key leads to its stack of (function, line)
frames, inlined frames expanded, as ``go tool pprof -lines`` counts them; keys stored before line data
get theirs when seen again; garbage collection keeps what live keys reach; ``check`` verifies it."""

from __future__ import annotations

import gzip

import numpy as np
from fastapi.testclient import TestClient

from server.pprof import profile_pb2
from server.pprof.decode import decode_columns, to_profile
from server.pprof.identity import sample_keys
from server.pprof.model import Sample
from server.store.check import check_store
from server.store.dedup import Dedup
from server.store.gc import collect_garbage
from server.store.lineframes import LineFrameTable
from server.store.repository import Store
from server.store.samplekeys import NO_LINES, SampleKeyTable, forget_lines
from server.store.stacks import ROOT
from tests.support.helpers import push
from tests.support.stacknames import stack_names
from tests.support.tools import DATA

CPU = (DATA / "cpu.pb.gz").read_bytes()
HEAP = (DATA / "heap.pb.gz").read_bytes()


def _frames(sample: Sample) -> list[tuple[str, str, int]]:
    """(name, file, line) of every frame, leaf first, inlined frames expanded."""
    return [(ln.function.name, ln.function.filename, ln.line) for loc in sample.locations for ln in loc.lines]


def _line_stack(dedup: Dedup, store: Store, node: int) -> list[tuple[str, str, int]]:
    """The frames from ``node`` of the line tree up to its root, leaf first."""
    tree = dedup.line_stacks
    tree.ensure(np.array([node], dtype=np.int64))
    frames: list[int] = []
    while node != ROOT:
        frames.append(int(tree.function[node]))
        node = int(tree.parent[node])
    pairs = dedup.line_frames.pairs(frames)
    rows = store.functions.rows(f for f, _ in pairs.values())
    return [(rows[pairs[f][0]][0], rows[pairs[f][0]][2], pairs[f][1]) for f in frames]


def _without_lines(store: Store) -> int:
    """Stored keys without a line leaf, as a fresh process reads them."""
    table = SampleKeyTable(store.engine)
    table.lookup(np.zeros(0, dtype=np.int64))  # reads every segment
    return int((table.line_node[table.known] == NO_LINES).sum())


def test_every_sample_key_leads_to_its_line_stack(store: Store) -> None:
    dedup = Dedup(store.engine)
    for data in (CPU, HEAP):
        columns = decode_columns(data)
        keys = dedup.sample_key_ids(columns)
        profile = to_profile(columns)
        line_nodes, _ = dedup.sample_keys.resolve_lines(keys)
        assert bool((line_nodes != NO_LINES).all())
        fresh = Dedup(store.engine)  # another process reads the same from the database
        for sample, node in zip(profile.samples, line_nodes.tolist(), strict=True):
            assert _line_stack(fresh, store, node) == _frames(sample)
    cpu = to_profile(decode_columns(CPU))
    inlined = {(ln.function.name, ln.line) for s in cpu.samples for loc in s.locations for ln in loc.lines[:-1]}
    assert ("main.step", 54) in inlined, "the capture has inlined frames (-top -lines shows main.step :54 (inline))"
    frames = LineFrameTable(store.engine)
    frames.pairs([1])  # reads every segment
    stored = int(frames.known.sum())
    distinct = {
        (ln.function.key(), ln.line)
        for p in (cpu, to_profile(decode_columns(HEAP)))
        for s in p.samples
        for loc in s.locations
        for ln in loc.lines
    }
    assert stored == len(distinct)


def test_a_profile_with_known_and_new_samples_expands_the_new_ones_right(store: Store) -> None:
    """Only the samples whose keys are new are expanded (their frames alone, numbered among the entries they
    use): a profile half of whose samples were stored by an earlier one still leads every key to its stacks."""
    message = profile_pb2.Profile.FromString(gzip.decompress(CPU))
    del message.sample[1::2]
    dedup = Dedup(store.engine)
    dedup.sample_key_ids(decode_columns(message.SerializeToString()))
    columns = decode_columns(CPU)
    hashes = sample_keys(columns, dedup.function_ids(columns), dedup.labelset_ids(columns)).view(np.int64)
    before = dedup.sample_keys.lookup(hashes)
    assert 0 < int((before < 0).sum()) < before.shape[0]  # known samples and new ones
    keys = dedup.sample_key_ids(columns)
    line_nodes, _ = dedup.sample_keys.resolve_lines(keys)
    nodes, _ = dedup.sample_keys.resolve(keys)
    fresh = Dedup(store.engine)
    for sample, node, line_node in zip(to_profile(columns).samples, nodes.tolist(), line_nodes.tolist(), strict=True):
        assert _line_stack(fresh, store, line_node) == _frames(sample)
        assert stack_names(fresh, store, node) == [f.name for f in sample.frames()]


def test_keys_stored_before_line_data_get_it_when_seen_again(store: Store) -> None:
    dedup = Dedup(store.engine)
    keys = dedup.sample_key_ids(decode_columns(CPU))
    expected, _ = dedup.sample_keys.resolve_lines(keys)
    forget_lines(store.engine)  # as migration 0015 leaves keys stored before it
    fresh = Dedup(store.engine)
    lacking, _ = fresh.sample_keys.resolve_lines(keys)
    assert bool((lacking == NO_LINES).all())
    assert fresh.sample_key_ids(decode_columns(CPU)).tolist() == keys.tolist()
    assert _without_lines(store) == 0
    again, _ = Dedup(store.engine).sample_keys.resolve_lines(keys)
    assert again.tolist() == expected.tolist()


def test_collection_keeps_what_live_keys_reach_and_check_agrees(client: TestClient, store: Store) -> None:
    push(client, DATA / "cpu.pb.gz", service="demo", time="1764000000")
    dead = Dedup(store.engine).sample_key_ids(decode_columns(HEAP))  # keys no profile references
    report = check_store(store.engine, blobs=False)
    assert report.ok, report.problems
    before = report.counts["line_nodes"]
    removed = collect_garbage(store)
    live = set(Dedup(store.engine).sample_key_ids(decode_columns(CPU)).tolist())
    assert max(dead.tolist()) > max(live)
    # The highest key stays (ids are handed out past it, never twice), with what it reaches.
    assert removed["sample_keys"] == len(set(dead.tolist()) - live) - 1
    assert removed["line_nodes"] > 0 and removed["line_frames"] > 0
    after = check_store(store.engine, blobs=False)
    assert after.ok, after.problems
    assert after.counts["line_nodes"] == before - removed["line_nodes"]
    # The stored profile's keys still lead to their line stacks.
    dedup = Dedup(store.engine)
    columns = decode_columns(CPU)
    keys = dedup.sample_key_ids(columns)
    line_nodes, _ = dedup.sample_keys.resolve_lines(keys)
    for sample, node in zip(to_profile(columns).samples, line_nodes.tolist(), strict=True):
        assert _line_stack(dedup, store, node) == _frames(sample)


def test_a_collection_since_the_leaves_were_resolved_skips_the_fill(store: Store) -> None:
    keys = Dedup(store.engine).sample_key_ids(decode_columns(CPU))
    forget_lines(store.engine)
    stale = Dedup(store.engine)
    stale.epoch = 5  # resolved under an epoch the database has moved past (it is at 0)
    assert stale.sample_key_ids(decode_columns(CPU)).tolist() == keys.tolist()
    assert _without_lines(store) == len(set(keys.tolist()))
