"""Finding the real tools tests depend on (Go, PostgreSQL), and failing loudly in CI when one is missing.

On a developer's machine a missing tool skips the test with the reason; with
``STACKYARD_STRICT=1`` (set by CI) it is a failure, so CI can never pass by
skipping the tests that matter.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"


def strict() -> bool:
    return os.environ.get("STACKYARD_STRICT", "") not in ("", "0", "false")


def missing(reason: str) -> None:
    """Skip (or, under STACKYARD_STRICT, fail) because a real part is not installed."""
    if strict():
        pytest.fail(f"STACKYARD_STRICT=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def go_binary() -> str:
    found = shutil.which("go") or ("/usr/lib/go/bin/go" if Path("/usr/lib/go/bin/go").exists() else None)
    if not found:
        missing("Go is not installed (apt-get install golang-go)")
    assert found is not None
    return found


def postgres_bindir() -> Path:
    candidates = [Path(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)]
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.insert(0, Path(on_path).resolve().parent)
    for candidate in candidates:
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    missing("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    raise AssertionError("unreachable")
