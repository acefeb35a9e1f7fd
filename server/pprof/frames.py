"""Stacks as pprof counts them: every location's lines expanded into frames, leaf first.

A location's ``line`` entries are its inlined frames, innermost first, so a
sample's frames are the concatenation of its locations' lines in order.
This is the step that turns a Go profile's 70,000 location references into
function references without a Python loop per frame: one pass of the C
decoder's kernel over the samples asked for (ingest asks for those whose
stacks are new), or array arithmetic over every sample without it.

A location with no line (an address pprof could not symbolize: C code under
cgo, the vdso, a stripped or foreign binary) is one frame, named as
``go tool pprof`` names it at function granularity: ``[<base name of its
mapping's file>]``, or ``<unknown>`` when it has no mapping or the mapping
has no file. Addresses are not kept at that granularity, so every such
location of one mapping is the same frame. Dropping them instead would
charge their time to the caller, or lose whole stacks of a foreign profile.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from server.pprof.columns import ProfileColumns
from server.pprof.kernels import PACKED, expand_frames, pack_frame_values
from server.pprof.validate import positions

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Frames:
    """``entries[offsets[i]:offsets[i + 1]]`` are sample ``i``'s frames, leaf first, as line entries.

    Every frame is an index into the line entries the frames use, which are far fewer than frames: work per
    entry (its function's id, its (function, line) frame's id) is done once, then gathered with ``entries``.
    Entries are numbered in the order of their first use.
    """

    entries: IntArray
    offsets: IntArray
    extra_names: tuple[str, ...]
    #: Function index and line number of every line entry (an unsymbolized location is one entry, line 0):
    #: ``-lines`` keys a frame by (function, line). A function index is a position in the profile's function
    #: columns (not an id); ``n_functions + k`` is the unsymbolized frame named ``extra_names[k]``.
    entry_functions: IntArray
    entry_lines: IntArray
    #: 1 for a line entry other than its location's last: a function inlined there (pprof's "(inline)").
    entry_inlined: IntArray

    @property
    def functions(self) -> IntArray:
        """The function index of every frame."""
        functions: IntArray = self.entry_functions[self.entries]
        return functions

    @property
    def lines(self) -> IntArray:
        """The line number of every frame (0 for an unsymbolized one)."""
        lines: IntArray = self.entry_lines[self.entries]
        return lines


UNKNOWN = "<unknown>"


def unsymbolized_name(mapping_file: str) -> str:
    """pprof's name for a frame with no line in a mapping of this file (``""``: none)."""
    if not mapping_file:
        return UNKNOWN
    return f"[{posixpath.basename(mapping_file)}]"


@dataclass(frozen=True, slots=True)
class Unsymbolized:
    """Which locations have no line, and the name index of each (``-1`` for symbolized ones)."""

    name_of_location: IntArray
    names: tuple[str, ...]


def unsymbolized(columns: ProfileColumns) -> Unsymbolized:
    """Names of the locations without lines; cheap when there are none (one array comparison)."""
    n_locations = columns.location_id.shape[0]
    line_counts = np.diff(columns.location_line_offsets) if n_locations else np.zeros(0, dtype=np.int64)
    bare = line_counts == 0
    name_of_location = np.full(n_locations, -1, dtype=np.int64)
    if not bool(bare.any()):
        return Unsymbolized(name_of_location, ())
    strings = columns.strings
    # One name per mapping, "" (-> <unknown>) for locations with no mapping.
    mapping_names = [unsymbolized_name(strings[f]) for f in columns.mapping_filename.tolist()]
    names = tuple(sorted({*mapping_names, UNKNOWN}))
    index = {name: k for k, name in enumerate(names)}
    mapping_index = np.array([index[name] for name in mapping_names] + [index[UNKNOWN]], dtype=np.int64)
    wanted = columns.location_mapping_id[bare]
    slot = np.full(wanted.shape[0], mapping_index.shape[0] - 1, dtype=np.int64)
    mapped = wanted != 0
    if bool(mapped.any()):
        order = np.argsort(columns.mapping_id, kind="stable").astype(np.int64)
        where, _ = positions(columns.mapping_id, order, wanted[mapped])
        slot[mapped] = where
    used, name_of_bare = np.unique(mapping_index[slot], return_inverse=True)
    name_of_location[bare] = name_of_bare.reshape(-1)
    return Unsymbolized(name_of_location, tuple(names[k] for k in used.tolist()))


def ranges(starts: IntArray, lengths: IntArray) -> IntArray:
    """Concatenate ``arange(s, s + n)`` for every (s, n), without a loop."""
    run_starts = np.cumsum(lengths) - lengths
    shifts: IntArray = np.repeat(starts - run_starts, lengths)
    return np.arange(shifts.shape[0], dtype=np.int64) + shifts


def expand(columns: ProfileColumns, which: IntArray | None = None) -> Frames:
    """Frames of the samples at positions ``which`` (default all), in that order; the columns must be validated.

    Ingest expands only the samples whose keys are new, so a profile of known stacks with a few new ones pays
    for the few: the extension's kernel (:func:`~server.pprof.kernels.expand_frames`) follows just their
    locations, and the line entries are just those their frames use. :func:`expand_numpy` is its reference.
    """
    bare = unsymbolized(columns)
    n_samples = columns.sample_loc_offsets.shape[0] - 1
    chosen = np.arange(n_samples, dtype=np.int64) if which is None else which
    native = expand_frames(columns, bare.name_of_location, chosen)
    if native is None:
        return expand_numpy(columns, which)
    entries, offsets, entry_functions, entry_lines, entry_inlined = native
    return Frames(entries, offsets, bare.names, entry_functions, entry_lines, entry_inlined)


def expand_numpy(columns: ProfileColumns, which: IntArray | None = None) -> Frames:
    """:func:`expand` with numpy alone, expanding every sample first: the reference the kernel is held to."""
    n_locations = columns.location_id.shape[0]
    location_order = np.argsort(columns.location_id, kind="stable").astype(np.int64)
    location_pos, _ = positions(columns.location_id, location_order, columns.sample_locs)
    function_order = np.argsort(columns.function_id, kind="stable").astype(np.int64)
    line_function, _ = positions(columns.function_id, function_order, columns.line_function_id)
    line_starts = columns.location_line_offsets[:-1] if n_locations else np.zeros(0, dtype=np.int64)
    line_counts = np.diff(columns.location_line_offsets) if n_locations else np.zeros(0, dtype=np.int64)
    bare = unsymbolized(columns)
    line_numbers = columns.line_line.astype(np.int64, copy=False)
    if bare.names:
        # A location with no line becomes one entry pointing past the function columns.
        n_lines = line_function.shape[0]
        n_functions = columns.function_id.shape[0]
        is_bare = bare.name_of_location >= 0
        line_function = np.concatenate([line_function, n_functions + bare.name_of_location[is_bare]])
        line_numbers = np.concatenate([line_numbers, np.zeros(int(is_bare.sum()), dtype=np.int64)])
        line_starts = line_starts.copy()
        line_starts[is_bare] = n_lines + np.arange(int(is_bare.sum()), dtype=np.int64)
        line_counts = np.where(is_bare, 1, line_counts)
    entry_starts = line_starts[location_pos]
    entry_counts = line_counts[location_pos]
    entries = ranges(entry_starts, entry_counts)
    per_entry_end = np.cumsum(entry_counts)
    loc_offsets = columns.sample_loc_offsets
    offsets = np.zeros(loc_offsets.shape[0], dtype=np.int64)
    ends = loc_offsets[1:]
    has = ends > 0
    offsets[1:][has] = per_entry_end[ends[has] - 1]
    inlined = np.ones(line_function.shape[0], dtype=np.int64)
    inlined[(line_starts + line_counts - 1)[line_counts > 0]] = 0  # each location's last entry is the caller
    if which is not None:  # the chosen samples' frames as a batch of their own
        lengths = offsets[which + 1] - offsets[which]
        entries = entries[ranges(offsets[which], lengths)]
        offsets = np.zeros(which.shape[0] + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
    # Only the entries the frames use, numbered in the order of their first use.
    used, first, inverse = np.unique(entries, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    number = np.empty(order.shape[0], dtype=np.int64)
    number[order] = np.arange(order.shape[0], dtype=np.int64)
    used = used[order]
    local: IntArray = number[inverse.reshape(-1)]
    return Frames(local, offsets, bare.names, line_function[used], line_numbers[used], inlined[used])


def frame_values(frames: Frames, entry_values: IntArray, which: IntArray) -> npt.NDArray[np.integer[Any]]:
    """``entry_values[frames.entries]`` of the samples at positions ``which`` of ``frames``, in that order, one
    after another and packed as :func:`narrowest` packs them: what a line vector is made of, a value per line
    entry (thousands) spread over its frames (tens of thousands). In one pass of the extension
    (:func:`~server.pprof.kernels.pack_frame_values`); :func:`frame_values_numpy` is its reference."""
    native = pack_frame_values(entry_values, frames.entries, frames.offsets, which)
    return frame_values_numpy(frames, entry_values, which) if native is None else native


def frame_values_numpy(frames: Frames, entry_values: IntArray, which: IntArray) -> npt.NDArray[np.integer[Any]]:
    """:func:`frame_values` with numpy alone."""
    lengths = np.diff(frames.offsets)[which]
    return narrowest(entry_values[frames.entries[ranges(frames.offsets[which], lengths)]])


def narrowest(values: npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.integer[Any]]:
    """``values`` as the narrowest little-endian type of :data:`~server.pprof.kernels.PACKED` that holds them all
    (unsigned 1, 2 or 4 bytes, else signed 8; 1 when there are none), contiguous: the array itself when it is
    so already."""
    width = 8
    if values.size == 0:
        width = 1
    elif int(values.min()) >= 0:
        top = int(values.max())
        width = next(w for w in PACKED if w == 8 or top < 1 << (8 * w))
    packed: npt.NDArray[np.integer[Any]] = np.ascontiguousarray(values, dtype=PACKED[width])
    return packed
