"""Start-up objects are kept out of full garbage collections once a server process has started, and full
collections come less often than Python's default."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from server.gcfreeze import space_full_collections
from server.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
STARTED = """
import gc, sys
from fastapi.testclient import TestClient
from server.app import create_app
from server.migrate import upgrade
from server.settings import Settings
url = "sqlite:///" + sys.argv[1]
upgrade(url)
before = gc.get_freeze_count()
with TestClient(create_app(Settings(database_url=url))) as client:
    assert client.get("/healthz").status_code == 200
    frozen = gc.get_freeze_count()
with TestClient(create_app(Settings(database_url=url))):
    again = gc.get_freeze_count()
print(before, frozen, again, *gc.get_threshold())
"""


def _started(tmp_path: Path, freeze: str, **settings: str) -> list[int]:
    """Freeze counts before, after one app and after a second one; then the collector's three thresholds."""
    env = {k: v for k, v in os.environ.items() if k != "STACKYARD_GC_FULL_COLLECTION_EVERY"}
    env.update(STACKYARD_GC_FREEZE=freeze, **settings)
    done = subprocess.run(
        [sys.executable, "-c", STARTED, str(tmp_path / "s.db")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return [int(n) for n in done.stdout.split()]


def test_a_started_server_freezes_its_start_up_objects_once(tmp_path: Path) -> None:
    before, frozen, again, *_ = _started(tmp_path, "1")
    assert before == 0
    assert frozen > 50_000  # the imported frameworks' and the app's objects
    # A second app in the same process does not freeze again: its objects stay collectable, and the frozen
    # count only falls (as the first app's frozen objects are freed by reference counting).
    assert again <= frozen


def test_the_freeze_can_be_turned_off(tmp_path: Path) -> None:
    assert _started(tmp_path, "0")[:3] == [0, 0, 0]


def test_a_started_server_spaces_its_full_collections(tmp_path: Path) -> None:
    # Python's default is (700, 10, 10): only the oldest generation's threshold moves.
    assert _started(tmp_path, "1")[3:] == [700, 10, 100]
    assert _started(tmp_path, "0", STACKYARD_GC_FULL_COLLECTION_EVERY="7")[3:] == [700, 10, 7]


def test_full_collections_cannot_be_switched_off() -> None:
    with pytest.raises(ValidationError, match="gc_full_collection_every"):
        Settings(gc_full_collection_every=0)
    threshold = gc.get_threshold()
    try:
        with pytest.raises(ValueError, match="at least one"):
            space_full_collections(0)
        assert gc.get_threshold() == threshold
        space_full_collections(50)
        assert gc.get_threshold() == (*threshold[:2], 50)
    finally:
        gc.set_threshold(*threshold)
