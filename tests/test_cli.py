"""The ``stackyard`` command as a user runs it: real subprocesses, a real SQLite file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.tools import DATA


def _run(args: list[str], tmp_path: Path, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "STACKYARD_DATABASE_URL": f"sqlite:///{tmp_path / 'db' / 's.db'}",
        "STACKYARD_LOG_LEVEL": "WARNING",
        **(extra or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "stackyard", *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def test_ingest_files(tmp_path: Path) -> None:
    result = _run(
        [
            "ingest",
            str(DATA / "cpu.pb.gz"),
            str(DATA / "heap.pb.gz"),
            "--service",
            "cli",
            "--label",
            "env=ci",
            "--time",
            "now",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2
    assert "stored profile 1 (cpu," in lines[0]
    assert "stored profile 2 (heap," in lines[1]
    assert (tmp_path / "db" / "s.db").exists()


def test_ingest_keeps_the_capture_time_unless_told_otherwise(tmp_path: Path) -> None:
    # cpu.pb.gz was captured at 2026-11-27T01:19:45.611041Z; a long retention keeps that time storable on any date.
    keep = {"STACKYARD_RETENTION_RAW": "36500d"}
    own = _run(["ingest", str(DATA / "cpu.pb.gz"), "--service", "cli"], tmp_path, keep)
    assert own.returncode == 0, own.stderr
    assert "2026-11-27T01:19:45.611041Z" in own.stdout
    given = _run(["ingest", str(DATA / "cpu.pb.gz"), "--service", "cli", "--time", "1800000000"], tmp_path, keep)
    assert given.returncode == 0, given.stderr
    assert "2027-01-15T08:00:00Z" in given.stdout


def test_a_capture_older_than_retention_is_refused_naming_the_option(tmp_path: Path) -> None:
    result = _run(["ingest", str(DATA / "cpu.pb.gz"), "--service", "cli", "--time", "2000-01-01T00:00:00Z"], tmp_path)
    assert result.returncode == 1
    assert "is older than the raw retention (7d)" in result.stderr
    assert "--time (now, RFC 3339 or Unix seconds)" in result.stderr
    assert "Traceback" not in result.stderr
    bad = _run(["ingest", str(DATA / "cpu.pb.gz"), "--service", "cli", "--time", "last tuesday"], tmp_path)
    assert bad.returncode == 2
    assert "--time: 'last tuesday' is not RFC 3339" in bad.stderr
    # Past what 64-bit nanoseconds hold: refused here, not a database error later.
    late = _run(["ingest", str(DATA / "cpu.pb.gz"), "--service", "cli", "--time", "2300-01-01T00:00:00Z"], tmp_path)
    assert late.returncode == 2
    assert "--time: '2300-01-01T00:00:00Z' is out of range (years 1678 to 2261)" in late.stderr


def test_bad_files_exit_non_zero_with_a_message(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pb.gz"
    garbage.write_bytes(b"\x1f\x8bnot really gzip")
    result = _run(
        [
            "ingest",
            str(garbage),
            str(tmp_path / "missing.pb.gz"),
            str(DATA / "cpu.pb.gz"),
            "--service",
            "cli",
            "--time",
            "now",
        ],
        tmp_path,
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
