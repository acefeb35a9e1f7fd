"""The ``stackyard`` command as a user runs it: real subprocesses, a real SQLite file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.tools import DATA


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "STACKYARD_DATABASE_URL": f"sqlite:///{tmp_path / 'db' / 's.db'}",
        "STACKYARD_LOG_LEVEL": "WARNING",
    }
    return subprocess.run(
        [sys.executable, "-m", "stackyard", *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def test_ingest_files(tmp_path: Path) -> None:
    result = _run(
        ["ingest", str(DATA / "cpu.pb.gz"), str(DATA / "heap.pb.gz"), "--service", "cli", "--label", "env=ci"], tmp_path
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2
    assert "stored profile 1 (cpu," in lines[0]
    assert "stored profile 2 (heap," in lines[1]
    assert (tmp_path / "db" / "s.db").exists()


def test_bad_files_exit_non_zero_with_a_message(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pb.gz"
    garbage.write_bytes(b"\x1f\x8bnot really gzip")
    result = _run(
        ["ingest", str(garbage), str(tmp_path / "missing.pb.gz"), str(DATA / "cpu.pb.gz"), "--service", "cli"], tmp_path
    )
    assert result.returncode == 1
    assert "garbage.pb.gz: decompressing profile" in result.stderr
    assert "missing.pb.gz: cannot read" in result.stderr
    assert "Traceback" not in result.stderr
    assert "stored profile 1 (cpu," in result.stdout


def test_bad_setting_is_reported(tmp_path: Path) -> None:
    env_result = subprocess.run(
        [sys.executable, "-m", "stackyard", "migrate"],
        capture_output=True,
        text=True,
        env={**os.environ, "STACKYARD_DATABASE_URL": "mysql://nope"},
        timeout=60,
        check=False,
    )
    assert env_result.returncode == 2
    assert "invalid setting: database_url" in env_result.stderr


def test_unknown_type_is_a_usage_error(tmp_path: Path) -> None:
    result = _run(["ingest", str(DATA / "cpu.pb.gz"), "--service", "x", "--type", "wall"], tmp_path)
    assert result.returncode == 2
    assert "invalid choice: 'wall'" in result.stderr
