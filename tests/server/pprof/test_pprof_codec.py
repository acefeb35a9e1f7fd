"""Decode, validate and encode real Go profiles; every malformed input fails with a named stage."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import pytest

from server.pprof import (
    DecodeLimitError,
    DecompressError,
    MalformedProfileError,
    ParseError,
    ProfileTooLargeError,
    decode,
    decompress,
    encode,
    profile_pb2,
)
from server.pprof.kinds import infer_kind
from tests.support.tools import DATA

CAPTURES = sorted(DATA.glob("*.pb.gz"))


def _message(path: Path) -> profile_pb2.Profile:
    message = profile_pb2.Profile()
    message.ParseFromString(gzip.decompress(path.read_bytes()))
    return message


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_decode_matches_raw_message(path: Path) -> None:
    message = _message(path)
    profile = decode(path.read_bytes())
    strings = list(message.string_table)
    assert [(v.type, v.unit) for v in profile.sample_types] == [
        (strings[v.type], strings[v.unit]) for v in message.sample_type
    ]
    assert len(profile.samples) == len(message.sample)
    for sample, raw in zip(profile.samples, message.sample, strict=True):
        assert list(sample.values) == list(raw.value)
        assert [loc.id for loc in sample.locations] == list(raw.location_id)
    raw_frames = sum(len(loc.line) for loc in message.location)
    assert sum(len(loc.lines) for loc in profile.locations) == raw_frames
    assert profile.time_nanos == message.time_nanos
    assert profile.period == message.period


def test_inlined_frames_are_expanded_innermost_first() -> None:
    profile = decode((DATA / "cpu.pb.gz").read_bytes())
    inlined = [loc for loc in profile.locations if len(loc.lines) > 1]
    assert inlined, "the demo's CPU capture should contain inlined frames"
    sample = next(s for s in profile.samples if any(len(loc.lines) > 1 for loc in s.locations))
    frames = [f.name for f in sample.frames()]
    expected = [line.function.name for loc in sample.locations for line in loc.lines]
    assert frames == expected
    assert len(frames) > len(sample.locations)


def test_sample_labels_survive_decode() -> None:
    profile = decode((DATA / "cpu.pb.gz").read_bytes())
    handlers = {value for s in profile.samples for key, value in s.labels if key == "handler"}
    assert {"/checkout", "/search"} <= handlers


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_encode_roundtrip(path: Path) -> None:
    original = decode(path.read_bytes())
    again = decode(encode(original))
    assert [str(v) for v in again.sample_types] == [str(v) for v in original.sample_types]
    assert again.totals() == original.totals()
    assert [[f.name for f in s.frames()] for s in again.samples] == [
        [f.name for f in s.frames()] for s in original.samples
    ]
    assert [s.labels for s in again.samples] == [s.labels for s in original.samples]
    assert again.default_sample_type == original.default_sample_type


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("cpu.pb.gz", "cpu"),
        ("heap.pb.gz", "heap"),
        ("allocs.pb.gz", "allocs"),
        ("goroutine.pb.gz", "goroutine"),
        ("mutex.pb.gz", "mutex"),
        ("block.pb.gz", "block"),
        ("threadcreate.pb.gz", "threadcreate"),
    ],
)
def test_kind_is_inferred_from_sample_types(name: str, kind: str) -> None:
    assert infer_kind(decode((DATA / name).read_bytes())) == kind


def test_default_sample_index_follows_pprof() -> None:
    allocs = decode((DATA / "allocs.pb.gz").read_bytes())
    assert allocs.sample_types[allocs.default_sample_index()].type == "alloc_space"
    heap = decode((DATA / "heap.pb.gz").read_bytes())
    assert heap.sample_types[heap.default_sample_index()].type == "inuse_space"


def test_empty_input() -> None:
    with pytest.raises(ParseError, match="empty"):
        decode(b"")


def test_garbage_bytes() -> None:
    with pytest.raises((ParseError, MalformedProfileError)):
        decode(b"this is not a profile at all \xff\xfe")


def test_truncated_gzip() -> None:
    data = (DATA / "cpu.pb.gz").read_bytes()
    with pytest.raises(DecompressError, match="truncated"):
        decode(data[: len(data) // 2])


def test_gzip_bomb_stops_at_the_limit() -> None:
    bomb = gzip.compress(b"\x00" * (50 * 1024 * 1024))
    assert len(bomb) < 100 * 1024
    with pytest.raises(ProfileTooLargeError, match="exceeds the limit of 1048576 bytes"):
        decompress(bomb, max_size=1024 * 1024)


def test_corrupt_gzip() -> None:
    data = bytearray((DATA / "cpu.pb.gz").read_bytes())
    data[20:40] = b"\xff" * 20
    with pytest.raises(DecompressError):
        decode(bytes(data))


def test_gzip_of_invalid_protobuf() -> None:
    with pytest.raises((ParseError, MalformedProfileError)):
        decode(gzip.compress(b"\x0a\x05\x08 garbage"))
    # A record claiming 4 GiB is refused as soon as its length is read, before any more input is inflated.
    with pytest.raises(DecodeLimitError, match="longer than 16777216 bytes"):
        decode(gzip.compress(b"\x0a\xff\xff\xff\xff\x0f garbage"))


def test_concatenated_gzip_members_are_accepted() -> None:
    raw = gzip.decompress((DATA / "cpu.pb.gz").read_bytes())
    half = len(raw) // 2
    joined = gzip.compress(raw[:half]) + gzip.compress(raw[half:])
    assert decompress(joined) == raw


def test_raw_zlib_is_not_gzip() -> None:
    with pytest.raises(ProfileError_types()):
        decode(zlib.compress(b"\x01\x02\x03"))


def ProfileError_types() -> tuple[type[Exception], ...]:  # noqa: N802 - reads as a type list
    return (ParseError, MalformedProfileError)


def _valid_message() -> profile_pb2.Profile:
    return _message(DATA / "cpu.pb.gz")


def _encode(message: profile_pb2.Profile) -> bytes:
    return message.SerializeToString()


def test_dangling_location_id() -> None:
    message = _valid_message()
    message.sample[0].location_id.append(999_999)
    with pytest.raises(MalformedProfileError, match="location 999999"):
        decode(_encode(message))


def test_dangling_function_id() -> None:
    message = _valid_message()
    message.location[0].line[0].function_id = 424242
    with pytest.raises(MalformedProfileError, match="function 424242"):
        decode(_encode(message))


def test_duplicate_location_id() -> None:
    message = _valid_message()
    message.location[1].id = message.location[0].id
    with pytest.raises(MalformedProfileError, match="appears twice"):
        decode(_encode(message))


def test_value_count_mismatch() -> None:
    message = _valid_message()
    message.sample[0].value.append(7)
    with pytest.raises(MalformedProfileError, match="3 values but the profile declares 2"):
        decode(_encode(message))


def test_string_index_out_of_range() -> None:
    message = _valid_message()
    message.function[0].name = 10**6
    with pytest.raises(MalformedProfileError, match="string 1000000"):
        decode(_encode(message))


def test_string_table_must_start_empty() -> None:
    message = _valid_message()
    message.string_table[0] = "x"
    with pytest.raises(MalformedProfileError, match=r"string_table\[0\]"):
        decode(_encode(message))


def test_samples_without_sample_types() -> None:
    message = _valid_message()
    del message.sample_type[:]
    for sample in message.sample:
        del sample.value[:]
    with pytest.raises(MalformedProfileError, match="no sample types"):
        decode(_encode(message))
