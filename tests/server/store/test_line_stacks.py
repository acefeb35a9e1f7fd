"""Line granularity on both databases: every sample key's line vector leads to its stack of (function, line)
frames, inlined frames expanded, as ``go tool pprof -lines`` counts them, in this process and in a fresh one;
keys stored before line data get theirs when seen again; garbage collection keeps the vectors of live keys;
``check`` verifies them."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from fastapi.testclient import TestClient

from server.pprof import profile_pb2
from server.pprof.decode import decode_columns, to_profile
from server.pprof.identity import sample_keys
from server.pprof.model import Sample
from server.store import linevectors
from server.store.check import check_store
from server.store.dedup import Dedup
from server.store.gc import collect_garbage
from server.store.linestacks import NoLineVector
from server.store.linevectors import LineVectorTable
from server.store.repository import Store
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
    tree = dedup.lines.tree
    tree.ensure(np.array([node], dtype=np.int64))
    frames: list[int] = []
    while node != ROOT:
        frames.append(int(tree.function[node]))
        node = int(tree.parent[node])
    pairs = dedup.lines.frames.pairs(frames)
    rows = store.functions.rows(f for f, _ in pairs.values())
    return [(rows[pairs[f][0]][0], rows[pairs[f][0]][2], pairs[f][1]) for f in frames]


def _without_lines(store: Store, keys: np.ndarray) -> int:
    """How many of ``keys`` have no line vector, as a fresh process reads them."""
    return int(LineVectorTable(store.engine).lacking(np.unique(keys)).sum())


def test_every_sample_key_leads_to_its_line_stack(store: Store) -> None:
    dedup = Dedup(store.engine)
    fresh = Dedup(store.engine)  # another process, reading the vectors from the database
    for data in (CPU, HEAP):
        columns = decode_columns(data)
        keys = dedup.sample_key_ids(columns)
        profile = to_profile(columns)
        for reader in (dedup, fresh):
            leaves = reader.line_leaves(keys)
            for sample, node in zip(profile.samples, leaves.tolist(), strict=True):
                assert _line_stack(reader, store, node) == _frames(sample)
    cpu, heap = to_profile(decode_columns(CPU)), to_profile(decode_columns(HEAP))
    inlined = {
        (ln.function.name, ln.line)
        for p in (cpu, heap)
        for s in p.samples
        for loc in s.locations
        for ln in loc.lines[:-1]
    }
    assert ("main.step", 54) in inlined, "the capture has inlined frames (-top -lines shows main.step :54 (inline))"
    marked = {
        pair
        for frame, pair in fresh.lines.frames.pairs(range(1, 10_000)).items()
        if frame in fresh.lines.frames.inlined([frame])
    }
    names = {(store.functions.rows([f])[f][0], line) for f, line in marked}
    assert names == inlined  # the inlined flag reaches the frames, from the vectors alone
    distinct = {
        (ln.function.key(), ln.line) for p in (cpu, heap) for s in p.samples for loc in s.locations for ln in loc.lines
    }
    assert len(fresh.lines.frames.pairs(range(1, 10_000))) == len(distinct)


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
    nodes, _ = dedup.sample_keys.resolve(keys)
    fresh = Dedup(store.engine)
    line_nodes = fresh.line_leaves(keys)
    for sample, node, line_node in zip(to_profile(columns).samples, nodes.tolist(), line_nodes.tolist(), strict=True):
        assert _line_stack(fresh, store, line_node) == _frames(sample)
        assert stack_names(fresh, store, node) == [f.name for f in sample.frames()]


def test_keys_stored_before_line_data_get_it_when_seen_again(store: Store) -> None:
    dedup = Dedup(store.engine)
    columns = decode_columns(CPU)
    keys = dedup.sample_key_ids(columns)
    linevectors.forget(store.engine)  # as migration 0015 leaves keys stored before it
    fresh = Dedup(store.engine)
    with pytest.raises(NoLineVector):
        fresh.line_leaves(keys)
    assert _without_lines(store, keys) == len(set(keys.tolist()))
    assert fresh.sample_key_ids(columns).tolist() == keys.tolist()
    assert _without_lines(store, keys) == 0
    again = Dedup(store.engine)
    for sample, node in zip(to_profile(columns).samples, again.line_leaves(keys).tolist(), strict=True):
        assert _line_stack(again, store, node) == _frames(sample)


def test_collection_keeps_the_vectors_of_live_keys_and_check_agrees(client: TestClient, store: Store) -> None:
    push(client, DATA / "cpu.pb.gz", service="demo", time="1764000000")
    dead = Dedup(store.engine).sample_key_ids(decode_columns(HEAP))  # keys no profile references
    report = check_store(store.engine, blobs=False)
    assert report.ok, report.problems
    before = report.counts["line_vectors"]
    removed = collect_garbage(store)
    live = set(Dedup(store.engine).sample_key_ids(decode_columns(CPU)).tolist())
    assert max(dead.tolist()) > max(live)
    # The highest key stays (ids are handed out past it, never twice), and the highest vector, its own.
    assert removed["sample_keys"] == len(set(dead.tolist()) - live) - 1
    assert removed["line_vectors"] == removed["sample_keys"]
    after = check_store(store.engine, blobs=False)
    assert after.ok, after.problems
    assert after.counts["line_vectors"] == before - removed["line_vectors"]
    # The stored profile's keys still lead to their line stacks.
    dedup = Dedup(store.engine)
    columns = decode_columns(CPU)
    keys = dedup.sample_key_ids(columns)
    for sample, node in zip(to_profile(columns).samples, dedup.line_leaves(keys).tolist(), strict=True):
        assert _line_stack(dedup, store, node) == _frames(sample)


def test_a_collection_since_the_keys_were_resolved_skips_the_fill(store: Store) -> None:
    keys = Dedup(store.engine).sample_key_ids(decode_columns(CPU))
    linevectors.forget(store.engine)
    stale = Dedup(store.engine, epoch=5)  # resolved under an epoch the database has moved past (it is at 0)
    assert stale.sample_key_ids(decode_columns(CPU)).tolist() == keys.tolist()
    assert _without_lines(store, keys) == len(set(keys.tolist()))
