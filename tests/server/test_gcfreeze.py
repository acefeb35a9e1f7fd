"""Start-up objects are kept out of full garbage collections once a server process has started."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
print(before, frozen, again)
"""


def _started(tmp_path: Path, freeze: str) -> list[int]:
    env = dict(os.environ, STACKYARD_GC_FREEZE=freeze)
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
    before, frozen, again = _started(tmp_path, "1")
    assert before == 0
    assert frozen > 50_000  # the imported frameworks' and the app's objects
    # A second app in the same process does not freeze again: its objects stay collectable, and the frozen
    # count only falls (as the first app's frozen objects are freed by reference counting).
    assert again <= frozen


def test_the_freeze_can_be_turned_off(tmp_path: Path) -> None:
    assert _started(tmp_path, "0") == [0, 0, 0]
