"""A sample's identity as ``go tool pprof`` sees it, hashed to 64 bits, for every sample at once.

pprof merges two samples when their stacks have the same locations and
their labels are equal; a location is its address relative to its mapping
(plus the mapping's identity) and its lines. Stackyard keeps stacks at
function granularity, but ``-normalize`` rounds each *pprof* sample
separately, so to reproduce it exactly the store remembers this identity
too. The hash is computed with vectorised splitmix64 steps; callers supply
stable ids for functions and label sets so equal content hashes equally in
every profile and process.

The C decoder computes the same hash in one pass
(:func:`~server.pprof.kernels.sample_hashes`); the numpy below is the
reference it is tested against, and what runs where the extension is not built.
"""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt

from server.pprof.columns import ProfileColumns
from server.pprof.kernels import sample_hashes
from server.pprof.mixing import mix64
from server.pprof.validate import positions

U64 = npt.NDArray[np.uint64]
IntArray = npt.NDArray[np.int64]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_LINE = np.uint64(0xC2B2AE3D27D4EB4F)
_FRAME = np.uint64(0x165667B19E3779F9)
_LABELS = np.uint64(0x27D4EB2F165667C5)
# The lines term of a location with no line. Not 0: sample keys stored while such
# locations were dropped from stacks point at stacks without them, and must not be
# reused for profiles ingested since (symbolized samples keep their keys).
_BARE = np.uint64(0x85EBCA77C2B2AE63)


def _powers(length: int, base: np.uint64) -> U64:
    result = np.ones(max(length, 1), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for i in range(1, length):
            result[i] = result[i - 1] * base
    return result


def _ordered_sum(terms: U64, offsets: IntArray, base: np.uint64) -> U64:
    """Per run ``offsets[i]:offsets[i+1]``: sum of term * base^position (order-sensitive), 0 for empty runs."""
    counts = np.diff(offsets)
    runs = counts.shape[0]
    if terms.size == 0:
        return np.zeros(runs, dtype=np.uint64)
    position = np.arange(terms.shape[0], dtype=np.int64) - np.repeat(offsets[:-1], counts)
    powers = _powers(int(position.max()) + 1, base)
    with np.errstate(over="ignore"):
        weighted = terms * powers[position]
    padded = np.concatenate([weighted, np.zeros(1, dtype=np.uint64)])
    sums = np.add.reduceat(padded, np.minimum(offsets[:-1], terms.shape[0]))
    sums[counts == 0] = 0
    return sums.astype(np.uint64)


def _mapping_keys(columns: ProfileColumns) -> U64:
    strings = columns.strings
    keys = []
    for size, offset, build_id, filename in zip(
        (columns.mapping_memory_limit - columns.mapping_memory_start).tolist(),
        columns.mapping_file_offset.tolist(),
        columns.mapping_build_id.tolist(),
        columns.mapping_filename.tolist(),
        strict=True,
    ):
        identity = strings[build_id] or strings[filename]
        digest = hashlib.blake2b(f"{size}\0{offset}\0{identity}".encode(), digest_size=8).digest()
        keys.append(int.from_bytes(digest, "little"))
    return np.array(keys, dtype=np.uint64)


def sample_keys(columns: ProfileColumns, function_ids: IntArray, labelset_ids: IntArray) -> U64:
    """64-bit identity of every sample; ``function_ids`` by function position, ``labelset_ids`` per sample."""
    if bool((columns.location_mapping_id != 0).any()):
        mapping_keys = _mapping_keys(columns)
    else:
        mapping_keys = np.zeros(columns.mapping_id.shape[0], dtype=np.uint64)
    native = sample_hashes(columns, function_ids, mapping_keys, labelset_ids)
    if native is not None:
        return native
    return sample_keys_numpy(columns, function_ids, labelset_ids)


def sample_keys_numpy(columns: ProfileColumns, function_ids: IntArray, labelset_ids: IntArray) -> U64:
    """:func:`sample_keys` with numpy alone: the reference the extension's kernel is held to."""
    n_locations = columns.location_id.shape[0]
    # Locations: mapping-relative address and mapping identity, then the lines in order.
    address = columns.location_address.copy()
    mapping_key = np.zeros(n_locations, dtype=np.uint64)
    mapped = columns.location_mapping_id != 0
    if bool(mapped.any()):
        order = np.argsort(columns.mapping_id, kind="stable").astype(np.int64)
        where, _ = positions(columns.mapping_id, order, columns.location_mapping_id[mapped])
        with np.errstate(over="ignore"):
            address[mapped] = address[mapped] - columns.mapping_memory_start[where]
        mapping_key[mapped] = _mapping_keys(columns)[where]
    function_order = np.argsort(columns.function_id, kind="stable").astype(np.int64)
    line_function, _ = positions(columns.function_id, function_order, columns.line_function_id)
    with np.errstate(over="ignore"):
        line_terms = mix64(function_ids[line_function].astype(np.uint64) * _LINE ^ columns.line_line.astype(np.uint64))
        lines = _ordered_sum(line_terms, columns.location_line_offsets, _GOLDEN)
        lines[np.diff(columns.location_line_offsets) == 0] = _BARE
        location_hash = mix64(mix64(address ^ mapping_key) + lines)
    # Samples: their locations in order, then the label set.
    location_order = np.argsort(columns.location_id, kind="stable").astype(np.int64)
    location_pos, _ = positions(columns.location_id, location_order, columns.sample_locs)
    stack = _ordered_sum(location_hash[location_pos], columns.sample_loc_offsets, _FRAME)
    with np.errstate(over="ignore"):
        return mix64(
            stack
            + mix64(labelset_ids.astype(np.uint64) * _LABELS + np.diff(columns.sample_loc_offsets).astype(np.uint64))
        )
