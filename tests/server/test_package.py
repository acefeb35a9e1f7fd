"""What importing the server package does before any of its modules load numpy or allocate."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from server.allocator import keep_freed_memory

ROOT = Path(__file__).resolve().parents[2]
THREADS = "import glob, server.store.repository; print(len(glob.glob('/proc/self/task/*')))"


def _threads_after_import(env: dict[str, str]) -> int:
    done = subprocess.run(
        [sys.executable, "-c", THREADS], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return int(done.stdout)


def test_the_server_runs_without_blas_helper_threads() -> None:
    """No BLAS call is made, so numpy's OpenBLAS is asked for one thread: no helpers spinning at startup."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    assert _threads_after_import(env) == 1


REUSE = """
import resource, numpy as np, server
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
counts = []
for _ in range(3):
    before = faults()
    block = np.ones(3_000_000)  # 24 MB: past glibc's default mmap threshold, below the server's
    del block
    counts.append(faults() - before)
print(*counts)
"""


def test_freed_arrays_are_reused_without_new_page_faults() -> None:
    """A freed 24 MB array's pages serve the next one: no fresh pages (and faults) for every profile's arrays."""
    done = subprocess.run(
        [sys.executable, "-c", REUSE], cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, check=True
    )
    first, *later = (int(n) for n in done.stdout.split())
    pages = 24_000_000 // 4096
    assert first > 0
    assert all(n < pages // 100 for n in later), (first, later)


def test_the_allocator_setting_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STACKYARD_MALLOC_KEEP", "0")
    assert keep_freed_memory() is False
    monkeypatch.setenv("STACKYARD_MALLOC_KEEP", "1")
    assert keep_freed_memory() is True  # this machine's C library is glibc
