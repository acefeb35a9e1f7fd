"""Samples grouped by their label entries, exactly, without a loop per sample in Python.

A Go CPU profile labels nearly every sample (``pprof.Do``: the handler, the
route), with a few dozen distinct label sets among thousands of samples. The
store resolves each distinct set once; finding them used to take a Python
dictionary lookup per sample, a millisecond per profile. The C decoder's
kernel (:func:`~server.pprof.kernels.label_runs`) groups them in one pass
with a hash table that compares entries exactly. Without it, every run of
label entries is hashed at once, runs are grouped by hash, and each sample is
then compared entry by entry with its group's first sample, so a hash
collision can never merge two different runs: if any comparison fails, the
runs are grouped again by their bytes, with a dictionary (the old way).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from server.pprof import kernels
from server.pprof.columns import ProfileColumns
from server.pprof.frames import ranges
from server.pprof.mixing import mix64

IntArray = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]

_KEY = np.uint64(0x9E3779B97F4A7C15)
_STR = np.uint64(0xC2B2AE3D27D4EB4F)
_NUM = np.uint64(0x165667B19E3779F9)
_UNIT = np.uint64(0x27D4EB2F165667C5)
_POSITION = np.uint64(0x85EBCA77C2B2AE63)


def label_runs(columns: ProfileColumns, labelled: IntArray) -> tuple[IntArray, IntArray]:
    """For samples ``labelled`` (each with at least one label entry): the group of each, and the position in
    ``labelled`` of every group's first sample; samples share a group exactly when their entries are equal,
    in order."""
    native = kernels.label_runs(columns)
    if native is not None:
        groups, firsts = native
        # Groups are numbered by first appearance, so the labelled samples' groups keep their numbers.
        return groups[labelled], np.searchsorted(labelled, firsts)
    grouped = _hashed_runs(columns, labelled)
    return grouped if grouped is not None else runs_by_bytes(columns, labelled)


def _hashed_runs(columns: ProfileColumns, labelled: IntArray) -> tuple[IntArray, IntArray] | None:
    """:func:`label_runs` by hash, or None when two different runs hashed the same."""
    offsets = columns.sample_label_offsets
    starts = offsets[labelled]
    lengths = offsets[labelled + 1] - starts
    entries = ranges(starts, lengths)
    position = np.arange(entries.shape[0], dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    key = columns.label_key[entries].astype(np.uint64)
    value = columns.label_str[entries].astype(np.uint64)
    number = columns.label_num[entries].astype(np.uint64)
    unit = columns.label_num_unit[entries].astype(np.uint64)
    with np.errstate(over="ignore"):
        term = mix64(
            key * _KEY
            + mix64(value * _STR + mix64(number * _NUM + mix64(unit * _UNIT + position.astype(np.uint64) * _POSITION)))
        )
        sums = np.add.reduceat(term, np.cumsum(lengths) - lengths)
        hashes = mix64(sums + lengths.astype(np.uint64))
    _, first, groups = np.unique(hashes, return_index=True, return_inverse=True)
    groups = groups.reshape(-1).astype(np.int64)
    first = first.astype(np.int64)
    # Exactness: every sample's entries equal its group's first sample's, one by one.
    representative = first[groups]
    if not bool((lengths[representative] == lengths).all()):
        return None
    theirs = np.repeat(starts[representative], lengths) + position
    for column in (columns.label_key, columns.label_str, columns.label_num, columns.label_num_unit):
        if not np.array_equal(column[entries], column[theirs]):
            return None
    return groups, first


def runs_by_bytes(columns: ProfileColumns, labelled: IntArray) -> tuple[IntArray, IntArray]:
    """:func:`label_runs`' answer found with a dictionary of each run's bytes: what a collision falls back to."""
    offsets = columns.sample_label_offsets
    stacked = np.stack([columns.label_key, columns.label_str, columns.label_num, columns.label_num_unit], axis=1)
    raw = stacked.astype("<i8").tobytes()
    local: dict[bytes, int] = {}
    groups: list[int] = []
    first: list[int] = []
    for position, (start, end) in enumerate(
        zip(offsets[labelled].tolist(), offsets[labelled + 1].tolist(), strict=True)
    ):
        slot = local.setdefault(raw[start * 32 : end * 32], len(first))
        if slot == len(first):
            first.append(position)
        groups.append(slot)
    return np.array(groups, dtype=np.int64), np.array(first, dtype=np.int64)
