"""Frames of chosen samples: the extension's kernel equals the numpy reference, and both equal the message.

Ingest expands only the samples whose keys are new (:func:`server.pprof.frames.expand` with ``which``), in
C (:func:`server.pprof.kernels.expand_frames`). Held here: the kernel and :func:`expand_numpy` give the same
:class:`Frames` on every capture and on random profiles (ids in any order, locations without lines or with
several, empty stacks, samples chosen in any order or twice); both give each chosen sample's frames as the
protobuf message lists them; and arguments that do not fit are refused, not read.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.pprof import profile_pb2
from server.pprof.columns import ProfileColumns, parse_columns
from server.pprof.decode import decode_columns, decompress
from server.pprof.frames import Frames, expand, expand_numpy, unsymbolized, unsymbolized_name
from server.pprof.kernels import NATIVE, expand_frames
from server.pprof.validate import validate
from tests.server.pprof.test_kernels import shuffled_profiles
from tests.support.tools import DATA

needs_native = pytest.mark.skipif(not NATIVE, reason="server.pprof._wire is not built (`make install` builds it)")

CAPTURES = sorted([*DATA.glob("*.pb.gz"), *(DATA / "foreign").glob("*.pb.gz")])
FIELDS = ("offsets", "entries", "entry_functions", "entry_lines", "entry_inlined", "extra_names")


def _same(a: Frames, b: Frames) -> bool:
    for name in FIELDS:
        left, right = getattr(a, name), getattr(b, name)
        if isinstance(left, tuple):
            if left != right:
                return False
        elif left.dtype != right.dtype or not np.array_equal(left, right):
            return False
    return True


def _choices(n_samples: int, seed: int) -> list[np.ndarray | None]:
    rng = np.random.default_rng(seed)
    if n_samples == 0:
        return [None, np.zeros(0, dtype=np.int64)]
    return [
        None,
        np.zeros(0, dtype=np.int64),
        np.flatnonzero(rng.random(n_samples) < 0.3).astype(np.int64),  # the usual: some of them, in order
        rng.integers(0, n_samples, size=7).astype(np.int64),  # any order, repeats
    ]


def _from_message(message: profile_pb2.Profile, which: list[int]) -> list[list[tuple[int, int, int]]]:
    """Each chosen sample's frames as (function index, line, inlined), straight from the message."""
    function_at = {f.id: i for i, f in reversed(list(enumerate(message.function)))}
    mapping_file = {m.id: message.string_table[m.filename] for m in message.mapping}
    location = {loc.id: loc for loc in reversed(message.location)}
    names = unsymbolized(parse_columns(message.SerializeToString())).names
    stacks = []
    for s in which:
        frames: list[tuple[int, int, int]] = []
        for location_id in message.sample[s].location_id:
            loc = location[location_id]
            if not loc.line:
                name = unsymbolized_name(mapping_file.get(loc.mapping_id, ""))
                frames.append((len(message.function) + names.index(name), 0, 0))
            for k, line in enumerate(loc.line):
                frames.append((function_at[line.function_id], line.line, int(k < len(loc.line) - 1)))
        stacks.append(frames)
    return stacks


def _stacks(frames: Frames) -> list[list[tuple[int, int, int]]]:
    by_entry = list(
        zip(frames.entry_functions.tolist(), frames.entry_lines.tolist(), frames.entry_inlined.tolist(), strict=True)
    )
    offsets = frames.offsets.tolist()
    entries = frames.entries.tolist()
    return [[by_entry[e] for e in entries[offsets[i] : offsets[i + 1]]] for i in range(len(offsets) - 1)]


def _check(columns: ProfileColumns, message: profile_pb2.Profile, seed: int) -> None:
    n_samples = columns.sample_loc_offsets.shape[0] - 1
    for which in _choices(n_samples, seed):
        reference = expand_numpy(columns, which)
        chosen = list(range(n_samples)) if which is None else which.tolist()
        assert _stacks(reference) == _from_message(message, chosen)
        assert np.array_equal(reference.functions, reference.entry_functions[reference.entries])
        # Only the entries the frames use, each once.
        assert sorted(set(reference.entries.tolist())) == list(range(reference.entry_functions.shape[0]))
        if NATIVE:
            assert _same(expand(columns, which), reference)


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_frames_of_chosen_samples_on_every_capture(path: Path) -> None:
    raw = decompress(path.read_bytes(), 64 * 1024 * 1024)
    _check(decode_columns(path.read_bytes()), profile_pb2.Profile.FromString(raw), seed=len(raw))


@settings(max_examples=60, derandomize=True, deadline=None, database=None)
@given(shuffled_profiles(), st.integers(0, 2**32))
def test_frames_of_chosen_samples_with_ids_in_any_order(raw: bytes, seed: int) -> None:
    columns = parse_columns(raw)
    validate(columns)
    _check(columns, profile_pb2.Profile.FromString(raw), seed)


@needs_native
def test_inlined_and_unsymbolized_frames_are_in_the_captures() -> None:
    """The captures hold what the kernel must get right: several lines in a location, locations without."""
    cpu = expand(decode_columns((DATA / "cpu.pb.gz").read_bytes()))
    assert int(cpu.entry_inlined.sum()) > 0
    foreign = [expand(decode_columns(p.read_bytes())) for p in sorted((DATA / "foreign").glob("*.pb.gz"))]
    assert any(frames.extra_names for frames in foreign)


@needs_native
def test_arguments_that_do_not_fit_are_refused_not_read() -> None:
    columns = decode_columns((DATA / "cpu.pb.gz").read_bytes())
    bare = unsymbolized(columns).name_of_location
    n_samples = columns.sample_loc_offsets.shape[0] - 1
    for which in ([n_samples], [-1], [0, 2**62]):
        with pytest.raises(ValueError, match="out of range"):
            expand_frames(columns, bare, np.array(which, dtype=np.int64))
    everything = np.arange(n_samples, dtype=np.int64)
    with pytest.raises(ValueError, match="inconsistent"):
        expand_frames(columns, bare[:-1], everything)
    with pytest.raises(ValueError, match="inconsistent"):
        expand_frames(dataclasses.replace(columns, sample_locs=columns.sample_locs[:-1]), bare, everything)
    with pytest.raises(ValueError, match="inconsistent"):
        expand_frames(dataclasses.replace(columns, line_line=columns.line_line[:-1]), bare, everything)
    dangling = dataclasses.replace(columns, sample_locs=columns.sample_locs + np.uint64(10**6))
    with pytest.raises(ValueError, match="no location"):
        expand_frames(dangling, bare, everything)
    dangling = dataclasses.replace(columns, line_function_id=columns.line_function_id + np.uint64(10**6))
    with pytest.raises(ValueError, match="no function"):
        expand_frames(dangling, bare, everything)
    # A location without lines must have a name (in range): take the lines of the first sample's leaf away.
    leaf = int(columns.sample_locs[0]) - 1  # Go writes location ids 1..N in order
    offsets = columns.location_line_offsets.copy()
    offsets[leaf + 1] = offsets[leaf]
    stripped = dataclasses.replace(columns, location_line_offsets=offsets)
    for names in (bare, np.full_like(bare, 2**40)):
        with pytest.raises(ValueError, match="has no name"):
            expand_frames(stripped, names, everything[:1])
    named = np.where(np.arange(bare.shape[0]) == leaf, 0, bare)
    found = expand_frames(stripped, named, everything[:1])
    assert found is not None
    entries, _, entry_functions, _, _ = found
    assert int(entry_functions[entries[0]]) == columns.function_id.shape[0]  # the leaf: extra name 0
