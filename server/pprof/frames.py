"""Stacks as pprof counts them: every location's lines expanded into frames, leaf first.

A location's ``line`` entries are its inlined frames, innermost first, so a
sample's frames are the concatenation of its locations' lines in order.
Done with array arithmetic for all samples at once: this is the step that
turns a Go profile's 70,000 location references into function references
without a Python loop per frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from server.pprof.columns import ProfileColumns
from server.pprof.validate import positions

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Frames:
    """``functions[offsets[i]:offsets[i + 1]]`` are sample ``i``'s frames, leaf first.

    Values are indices into the profile's function columns (not ids).
    """

    functions: IntArray
    offsets: IntArray


def ranges(starts: IntArray, lengths: IntArray) -> IntArray:
    """Concatenate ``arange(s, s + n)`` for every (s, n), without a loop."""
    run_starts = np.cumsum(lengths) - lengths
    shifts: IntArray = np.repeat(starts - run_starts, lengths)
    return np.arange(shifts.shape[0], dtype=np.int64) + shifts


def expand(columns: ProfileColumns) -> Frames:
    """Frames of every sample; the columns must already be validated."""
    n_locations = columns.location_id.shape[0]
    location_order = np.argsort(columns.location_id, kind="stable").astype(np.int64)
    location_pos, _ = positions(columns.location_id, location_order, columns.sample_locs)
    function_order = np.argsort(columns.function_id, kind="stable").astype(np.int64)
    line_function, _ = positions(columns.function_id, function_order, columns.line_function_id)
    line_starts = columns.location_line_offsets[:-1] if n_locations else np.zeros(0, dtype=np.int64)
    line_counts = np.diff(columns.location_line_offsets) if n_locations else np.zeros(0, dtype=np.int64)
    entry_starts = line_starts[location_pos]
    entry_counts = line_counts[location_pos]
    functions = line_function[ranges(entry_starts, entry_counts)]
    per_entry_end = np.cumsum(entry_counts)
    loc_offsets = columns.sample_loc_offsets
    offsets = np.zeros(loc_offsets.shape[0], dtype=np.int64)
    ends = loc_offsets[1:]
    has = ends > 0
    offsets[1:][has] = per_entry_end[ends[has] - 1]
    return Frames(functions, offsets)
