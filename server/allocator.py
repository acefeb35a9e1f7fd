"""Keep freed memory in the process: the C allocator's settings for a server that frees big arrays all day.

Ingest and queries allocate and free numpy arrays of 0.1-30 MB per profile
(decoded columns, frames, sort scratch). glibc serves each one above its mmap
threshold with a fresh ``mmap`` and returns it with ``munmap`` on free, and
trims the heap's free top back to the system: the next profile's arrays are
fresh pages again, and each page costs a fault the first time it is written
(the kernel zeroes it; on a virtual machine the host maps it too, 2-5 us a
page measured here). A steady profile's first pass faulted ~800 pages.
Raising both thresholds keeps those arrays on the heap and the heap's free
top in the process, to be reused: the steady first pass went from 10.4-13.1
to 8.2-11.9 ms of CPU (five runs each, docs/storage-history.md). The cost is memory
kept: at most ``TRIM_MB`` of free heap top is held rather than returned.

Only glibc has ``mallopt``; elsewhere this does nothing. An operator can opt
out with ``STACKYARD_MALLOC_KEEP=0`` (read here, at import, before anything
allocates: the pydantic settings load later).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

#: glibc's mallopt parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: Allocations below this come from the heap (32 MB is glibc's largest mmap threshold on 64-bit).
MMAP_MB = 32
#: Free memory at the heap's top kept rather than returned to the system.
TRIM_MB = 64


def keep_freed_memory() -> bool:
    """Set the allocator's thresholds; whether they were set (glibc, and not opted out)."""
    if os.environ.get("STACKYARD_MALLOC_KEEP", "1") == "0":
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt, macOS neither)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_MB << 20)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_MB << 20))
