"""Bytes to a validated, resolved :class:`~server.pprof.model.Profile`.

Three stages, each with its own error (see :mod:`server.pprof.errors`):
decompress (gzip is optional, as Go's parser accepts both), parse the
protobuf, then resolve every index and id while checking it, so nothing past
this module ever meets a dangling reference.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from google.protobuf.message import DecodeError

from server.pprof import profile_pb2
from server.pprof.errors import DecompressError, MalformedProfileError, ParseError, ProfileTooLargeError
from server.pprof.model import Function, Line, Location, Profile, Sample, ValueType

GZIP_MAGIC = b"\x1f\x8b"
DEFAULT_MAX_DECOMPRESSED = 256 * 1024 * 1024


def decompress(data: bytes, max_size: int = DEFAULT_MAX_DECOMPRESSED) -> bytes:
    """Gunzip ``data`` if it is gzip, refusing to produce more than ``max_size`` bytes.

    The limit is enforced while inflating, so a gzip bomb costs at most
    ``max_size`` bytes of memory before it is rejected. Concatenated gzip
    members are accepted, as Go's reader accepts them.
    """
    if not data.startswith(GZIP_MAGIC):
        if len(data) > max_size:
            raise ProfileTooLargeError(max_size)
        return data
    chunks: list[bytes] = []
    total = 0
    pending = data
    try:
        while True:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            while True:
                chunk = inflater.decompress(pending, max_size + 1 - total)
                total += len(chunk)
                if total > max_size:
                    raise ProfileTooLargeError(max_size)
                chunks.append(chunk)
                if inflater.eof:
                    break
                pending = inflater.unconsumed_tail
                if not pending:
                    raise DecompressError("truncated gzip stream (unexpected end of data)")
            pending = inflater.unused_data
            if not pending:
                break
            if not pending.startswith(GZIP_MAGIC):
                raise DecompressError("trailing bytes after the gzip stream")
    except zlib.error as exc:
        raise DecompressError(f"invalid gzip data ({exc})") from None
    return b"".join(chunks)


def decode(data: bytes, max_decompressed: int = DEFAULT_MAX_DECOMPRESSED) -> Profile:
    """Decompress, parse and validate a pprof profile."""
    if not data:
        raise ParseError("empty input")
    raw = decompress(data, max_decompressed)
    message = profile_pb2.Profile()
    try:
        message.ParseFromString(raw)
    except DecodeError as exc:
        raise ParseError(f"not a protobuf message ({exc})") from None
    except RecursionError:
        raise ParseError("message nesting too deep") from None
    return _resolve(message)


def _check_indices(strings: Sequence[str], indices: Sequence[int], what: str) -> None:
    if indices and (min(indices) < 0 or max(indices) >= len(strings)):
        bad = next(i for i in indices if i < 0 or i >= len(strings))
        raise MalformedProfileError(f"{what} refers to string {bad}, but the string table has {len(strings)} entries")


def _resolve(message: profile_pb2.Profile) -> Profile:
    strings = list(message.string_table)
    if not strings or strings[0] != "":
        raise MalformedProfileError("string_table[0] must be the empty string")

    value_types = [(vt.type, vt.unit) for vt in message.sample_type]
    _check_indices(strings, [i for pair in value_types for i in pair], "a sample type")
    sample_types = [ValueType(strings[t], strings[u]) for t, u in value_types]
    if not sample_types and len(message.sample) > 0:
        raise MalformedProfileError("samples present but no sample types declared")

    header = [
        message.period_type.type,
        message.period_type.unit,
        message.default_sample_type,
        message.drop_frames,
        message.keep_frames,
        *message.comment,
    ]
    _check_indices(strings, header, "the profile header")

    functions = _resolve_functions(message, strings)
    locations = _resolve_locations(message, functions)
    samples = _resolve_samples(message, strings, locations, len(sample_types))

    period_type = None
    if message.HasField("period_type"):
        period_type = ValueType(strings[message.period_type.type], strings[message.period_type.unit])
    return Profile(
        sample_types=sample_types,
        samples=samples,
        period_type=period_type,
        period=message.period,
        time_nanos=message.time_nanos,
        duration_nanos=message.duration_nanos,
        default_sample_type=strings[message.default_sample_type],
        comments=[strings[i] for i in message.comment],
        drop_frames=strings[message.drop_frames],
        keep_frames=strings[message.keep_frames],
        locations=list(locations.values()),
        functions=list(functions.values()),
    )


def _resolve_functions(message: profile_pb2.Profile, strings: list[str]) -> dict[int, Function]:
    rows = [(f.id, f.name, f.system_name, f.filename, f.start_line) for f in message.function]
    _check_indices(strings, [i for row in rows for i in row[1:4]], "a function")
    functions: dict[int, Function] = {}
    for fid, name, system_name, filename, start_line in rows:
        if fid == 0:
            raise MalformedProfileError("a function has id 0")
        if fid in functions:
            raise MalformedProfileError(f"function id {fid} appears twice")
        functions[fid] = Function(strings[name], strings[system_name], strings[filename], start_line)
    return functions


def _resolve_locations(message: profile_pb2.Profile, functions: dict[int, Function]) -> dict[int, Location]:
    mapping_ids: set[int] = set()
    for mapping in message.mapping:
        if mapping.id == 0:
            raise MalformedProfileError("a mapping has id 0")
        if mapping.id in mapping_ids:
            raise MalformedProfileError(f"mapping id {mapping.id} appears twice")
        mapping_ids.add(mapping.id)
    locations: dict[int, Location] = {}
    for loc in message.location:
        lid = loc.id
        if lid == 0:
            raise MalformedProfileError("a location has id 0")
        if lid in locations:
            raise MalformedProfileError(f"location id {lid} appears twice")
        if loc.mapping_id and loc.mapping_id not in mapping_ids:
            raise MalformedProfileError(f"location {lid} refers to mapping {loc.mapping_id}, which does not exist")
        try:
            lines = tuple([Line(functions[line.function_id], line.line) for line in loc.line])
        except KeyError as exc:
            raise MalformedProfileError(f"location {lid} refers to function {exc.args[0]}, which does not exist") from None
        locations[lid] = Location(lines, loc.address, lid)
    return locations


def _resolve_samples(
    message: profile_pb2.Profile, strings: list[str], locations: dict[int, Location], n_values: int
) -> list[Sample]:
    samples: list[Sample] = []
    lookup = locations.__getitem__
    n_strings = len(strings)
    for position, pb_sample in enumerate(message.sample):
        try:
            stack = tuple(map(lookup, pb_sample.location_id))
        except KeyError as exc:
            raise MalformedProfileError(
                f"sample {position} refers to location {exc.args[0]}, which does not exist"
            ) from None
        values = tuple(pb_sample.value)
        if len(values) != n_values:
            raise MalformedProfileError(
                f"sample {position} has {len(values)} values but the profile declares {n_values} sample types"
            )
        sample = Sample(stack, values)
        if pb_sample.label:
            labels: list[tuple[str, str]] = []
            num_labels: list[tuple[str, int, str]] = []
            for label in pb_sample.label:
                key, string, unit = label.key, label.str, label.num_unit
                if not (0 <= key < n_strings and 0 <= string < n_strings and 0 <= unit < n_strings):
                    raise MalformedProfileError(f"a label of sample {position} refers to a string out of range")
                if string:
                    labels.append((strings[key], strings[string]))
                elif label.num or unit:
                    num_labels.append((strings[key], label.num, strings[unit]))
            sample.labels = tuple(sorted(labels))
            sample.num_labels = tuple(sorted(num_labels))
        samples.append(sample)
    return samples
