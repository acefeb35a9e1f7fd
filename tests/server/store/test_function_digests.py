"""Functions found by digest: the same ids as by their strings, whatever order a profile's string table has."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from server.pprof import kernels, profile_pb2
from server.pprof.columns import parse_columns
from server.pprof.decode import decode_columns
from server.store.dedup import Dedup
from server.store.repository import Store
from server.store.symbols import NOT_KNOWN, FunctionTable, function_digests, function_digests_numpy
from tests.support.tools import DATA

CPU = (DATA / "cpu.pb.gz").read_bytes()
CAPTURES = sorted([*DATA.glob("*.pb.gz"), *(DATA / "foreign").glob("*.pb.gz")])
needs_native = pytest.mark.skipif(not kernels.NATIVE, reason="server.pprof._wire is not built (make install)")


def _profile(strings: list[str], functions: list[tuple[str, str, str]]) -> bytes:
    """One sample through every function, with the string table in the order given."""
    message = profile_pb2.Profile()
    message.string_table.extend(["", *strings])
    index = {s: i for i, s in enumerate(message.string_table)}
    message.sample_type.add(type=index["samples"], unit=index["count"])
    sample = message.sample.add(value=[1])
    for fid, (name, system_name, filename) in enumerate(functions, 1):
        message.function.add(id=fid, name=index[name], system_name=index[system_name], filename=index[filename])
        message.location.add(id=fid, line=[profile_pb2.Line(function_id=fid, line=fid)])
        sample.location_id.append(fid)
    return message.SerializeToString()


FUNCTIONS = [("main.a", "main.a", "a.go"), ("main.b", "main.b", "b.go"), ("main.a", "main.a", "c.go")]


def test_a_digest_ignores_the_string_table_order() -> None:
    strings = ["samples", "count", "main.a", "main.b", "a.go", "b.go", "c.go"]
    one = parse_columns(_profile(strings, FUNCTIONS))
    other = parse_columns(_profile(list(reversed(strings)), FUNCTIONS))
    assert not np.array_equal(one.function_name, other.function_name)
    digests = [
        function_digests(c.strings, c.function_name, c.function_system_name, c.function_filename) for c in (one, other)
    ]
    assert np.array_equal(digests[0][0], digests[1][0]) and np.array_equal(digests[0][1], digests[1][1])
    # Different functions, different digests (main.a in a.go and in c.go).
    assert len(set(digests[0][0].tolist())) == len(FUNCTIONS)


def test_known_functions_are_found_by_digest_with_the_ids_of_their_strings(store: Store) -> None:
    dedup = Dedup(store.engine)
    columns = decode_columns(CPU)
    first = dedup.function_ids(columns)
    again = dedup.function_ids(decode_columns(CPU))  # new str objects, the same content
    assert again.tolist() == first.tolist()
    by_strings = FunctionTable(store.engine)  # another process: strings only
    strings = columns.strings
    keys = [
        (strings[n], strings[s], strings[f])
        for n, s, f in zip(
            columns.function_name.tolist(),
            columns.function_system_name.tolist(),
            columns.function_filename.tolist(),
            strict=True,
        )
    ]
    assert by_strings.ids(keys, columns.function_start_line.tolist()) == first[: len(keys)].tolist()


def test_a_half_collision_is_a_miss_never_a_wrong_id(store: Store) -> None:
    table = FunctionTable(store.engine)
    first = np.array([5, 9], dtype=np.uint64)
    table.remember(first, np.array([50, 90], dtype=np.uint64), np.array([1, 2], dtype=np.int64))
    assert table.known(first, np.array([50, 90], dtype=np.uint64)).tolist() == [1, 2]
    # Same first half, another second half: not known, and not added beside the one there.
    assert table.known(first[:1], np.array([51], dtype=np.uint64)).tolist() == [NOT_KNOWN]
    table.remember(first[:1], np.array([51], dtype=np.uint64), np.array([3], dtype=np.int64))
    assert table.known(np.array([5, 9, 7], dtype=np.uint64), np.array([50, 90, 70], dtype=np.uint64)).tolist() == [
        1,
        2,
        NOT_KNOWN,
    ]
    # Remembered in any order, found in any order.
    table.remember(np.array([8, 1], dtype=np.uint64), np.array([80, 10], dtype=np.uint64), np.array([4, 5]))
    assert table.known(np.array([1, 8, 9], dtype=np.uint64), np.array([10, 80, 90], dtype=np.uint64)).tolist() == [
        5,
        4,
        2,
    ]


def test_digests_use_all_64_bits_and_any_id(store: Store) -> None:
    """Halves past 2**63 (every other digest), a first half given twice in one call (the first is kept, as a
    profile's first use), and ids past the table's first room."""
    table = FunctionTable(store.engine)
    top = np.uint64(2**64 - 1)
    first = np.array([top, 2**63, top, 12], dtype=np.uint64)
    second = np.array([1, top, 2, 2**63], dtype=np.uint64)
    table.remember(first, second, np.array([7, 5_000, 8, 1_000_000], dtype=np.int64))
    assert table.known(first, second).tolist() == [7, 5_000, NOT_KNOWN, 1_000_000]
    assert table.known(np.array([top], dtype=np.uint64), np.array([1], dtype=np.uint64)).tolist() == [7]
    assert table.known(np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.uint64)).tolist() == []


@needs_native
@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_the_extension_s_digests_equal_numpy_s_on_every_capture(path: Path) -> None:
    columns = decode_columns(path.read_bytes())
    arrays = (columns.function_name, columns.function_system_name, columns.function_filename)
    native = kernels.function_digests(columns.strings, *arrays)
    assert native is not None and native[0].dtype == np.uint64
    reference = function_digests_numpy(columns.strings, *arrays)
    assert np.array_equal(native[0], reference[0]) and np.array_equal(native[1], reference[1])
    assert np.array_equal(function_digests(columns.strings, *arrays)[0], reference[0])


@needs_native
def test_the_extension_refuses_a_string_index_outside_the_table() -> None:
    strings = ["", "main.a", "a.go"]
    good = np.array([1, 1], dtype=np.int64)
    for bad in (np.array([1, 3], dtype=np.int64), np.array([-1, 1], dtype=np.int64)):
        with pytest.raises(ValueError, match="outside the table"):
            kernels.function_digests(strings, good, bad, good)
    with pytest.raises(ValueError, match="different lengths"):
        kernels.function_digests(strings, good, good[:1], good)
