"""Columns that grow in place: numpy arrays over anonymous mappings with address space reserved past their end.

The stack tree's columns (:mod:`server.store.stacks`) and the line vectors'
values (:mod:`server.store.linevectors`) gain tens of thousands of entries a
churny profile, for as long as the process runs. Grown as numpy arrays, every
growth copied the column into fresh memory and paged it in again (on the
churny bench, growth faulted in half again as many pages as the new entries
did, and stalled the profile that grew a column). Here a column past
``MAPPED_BYTES`` is a view of a mapping with room for ``RESERVED`` entries: growing
within it is a longer view of the same memory, and untouched room costs no
memory and no page fault.
"""

from __future__ import annotations

import mmap
import platform
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt

Column = TypeVar("Column", bound=npt.NDArray[Any])

#: Columns from this size up are mappings of their own (see ``zeros``). Below it a column grows by copying into a
#: new ``np.zeros`` (which writes, so pages in, the whole bigger array): with a megabyte here, the tree's one-byte
#: columns of a churny store were still copied past 600,000 nodes, 0.20-0.24 ms and ~90 page faults a first-pass
#: profile; at 64 KB, 0.02 ms and 4 (``phases2``, the twelve churn captures). A mapping is one system call and
#: address space, not memory, so only the smallest tables keep plain arrays.
MAPPED_BYTES = 1 << 16
#: Entries a column's mapping has address space for when it is made (see ``zeros``): 1 GB of an int64 column,
#: reserved, not used.
RESERVED = 1 << 27
#: ``MAP_NORESERVE`` (Python's ``mmap`` names it only from 3.13; its value on Linux's x86-64 and arm64): the
#: reserved room is not counted against the system's commit limit until it is written.
_NORESERVE = 0x4000 if platform.system() == "Linux" and platform.machine() in ("x86_64", "aarch64") else 0


def zeros(size: int, dtype: npt.DTypeLike) -> npt.NDArray[Any]:
    """A zeroed column of ``size`` entries. Past ``MAPPED_BYTES`` it is a view of an anonymous mapping of its own,
    with address space for ``RESERVED`` entries (or ``size``, if more): untouched zero pages that cost no
    memory and no page fault until a node is written there, and room to grow into without a copy (``grown``).
    (``np.zeros`` goes through ``calloc``, which zeroes, and so pages in, the whole array when the allocator
    reuses heap memory, as :mod:`server.allocator` has it do for sizes under 32 MB; and numpy asks for
    transparent huge pages on its own arrays, whose faults compacted memory for milliseconds on the machines
    measured.) Where the system refuses the reservation (a strict commit limit, an address-space limit), the
    mapping is as big as the column."""
    itemsize = np.dtype(dtype).itemsize
    if size * itemsize < MAPPED_BYTES:
        return np.zeros(size, dtype=dtype)
    try:
        mapping = mmap.mmap(-1, max(size, RESERVED) * itemsize, flags=mmap.MAP_PRIVATE | _NORESERVE)
    except OSError:
        mapping = mmap.mmap(-1, size * itemsize, flags=mmap.MAP_PRIVATE)
    return np.frombuffer(mapping, dtype=dtype, count=size)


def grown(column: Column, size: int) -> Column:
    """``column`` with ``size`` places, the new ones zero. Within its mapping's reserved room, a longer view of the
    same memory: nothing is copied or paged in (on a churny store, the copies of growth faulted in half again
    as many pages as the new nodes did, and stalled the profile that grew a tree). Past it (or for a small
    column), a new column with the old one copied in; only the copied part is written (and paged in). Either
    way a new array: a query holding the old one keeps it, and it sees the same values for every id it had."""
    base = column.base
    mapping = base.obj if isinstance(base, memoryview) else None
    if isinstance(mapping, mmap.mmap) and len(mapping) >= size * column.itemsize:
        view = cast(Column, np.frombuffer(mapping, dtype=column.dtype, count=size))
        return view
    bigger = cast(Column, zeros(size, column.dtype))
    bigger[: column.shape[0]] = column
    return bigger
