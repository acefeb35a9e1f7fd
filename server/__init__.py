"""Stackyard: a continuous profiling server for Go fleets.

OpenBLAS, which numpy loads, starts a helper thread per core at import and
spins them a while (~40-90 ms of CPU a process on 2 cores, more on a large
machine, and in every ingest worker process). The server makes no BLAS call
(its numpy work is integer indexing, sorting and sums), so it asks for one
thread; this package is imported before any server module imports numpy.
A value the operator set stands.

Freed arrays stay in the process for reuse rather than going back to the
system page by page (:mod:`server.allocator`).
"""

import os

from server.allocator import keep_freed_memory

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
keep_freed_memory()

__version__ = "0.1.0"
