"""Bytes to a validated, resolved :class:`~server.pprof.model.Profile`.

Three stages, each with its own error (see :mod:`server.pprof.errors`):
decompress (gzip is optional, as Go's parser accepts both), parse the
protobuf into columns (:mod:`server.pprof.columns`), then validate every index
and id (:mod:`server.pprof.validate`), so nothing past this module ever meets
a dangling reference. ``decode_columns`` stops there, for ingest;
``decode`` goes on to resolved objects.

Inflating is ISA-L's (``isal``: zlib's streaming API, about twice as fast
on Go's gzip). The first two stages stream: gzip is inflated a slice at a time and each
slice goes straight to the parser, which refuses at the first record past a
limit (:mod:`server.pprof.limits`). A 255 KiB upload that inflates to 256 MiB
of empty samples is refused after its first few megabytes, with neither the
inflated bytes nor their columns ever held in full.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

from isal import isal_zlib

from server.pprof.columns import ProfileColumns, column_parser
from server.pprof.errors import DecompressError, ParseError, ProfileTooLargeError
from server.pprof.header import Header
from server.pprof.limits import DecodeLimits
from server.pprof.model import Function, Line, Location, Mapping, Profile, Sample
from server.pprof.validate import validate

GZIP_MAGIC = b"\x1f\x8b"
DEFAULT_MAX_DECOMPRESSED = 256 * 1024 * 1024
#: Inflated bytes handed to the parser at a time: large enough that the C parser releases the GIL on each.
SLICE = 1024 * 1024
#: isal's stub declares its error as an instance, not a class.
_INFLATE_ERROR = cast(type[Exception], isal_zlib.error)


def inflate(data: bytes, max_size: int = DEFAULT_MAX_DECOMPRESSED, slice_size: int = SLICE) -> Iterator[bytes]:
    """``data`` gunzipped if it is gzip, as slices of at most ``slice_size`` bytes; never more than ``max_size`` in all.

    The limit is enforced while inflating, so a gzip bomb costs at most one
    slice of memory here before it is rejected (or before the parser refuses
    what the slices hold). Concatenated gzip members are accepted, as Go's
    reader accepts them.
    """
    if not data.startswith(GZIP_MAGIC):
        if len(data) > max_size:
            raise ProfileTooLargeError(max_size)
        yield data
        return
    total = 0
    pending = data
    try:
        while True:
            inflater = isal_zlib.decompressobj(16 + isal_zlib.MAX_WBITS)
            while not inflater.eof:
                before = len(pending)
                chunk = inflater.decompress(pending, min(slice_size, max_size + 1 - total))
                pending = inflater.unconsumed_tail
                total += len(chunk)
                if total > max_size:
                    raise ProfileTooLargeError(max_size)
                if chunk:
                    yield chunk
                elif not inflater.eof and (not pending or len(pending) == before):
                    # All input read and no more output: the stream stops before its end.
                    raise DecompressError("truncated gzip stream (unexpected end of data)")
            pending = inflater.unused_data
            if not pending:
                break
            if not pending.startswith(GZIP_MAGIC):
                raise DecompressError("trailing bytes after the gzip stream")
    except _INFLATE_ERROR as exc:
        raise DecompressError(f"invalid gzip data ({exc})") from None


def decompress(data: bytes, max_size: int = DEFAULT_MAX_DECOMPRESSED) -> bytes:
    """Gunzip ``data`` if it is gzip, refusing to produce more than ``max_size`` bytes (see :func:`inflate`)."""
    return b"".join(inflate(data, max_size))


def decode_columns(
    data: bytes, max_decompressed: int = DEFAULT_MAX_DECOMPRESSED, limits: DecodeLimits | None = None
) -> ProfileColumns:
    """Decompress, parse and validate: the fast path ingest uses, with no per-sample objects.

    ``limits`` defaults to :class:`DecodeLimits` with a memory budget of
    ``max_decompressed`` bytes: what the inflated profile may take, its
    decoded form may take too.
    """
    if not data:
        raise ParseError("empty input")
    parser = column_parser(limits if limits is not None else DecodeLimits(memory=max_decompressed))
    for piece in inflate(data, max_decompressed):
        parser.feed(piece)
    columns = parser.finish()
    validate(columns)
    return columns


def decode(
    data: bytes, max_decompressed: int = DEFAULT_MAX_DECOMPRESSED, limits: DecodeLimits | None = None
) -> Profile:
    """Decompress, parse and validate a pprof profile into resolved objects."""
    return to_profile(decode_columns(data, max_decompressed, limits))


def to_profile(columns: ProfileColumns) -> Profile:
    """Resolved objects from validated columns: for merges, exports and tests, not the ingest hot path."""
    strings = columns.strings
    functions = [
        Function(strings[name], strings[system_name], strings[filename], start_line)
        for name, system_name, filename, start_line in zip(
            columns.function_name.tolist(),
            columns.function_system_name.tolist(),
            columns.function_filename.tolist(),
            columns.function_start_line.tolist(),
            strict=True,
        )
    ]
    function_by_id = dict(zip(columns.function_id.tolist(), functions, strict=True))
    line_functions = [function_by_id[f] for f in columns.line_function_id.tolist()]
    line_numbers = columns.line_line.tolist()
    mapping_by_id = {
        mapping_id: Mapping(strings[filename], start, limit, offset, strings[build_id])
        for mapping_id, filename, start, limit, offset, build_id in zip(
            columns.mapping_id.tolist(),
            columns.mapping_filename.tolist(),
            columns.mapping_memory_start.tolist(),
            columns.mapping_memory_limit.tolist(),
            columns.mapping_file_offset.tolist(),
            columns.mapping_build_id.tolist(),
            strict=True,
        )
    }
    offsets = columns.location_line_offsets.tolist()
    locations = [
        Location(
            tuple(Line(line_functions[i], line_numbers[i]) for i in range(offsets[k], offsets[k + 1])),
            address,
            location_id,
            mapping_by_id.get(mapping_id),
        )
        for k, (location_id, address, mapping_id) in enumerate(
            zip(
                columns.location_id.tolist(),
                columns.location_address.tolist(),
                columns.location_mapping_id.tolist(),
                strict=True,
            )
        )
    ]
    location_by_id = dict(zip(columns.location_id.tolist(), locations, strict=True))
    header = Header.of(columns)
    n_types = len(header.sample_types)
    locs = [location_by_id[i] for i in columns.sample_locs.tolist()]
    loc_offsets = columns.sample_loc_offsets.tolist()
    values = columns.sample_values.tolist()
    label_offsets = columns.sample_label_offsets.tolist()
    keys, strs, nums, units = (
        columns.label_key.tolist(),
        columns.label_str.tolist(),
        columns.label_num.tolist(),
        columns.label_num_unit.tolist(),
    )
    samples: list[Sample] = []
    for i in range(len(loc_offsets) - 1):
        sample = Sample(
            tuple(locs[loc_offsets[i] : loc_offsets[i + 1]]), tuple(values[i * n_types : (i + 1) * n_types])
        )
        if label_offsets[i] != label_offsets[i + 1]:
            labels: list[tuple[str, str]] = []
            num_labels: list[tuple[str, int, str]] = []
            for j in range(label_offsets[i], label_offsets[i + 1]):
                if strs[j]:
                    labels.append((strings[keys[j]], strings[strs[j]]))
                elif nums[j] or units[j]:
                    num_labels.append((strings[keys[j]], nums[j], strings[units[j]]))
            sample.labels = tuple(sorted(labels))
            sample.num_labels = tuple(sorted(num_labels))
        samples.append(sample)
    return Profile(
        sample_types=header.sample_types,
        samples=samples,
        period_type=header.period_type,
        period=header.period,
        time_nanos=header.time_nanos,
        duration_nanos=header.duration_nanos,
        default_sample_type=header.default_sample_type,
        comments=[strings[i] for i in columns.comment.tolist()],
        drop_frames=strings[columns.drop_frames],
        keep_frames=strings[columns.keep_frames],
        locations=locations,
        functions=functions,
    )
