"""What importing the server package does before any of its modules load numpy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
