"""Semantic checks on decoded columns, vectorised: every index in range, every id unique and resolvable.

Runs once per profile before anything reads it, so later code (frame
expansion, the store, ``to_profile``) may index arrays without checking.
Messages name the offending record the way a person would look for it.

The C decoder's :func:`~server.pprof.kernels.surely_valid` passes the usual
profile (ids 1..N in order, as Go writes them) in one pass; only a profile it
cannot vouch for, refused or merely unusual, takes the checks below, which
alone decide and word every refusal.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from server.pprof.checked import SAFE_MAX, bounded, signed_sums
from server.pprof.columns import ProfileColumns
from server.pprof.errors import MalformedProfileError
from server.pprof.kernels import surely_valid

IntArray = npt.NDArray[np.int64]


def _check_strings(columns: ProfileColumns, what: str, *arrays: npt.NDArray[np.int64]) -> None:
    size = len(columns.strings)
    for array in arrays:
        if array.size and (int(array.min()) < 0 or int(array.max()) >= size):
            bad = int(array[(array < 0) | (array >= size)][0])
            raise MalformedProfileError(f"{what} refers to string {bad}, but the string table has {size} entries")


def _check_ids(ids: npt.NDArray[np.uint64], what: str) -> npt.NDArray[np.int64]:
    """Ids must be non-zero and unique; returns the order that sorts them (for lookups)."""
    if ids.size == 0:
        return np.zeros(0, dtype=np.int64)
    if bool((ids == 0).any()):
        raise MalformedProfileError(f"a {what} has id 0")
    order = np.argsort(ids, kind="stable")
    ordered = ids[order]
    repeated = ordered[1:] == ordered[:-1]
    if bool(repeated.any()):
        raise MalformedProfileError(f"{what} id {int(ordered[1:][repeated][0])} appears twice")
    return order.astype(np.int64)


def _dense(ids: npt.NDArray[np.uint64]) -> bool:
    return bool(ids[0] == 1) and bool(ids[-1] == ids.shape[0]) and bool((np.diff(ids.astype(np.int64)) == 1).all())


def positions(
    ids: npt.NDArray[np.uint64], order: IntArray, wanted: npt.NDArray[np.uint64]
) -> tuple[IntArray, npt.NDArray[np.bool_]]:
    """Index into ``ids`` of every wanted id, and a mask of the ones that exist."""
    if ids.size == 0:
        return np.zeros(wanted.shape[0], dtype=np.int64), np.zeros(wanted.shape[0], dtype=bool)
    if _dense(ids):
        # Go numbers functions and locations 1..N in order: no search needed.
        found = (wanted >= 1) & (wanted <= ids.shape[0])
        return np.where(found, wanted.astype(np.int64) - 1, 0), found
    ordered = ids[order]
    slot = np.minimum(np.searchsorted(ordered, wanted), ordered.shape[0] - 1)
    found = ordered[slot] == wanted
    return order[slot], found


def validate(columns: ProfileColumns) -> None:
    """Raise :class:`MalformedProfileError` naming the first problem, if any."""
    if not columns.strings or columns.strings[0] != "":
        raise MalformedProfileError("string_table[0] must be the empty string")
    if surely_valid(columns):
        return
    validate_fully(columns)


def validate_fully(columns: ProfileColumns) -> None:
    """Every check, with numpy: what decides when the C decoder's one-pass check cannot vouch for a profile."""
    if not columns.strings or columns.strings[0] != "":
        raise MalformedProfileError("string_table[0] must be the empty string")
    n_types = columns.sample_type.shape[0] // 2
    n_samples = columns.sample_loc_offsets.shape[0] - 1
    _check_strings(columns, "a sample type", columns.sample_type)
    scalars = np.array(
        [
            columns.period_type_type,
            columns.period_type_unit,
            columns.default_sample_type,
            columns.drop_frames,
            columns.keep_frames,
        ],
        dtype=np.int64,
    )
    _check_strings(columns, "the profile header", scalars, columns.comment)
    _check_strings(
        columns, "a function", columns.function_name, columns.function_system_name, columns.function_filename
    )
    _check_strings(columns, "a mapping", columns.mapping_filename, columns.mapping_build_id)
    if n_samples and n_types == 0:
        raise MalformedProfileError("samples present but no sample types declared")
    counts = np.diff(columns.sample_value_offsets)
    if bool((counts != n_types).any()):
        bad = int(np.flatnonzero(counts != n_types)[0])
        raise MalformedProfileError(
            f"sample {bad} has {int(counts[bad])} values but the profile declares {n_types} sample types"
        )
    _check_labels(columns)
    if n_samples and n_types:
        _check_sums(columns, n_types)

    _check_ids(columns.function_id, "function")
    _check_ids(columns.mapping_id, "mapping")
    location_order = _check_ids(columns.location_id, "location")

    mapped = columns.location_mapping_id != 0
    if bool(mapped.any()):
        _, found = positions(
            columns.mapping_id, _check_ids(columns.mapping_id, "mapping"), columns.location_mapping_id[mapped]
        )
        if not bool(found.all()):
            bad = int(np.flatnonzero(mapped)[~found][0])
            raise MalformedProfileError(
                f"location {int(columns.location_id[bad])} refers to mapping "
                f"{int(columns.location_mapping_id[bad])}, which does not exist"
            )

    _, found = positions(columns.function_id, _check_ids(columns.function_id, "function"), columns.line_function_id)
    if not bool(found.all()):
        line = int(np.flatnonzero(~found)[0])
        location = int(np.searchsorted(columns.location_line_offsets, line, side="right")) - 1
        raise MalformedProfileError(
            f"location {int(columns.location_id[location])} refers to function "
            f"{int(columns.line_function_id[line])}, which does not exist"
        )

    _, found = positions(columns.location_id, location_order, columns.sample_locs)
    if not bool(found.all()):
        entry = int(np.flatnonzero(~found)[0])
        sample = int(np.searchsorted(columns.sample_loc_offsets, entry, side="right")) - 1
        raise MalformedProfileError(
            f"sample {sample} refers to location {int(columns.sample_locs[entry])}, which does not exist"
        )


def _check_sums(columns: ProfileColumns, n_types: int) -> None:
    """Per sample type, the positive values and the negative values must each add up within 64 bits.

    Then no total, stack or function value of this profile can wrap (see
    :mod:`server.pprof.checked`): two samples of 2^63-1 would otherwise add
    up to -2.
    """
    values = columns.sample_values.reshape(-1, n_types)
    if bounded(values, values.shape[0]):
        return  # no sum of these values can leave 64 bits: every real profile
    for index, (positive, negative) in enumerate(signed_sums(values)):
        if positive > SAFE_MAX or negative < -SAFE_MAX:
            type_index, unit_index = columns.sample_type[2 * index : 2 * index + 2].tolist()
            name = f"{columns.strings[type_index]}/{columns.strings[unit_index]}"
            which, total = ("positive", positive) if positive > SAFE_MAX else ("negative", negative)
            raise MalformedProfileError(
                f"the {which} values of sample type {name} add up to {total}, "
                f"past the 64-bit range (at most {SAFE_MAX} either way)"
            )


def _check_labels(columns: ProfileColumns) -> None:
    size = len(columns.strings)
    for array in (columns.label_key, columns.label_str, columns.label_num_unit):
        bad = (array < 0) | (array >= size)
        if bool(bad.any()):
            entry = int(np.flatnonzero(bad)[0])
            sample = int(np.searchsorted(columns.sample_label_offsets, entry, side="right")) - 1
            raise MalformedProfileError(f"a label of sample {sample} refers to a string out of range")
