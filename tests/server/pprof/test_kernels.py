"""The C decoder's kernels equal the numpy they stand in for: the identity hash, and validation's verdict.

The numpy code stays the reference (it also runs where the extension is not
built); the fuzz target in tests/support/fuzzing.py holds the two equal on
mutated inputs, these tests on every capture and on the shapes Go never
writes (ids out of order, locations without mapping or lines).
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
from server.pprof.decode import decode_columns
from server.pprof.errors import MalformedProfileError
from server.pprof.identity import sample_keys, sample_keys_numpy
from server.pprof.kernels import NATIVE, surely_valid
from server.pprof.validate import validate, validate_fully
from tests.support.tools import DATA

needs_native = pytest.mark.skipif(not NATIVE, reason="server.pprof._wire is not built (`make install` builds it)")

CAPTURES = sorted([*DATA.glob("*.pb.gz"), *(DATA / "foreign").glob("*.pb.gz")])


def _ids(columns: ProfileColumns) -> tuple[np.ndarray, np.ndarray]:
    functions = np.arange(columns.function_id.shape[0], dtype=np.int64) * 7919 + 11
    labelsets = np.arange(columns.sample_loc_offsets.shape[0] - 1, dtype=np.int64) % 4
    return functions, labelsets


@needs_native
@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_identity_equals_numpy_on_every_capture(path: Path) -> None:
    columns = decode_columns(path.read_bytes())
    functions, labelsets = _ids(columns)
    native = sample_keys(columns, functions, labelsets)
    assert native.dtype == np.uint64
    assert np.array_equal(native, sample_keys_numpy(columns, functions, labelsets))
    assert native.size < 2 or len(set(native.tolist())) > 1  # a hash, not a constant


@needs_native
def test_go_profiles_are_vouched_for() -> None:
    for name in ("cpu.pb.gz", "heap.pb.gz", "goroutine.pb.gz"):
        assert surely_valid(decode_columns((DATA / name).read_bytes())) is True


@st.composite
def shuffled_profiles(draw: st.DrawFn) -> bytes:
    """A valid profile whose ids are neither 1..N nor in order, some locations without mapping or lines."""
    n_functions = draw(st.integers(1, 6))
    n_mappings = draw(st.integers(0, 3))
    n_locations = draw(st.integers(1, 8))
    function_ids = draw(st.lists(st.integers(1, 2**40), min_size=n_functions, max_size=n_functions, unique=True))
    mapping_ids = draw(st.lists(st.integers(1, 2**40), min_size=n_mappings, max_size=n_mappings, unique=True))
    location_ids = draw(st.lists(st.integers(1, 2**63), min_size=n_locations, max_size=n_locations, unique=True))
    message = profile_pb2.Profile()
    message.string_table.extend(["", "samples", "count", "f", "file.go", "/bin/app", "build"])
    message.sample_type.add(type=1, unit=2)
    for fid in function_ids:
        message.function.add(id=fid, name=3, system_name=3, filename=4, start_line=draw(st.integers(0, 9)))
    for mid in mapping_ids:
        start = draw(st.integers(0, 2**40))
        message.mapping.add(id=mid, memory_start=start, memory_limit=start + 4096, filename=5, build_id=6)
    for lid in location_ids:
        location = message.location.add(id=lid, address=draw(st.integers(0, 2**64 - 1)))
        if draw(st.booleans()) and mapping_ids:
            location.mapping_id = draw(st.sampled_from(mapping_ids))
        for _ in range(draw(st.integers(0, 3))):
            location.line.add(function_id=draw(st.sampled_from(function_ids)), line=draw(st.integers(-5, 500)))
    for _ in range(draw(st.integers(0, 8))):
        sample = message.sample.add(value=[draw(st.integers(-(10**9), 10**9))])
        sample.location_id.extend(draw(st.lists(st.sampled_from(location_ids), max_size=6)))
    return message.SerializeToString()


@needs_native
@settings(max_examples=60, derandomize=True, deadline=None, database=None)
@given(shuffled_profiles())
def test_identity_equals_numpy_with_ids_in_any_order(raw: bytes) -> None:
    columns = parse_columns(raw)
    validate(columns)
    functions, labelsets = _ids(columns)
    assert np.array_equal(sample_keys(columns, functions, labelsets), sample_keys_numpy(columns, functions, labelsets))


def _broken(columns: ProfileColumns) -> dict[str, ProfileColumns]:
    """One malformation each, as a hostile or buggy client would send it."""
    u64 = np.uint64
    n_strings = len(columns.strings)
    return {
        "string index": dataclasses.replace(columns, function_name=columns.function_name + n_strings),
        "label string": dataclasses.replace(columns, label_key=np.full_like(columns.label_key, -1)),
        "header string": dataclasses.replace(columns, drop_frames=n_strings),
        "function id 0": dataclasses.replace(columns, function_id=columns.function_id * u64(0)),
        "dangling location": dataclasses.replace(columns, sample_locs=columns.sample_locs + u64(10**6)),
        "dangling function": dataclasses.replace(columns, line_function_id=columns.line_function_id + u64(10**6)),
        "dangling mapping": dataclasses.replace(columns, location_mapping_id=columns.location_mapping_id + u64(10**6)),
        "values per sample": dataclasses.replace(columns, sample_type=columns.sample_type[:2]),
        "sums past 64 bits": dataclasses.replace(columns, sample_values=np.full_like(columns.sample_values, 2**62)),
        "repeated id": dataclasses.replace(
            columns, location_id=np.concatenate([columns.location_id[:1], columns.location_id[:-1]])
        ),
    }


@needs_native
@pytest.mark.parametrize("kind", list(_broken(decode_columns((DATA / "cpu.pb.gz").read_bytes()))))
def test_no_malformation_is_vouched_for(kind: str) -> None:
    columns = _broken(decode_columns((DATA / "cpu.pb.gz").read_bytes()))[kind]
    assert surely_valid(columns) is False
    with pytest.raises(MalformedProfileError) as full:
        validate_fully(columns)
    with pytest.raises(MalformedProfileError) as chosen:
        validate(columns)
    assert str(chosen.value) == str(full.value)


@needs_native
def test_arrays_that_do_not_fit_are_refused_not_read() -> None:
    from server.pprof import _wire

    columns = decode_columns((DATA / "cpu.pb.gz").read_bytes())
    functions, labelsets = _ids(columns)
    with pytest.raises(ValueError, match="inconsistent"):
        sample_keys(columns, functions, labelsets[:-1])
    with pytest.raises(ValueError, match="inconsistent"):
        sample_keys(dataclasses.replace(columns, sample_locs=columns.sample_locs[:-1]), functions, labelsets)
    with pytest.raises(ValueError, match="64-bit words"):
        _wire.sample_hashes(*([b"abc"] * 14))
    with pytest.raises(TypeError, match="takes 20 arrays"):
        _wire.valid(b"")
    offsets = np.array([0, 1, 3], dtype=np.int64).tobytes()
    seed = np.array([7], dtype=np.uint64).tobytes()
    with pytest.raises(ValueError, match="inconsistent"):  # offsets past the entries
        _wire.label_runs(offsets, *[np.zeros(2, dtype=np.int64).tobytes()] * 4, seed)
    found = _wire.label_runs(offsets, *[np.zeros(3, dtype=np.int64).tobytes()] * 4, seed)
    assert found is not None
    groups, firsts = found
    assert np.frombuffer(groups, np.int64).tolist() == [0, 1] and np.frombuffer(firsts, np.int64).tolist() == [0, 1]
