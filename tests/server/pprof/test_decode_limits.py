"""Decoding within limits: hostile profiles are refused at the first record past a limit, in both decoders.

The issue's repro (255 KiB of gzip inflating to 256 MiB of empty samples) and
one inflating bomb per record type are decoded here in-process, with
``tracemalloc`` watching every allocation the decoders make (the C decoder
allocates through ``PyMem_Raw*``, which it traces): each is refused naming its
limit, having held a small fraction of what it inflates to. The same inputs
against a real server process are in tests/server/api/test_hostile_inputs.py.
"""

from __future__ import annotations

import dataclasses
import gzip
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from server.pprof import profile_pb2
from server.pprof.columns import NATIVE, column_parser, parse_columns_native
from server.pprof.decode import decode_columns, inflate
from server.pprof.errors import DecodeLimitError
from server.pprof.limits import DecodeLimits
from tests.support.hostile import MIB, bombs, empty_samples
from tests.support.tools import DATA

needs_native = pytest.mark.skipif(not NATIVE, reason="server.pprof._wire is not built")
BACKENDS = [pytest.param(True, marks=needs_native, id="native"), pytest.param(False, id="fallback")]
BIG = gzip.decompress((DATA / "big_cpu.pb.gz").read_bytes())


@contextmanager
def peak_traced() -> Iterator[list[int]]:
    """The peak of traced allocations inside the block, in bytes (appended to the yielded list on exit)."""
    found: list[int] = []
    tracemalloc.start()
    try:
        yield found
    finally:
        found.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()


def refusal(data: bytes, limits: DecodeLimits, native: bool, max_decompressed: int = 256 * MIB) -> DecodeLimitError:
    parser = column_parser(limits, native)
    with pytest.raises(DecodeLimitError) as caught:
        for piece in inflate(data, max_decompressed):
            parser.feed(piece)
        parser.finish()
    return caught.value


@needs_native
def test_the_issue_repro_is_refused_at_the_sample_limit_holding_megabytes() -> None:
    bomb = empty_samples()
    assert len(bomb) < 256 * 1024  # 255 KiB on the wire, 256 MiB inflated
    with peak_traced() as peak, pytest.raises(DecodeLimitError) as caught:
        decode_columns(bomb)
    assert caught.value.name == "profile_samples" and caught.value.limit == 1_000_000
    assert str(caught.value) == "decoding profile: the profile has more than 1000000 samples (the limit)"
    # A million empty samples are 24 MB of offsets; before, the parse held 4.6 GB.
    assert peak[0] < 64 * MIB


# What each bomb of tests/support/hostile.py runs into, with the default limits.
EXPECTED = {
    "empty samples": "profile_samples",
    "empty mappings": "profile_decoded_bytes",
    "empty functions": "profile_decoded_bytes",
    "locations of empty lines": "profile_locations",
    "short strings": "profile_decoded_bytes",
    "sample types": "profile_sample_types",
    "one sample of 64 Mi labels": "profile_record_bytes",
    "one sample of 128 Mi values": "profile_record_bytes",
}


@needs_native
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_record_type_is_bounded_with_the_default_limits(name: str) -> None:
    with peak_traced() as peak:
        refused = refusal(bombs()[name], DecodeLimits(), native=True)
    assert refused.name == EXPECTED[name]
    # The budget (256 MiB) bounds the columns; a bomb's 256 MiB of input is never held at once.
    assert peak[0] <= 256 * MIB + 4 * MIB


@pytest.mark.parametrize("native", BACKENDS)
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_both_decoders_refuse_every_bomb_by_the_same_limit(name: str, native: bool) -> None:
    # Scaled down (a 4 MiB budget, 10,000 records) so the pure-Python fallback is quick too.
    limits = DecodeLimits(samples=10_000, locations=10_000, sample_types=64, memory=4 * MIB, record=MIB)
    with peak_traced() as peak:
        refused = refusal(bombs()[name], limits, native)
    assert refused.name == EXPECTED[name]
    assert peak[0] < 40 * MIB


def profile_with(samples: int = 0, locations: int = 0, sample_types: int = 1) -> bytes:
    message = profile_pb2.Profile(string_table=["", "t", "u"])
    for _ in range(sample_types):
        message.sample_type.add(type=1, unit=2)
    for index in range(locations):
        message.location.add(id=index + 1)
    for _ in range(samples):
        message.sample.add(value=[1] * sample_types)
    return message.SerializeToString()


@pytest.mark.parametrize("native", BACKENDS)
@pytest.mark.parametrize(
    ("field", "name"),
    [("samples", "profile_samples"), ("locations", "profile_locations"), ("sample_types", "profile_sample_types")],
)
def test_count_limits_are_exact(native: bool, field: str, name: str) -> None:
    raw = profile_with(**{field: 5})
    at_limit = column_parser(DecodeLimits(**{field: 5}), native)
    at_limit.feed(raw)
    at_limit.finish()
    below = column_parser(DecodeLimits(**{field: 4}), native)
    with pytest.raises(DecodeLimitError) as caught:
        below.feed(raw)
    assert (caught.value.name, caught.value.limit) == (name, 4)


@needs_native
def test_the_memory_budget_is_exact_and_the_fallback_estimate_above_it() -> None:
    from server.pprof import _wire

    parser = _wire.Parser()
    parser.feed(BIG)
    needed = parser.used
    parser.finish()
    parse_columns_native(BIG, DecodeLimits(memory=needed))
    with pytest.raises(DecodeLimitError, match="needs more than"):
        parse_columns_native(BIG, DecodeLimits(memory=needed - 1))
    # The fallback estimates from the wire bytes before upb parses: never below what the C decoder counts.
    fallback = column_parser(DecodeLimits(memory=needed - 1), native=False)
    with pytest.raises(DecodeLimitError):
        fallback.feed(BIG)


@pytest.mark.parametrize("native", BACKENDS)
def test_a_record_is_refused_when_its_length_is_read(native: bool) -> None:
    # The tag and length of a 1 GiB string, and nothing else: refused now, not after waiting for the rest.
    parser = column_parser(DecodeLimits(record=16 * MIB), native)
    with pytest.raises(DecodeLimitError) as caught:
        parser.feed(b"\x32\x80\x80\x80\x80\x04")
    assert caught.value.name == "profile_record_bytes"


@needs_native
@pytest.mark.parametrize("piece", [1, 3, 64, 4096])
def test_fed_in_pieces_is_the_same_as_at_once(piece: int) -> None:
    whole = parse_columns_native(BIG)
    parser = column_parser(native=True)
    for start in range(0, len(BIG), piece):
        parser.feed(BIG[start : start + piece])
    pieces = parser.finish()
    for item in dataclasses.fields(whole):
        left, right = getattr(whole, item.name), getattr(pieces, item.name)
        assert (left == right).all() if hasattr(left, "shape") else left == right, item.name


@needs_native
def test_a_long_parse_lets_other_threads_run() -> None:
    """The C parse releases the GIL: another thread runs while it works, even with a very long switch interval.

    With a 10 s switch interval nothing but a release lets the counting thread
    in while the parse runs, so a count above zero proves the release; no
    timing is asserted.
    """
    from server.pprof import _wire

    # 8 MiB of samples of five packed values each: 930,000 samples, 60 MB of columns.
    samples = 8 * MIB // 9
    raw = b"\x32\x00" + b"\x12\x07\x12\x05\x01\x02\x03\x04\x05" * samples
    parsing = threading.Event()
    stop = threading.Event()
    counted = [0]

    def count() -> None:
        while not stop.is_set():
            if parsing.is_set():
                counted[0] += 1
            time.sleep(0)

    thread = threading.Thread(target=count)
    previous = sys.getswitchinterval()
    thread.start()
    sys.setswitchinterval(10.0)
    try:
        parsing.set()
        parser = _wire.Parser()
        parser.feed(raw)
        parsing.clear()
    finally:
        sys.setswitchinterval(previous)
        stop.set()
        thread.join()
    assert counted[0] > 0
    assert len(parser.finish()["sample_values"]) == 5 * samples  # type: ignore[arg-type]
