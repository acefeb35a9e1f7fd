"""The C decoder's kernels over decoded columns, with the arrays they take; None when it is not built.

Ingest's fixed cost per profile was mostly numpy call overhead: validation
took some forty array operations, a sample's identity hash a dozen passes
over 70,000 location references, grouping samples by label set a dictionary
lookup per sample. The extension (:mod:`server.pprof._wire`) does each in one
pass, and expanding the new samples' stacks into frames
a few array passes over every sample. The numpy code each kernel stands in for stays the
reference (:mod:`server.pprof.validate`, :mod:`server.pprof.identity`,
:mod:`server.pprof.labelruns`, :mod:`server.pprof.frames`): it runs
when the extension is not built, and the tests hold the two equal.
"""

from __future__ import annotations

import secrets
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

from server.pprof.columns import ProfileColumns


def _load() -> ModuleType | None:
    try:
        from server.pprof import _wire
    except ImportError:
        return None
    return _wire


_wire = _load()

NATIVE = _wire is not None

U64 = npt.NDArray[np.uint64]
IntArray = npt.NDArray[np.int64]
#: The seed of :func:`label_runs`' hash table, drawn per process so that no upload can choose what collides.
_SEED = np.array([secrets.randbits(64)], dtype=np.uint64)


def _i64(array: npt.NDArray[np.int64]) -> IntArray:
    return np.ascontiguousarray(array, dtype=np.int64)


def _u64(array: npt.NDArray[np.uint64]) -> U64:
    return np.ascontiguousarray(array, dtype=np.uint64)


def surely_valid(columns: ProfileColumns) -> bool | None:
    """True when the columns pass every check of :func:`~server.pprof.validate.validate` with ids 1..N
    in order (what Go writes); False when the full check must decide; None without the extension."""
    if _wire is None:
        return None
    header = np.array(
        [
            len(columns.strings),
            columns.period_type_type,
            columns.period_type_unit,
            columns.default_sample_type,
            columns.drop_frames,
            columns.keep_frames,
        ],
        dtype=np.int64,
    )
    valid: bool = _wire.valid(
        header,
        _i64(columns.sample_type),
        _i64(columns.comment),
        _i64(columns.function_name),
        _i64(columns.function_system_name),
        _i64(columns.function_filename),
        _i64(columns.mapping_filename),
        _i64(columns.mapping_build_id),
        _i64(columns.label_key),
        _i64(columns.label_str),
        _i64(columns.label_num_unit),
        _i64(columns.sample_value_offsets),
        _i64(columns.sample_values),
        _i64(columns.sample_loc_offsets),
        _u64(columns.sample_locs),
        _u64(columns.function_id),
        _u64(columns.mapping_id),
        _u64(columns.location_id),
        _u64(columns.location_mapping_id),
        _u64(columns.line_function_id),
    )
    return valid


def sample_hashes(
    columns: ProfileColumns, function_keys: IntArray, mapping_keys: U64, labelset_keys: IntArray
) -> U64 | None:
    """:func:`~server.pprof.identity.sample_keys` in one pass of the extension (None without it);
    the columns must be validated."""
    if _wire is None:
        return None
    raw: bytes = _wire.sample_hashes(
        _u64(columns.location_id),
        _u64(columns.location_mapping_id),
        _u64(columns.location_address),
        _i64(columns.location_line_offsets),
        _u64(columns.line_function_id),
        _i64(columns.line_line),
        _u64(columns.function_id),
        _i64(function_keys),
        _u64(columns.mapping_id),
        _u64(columns.mapping_memory_start),
        _u64(mapping_keys),
        _u64(columns.sample_locs),
        _i64(columns.sample_loc_offsets),
        _i64(labelset_keys),
    )
    return np.frombuffer(raw, dtype=np.uint64)


def label_runs(columns: ProfileColumns) -> tuple[IntArray, IntArray] | None:
    """Every sample's group of equal label entries (-1: no labels; groups numbered by first appearance),
    and each group's first sample; None without the extension, or when hash collisions passed the
    kernel's budget (the caller groups another way)."""
    if _wire is None:
        return None
    found: tuple[bytes, bytes] | None = _wire.label_runs(
        _i64(columns.sample_label_offsets),
        _i64(columns.label_key),
        _i64(columns.label_str),
        _i64(columns.label_num),
        _i64(columns.label_num_unit),
        _SEED,
    )
    if found is None:
        return None
    groups, firsts = found
    return np.frombuffer(groups, dtype=np.int64), np.frombuffer(firsts, dtype=np.int64)


#: entries, offsets, entry_functions, entry_lines, entry_inlined (see :class:`~server.pprof.frames.Frames`).
ExpandedArrays = tuple[IntArray, IntArray, IntArray, IntArray, IntArray]


def expand_frames(columns: ProfileColumns, name_of_location: IntArray, which: IntArray) -> ExpandedArrays | None:
    """:func:`~server.pprof.frames.expand_numpy` of the samples at positions ``which`` in one pass of the
    extension (None without it); the columns must be validated. ``name_of_location``: each location's
    unsymbolized name index, -1 for one with lines (:func:`~server.pprof.frames.unsymbolized`)."""
    if _wire is None:
        return None
    raw = _wire.expand_frames(
        _u64(columns.location_id),
        _i64(columns.location_line_offsets),
        _u64(columns.line_function_id),
        _i64(columns.line_line),
        _u64(columns.function_id),
        _i64(name_of_location),
        _u64(columns.sample_locs),
        _i64(columns.sample_loc_offsets),
        _i64(which),
    )
    entries, offsets, entry_functions, entry_lines, entry_inlined = raw
    return (
        np.frombuffer(entries, dtype=np.int64),
        np.frombuffer(offsets, dtype=np.int64),
        np.frombuffer(entry_functions, dtype=np.int64),
        np.frombuffer(entry_lines, dtype=np.int64),
        np.frombuffer(entry_inlined, dtype=np.int64),
    )


#: The little-endian type of each width :func:`pack_frame_values` packs values at.
PACKED: dict[int, np.dtype[Any]] = {1: np.dtype("<u1"), 2: np.dtype("<u2"), 4: np.dtype("<u4"), 8: np.dtype("<i8")}


def pack_frame_values(
    entry_values: IntArray, entries: IntArray, offsets: IntArray, which: IntArray
) -> npt.NDArray[np.integer[Any]] | None:
    """``entry_values[entries[k]]`` for every frame ``k`` of the samples at positions ``which`` (frames as
    :class:`~server.pprof.frames.Frames` holds them), in one pass of the extension (None without it), packed
    at once in the narrowest type of :data:`PACKED` that holds them: numpy's gather made a 64-bit temporary
    per frame, and narrowing it two copies more (:func:`~server.pprof.frames.frame_values` is the reference)."""
    if _wire is None:
        return None
    width, packed = _wire.pack_frame_values(_i64(entry_values), _i64(entries), _i64(offsets), _i64(which))
    values: npt.NDArray[np.integer[Any]] = np.frombuffer(packed, dtype=PACKED[width])
    return values


def function_digests(
    strings: list[str], names: IntArray, system_names: IntArray, filenames: IntArray
) -> tuple[U64, U64] | None:
    """:func:`~server.store.symbols.function_digests` in one pass of the extension (None without it): a
    Python hash per string a function names and a few multiplies, where numpy took a dozen array passes."""
    if _wire is None:
        return None
    first, second = _wire.function_digests(strings, _i64(names), _i64(system_names), _i64(filenames))
    return np.frombuffer(first, dtype=np.uint64), np.frombuffer(second, dtype=np.uint64)
