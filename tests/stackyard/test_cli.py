"""The ``stackyard`` command as a user runs it: real subprocesses against a real ``stackyard serve`` process.

The server runs in its own directory on a relative SQLite path (``./data``, the
default); every command runs from another directory, as an SRE does from their
home. ``targets`` and ``ingest`` ask the server's API (the server is the one
writer), with the token from ``STACKYARD_API_TOKEN`` (the server has access
control on).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.auth.tokens import digest
from tests.support.fleet import closed_port_url
from tests.support.pgserver import free_port
from tests.support.procs import stackyard, status, wait_for
from tests.support.tools import DATA

TOKEN = "sy_cli_test_token"

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)


@dataclass
class Server:
    url: str
    home: Path  # where the server runs (its ./data)
    elsewhere: Path  # where the commands run

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        extra = {"STACKYARD_URL": self.url, "STACKYARD_API_TOKEN": TOKEN, "STACKYARD_LOG_LEVEL": "WARNING"}
        base = {k: v for k, v in os.environ.items() if not k.startswith("STACKYARD_")}
        return subprocess.run(
            [sys.executable, "-m", "stackyard", *args],
            capture_output=True,
            text=True,
            env={**base, **extra, **(env or {})},
            cwd=self.elsewhere,
            timeout=120,
            check=False,
        )

    def api(self, path: str, **params: str) -> Any:
        response = httpx.get(self.url + path, params=params, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("server-home")
    elsewhere = tmp_path_factory.mktemp("somewhere-else")
    port = free_port()
    tokens = [{"name": "cli", "scopes": ["read", "ingest", "admin"], "sha256": digest(TOKEN)}]
    env = {
        # The default relative path, resolved in the server's directory only.
        "STACKYARD_DATABASE_URL": "sqlite:///./data/stackyard.db",
        "STACKYARD_AUTH_TOKENS": json.dumps(tokens),
        # Captures keep their own times (2026-11-27) on any date; "older than" is tested with an older time.
        "STACKYARD_RETENTION_RAW": "36500d",
        "STACKYARD_SCRAPE_SYNC_INTERVAL": "1",
    }
    url = f"http://127.0.0.1:{port}"
    with stackyard(["serve", "--port", str(port)], env, cwd=home) as process:
        wait_for(lambda: status(f"{url}/readyz") == 200, 60, "the server", process)
        yield Server(url, home, elsewhere)


def test_targets_go_to_the_running_server_from_any_directory(server: Server) -> None:
    added = server.run("targets", "add", "http://127.0.0.1:6060", "--service", "checkout", "--label", "env=prod")
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("added target ")
    target_id = int(added.stdout.split()[2].rstrip(":"))
    # The server sees it: the bug was a second, empty database beside the command.
    (stored,) = [t for t in server.api("/api/v1/targets")["targets"] if t["id"] == target_id]
    assert (stored["url"], stored["service"], stored["labels"]) == (
        "http://127.0.0.1:6060",
        "checkout",
        {"env": "prod"},
    )
    assert not (server.elsewhere / "data").exists()
    assert (server.home / "data" / "stackyard.db").exists()

    listed = server.run("targets", "list")
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.split()[0] == str(target_id))
    assert "checkout" in row and "http://127.0.0.1:6060" in row and " api " in row

    # A pasted pprof URL is scraped at /debug/pprof/<kind>, not /debug/pprof/debug/pprof/<kind>.
    pasted = server.run("targets", "add", "http://127.0.0.1:6061/debug/pprof/", "--service", "search")
    assert pasted.returncode == 0, pasted.stderr
    assert "http://127.0.0.1:6061 (service search); scraped at http://127.0.0.1:6061/debug/pprof/..." in pasted.stdout
    profile_url = server.run("targets", "add", "http://127.0.0.1:6062/debug/pprof/heap", "--service", "x")
    assert profile_url.returncode == 2
    assert profile_url.stderr.strip() == (
        "stackyard: 422: url: http://127.0.0.1:6062/debug/pprof/heap is the URL of one profile; give the service's "
        "base URL (http://127.0.0.1:6062): every profile kind is scraped under it, at path_prefix /debug/pprof/"
    )

    # Named by id or by URL (as pasted, too); pause, resume, show, remove.
    assert server.run("targets", "pause", str(target_id)).stdout.strip() == f"paused target {target_id}"
    assert server.api(f"/api/v1/targets/{target_id}")["paused"] is True
    resumed = server.run("targets", "resume", "http://127.0.0.1:6060/")
    assert resumed.stdout.strip() == f"resumed target {target_id}", resumed.stderr
    assert server.api(f"/api/v1/targets/{target_id}")["paused"] is False
    shown = server.run("targets", "show", "http://127.0.0.1:6061/debug/pprof", "--service", "search")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("target ") and "http://127.0.0.1:6061/debug/pprof (service search)" in shown.stdout
    assert "  heap " in shown.stdout
    removed = server.run("targets", "remove", "http://127.0.0.1:6061/debug/pprof/")
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.strip().endswith("http://127.0.0.1:6061 (service search)")
    assert server.run("targets", "remove", str(target_id)).returncode == 0
    assert {t["id"] for t in server.api("/api/v1/targets")["targets"]}.isdisjoint({target_id})

    # The server's refusals are one line and a non-zero exit; so is naming a target that is not there.
    bad = server.run("targets", "add", "ftp://x", "--service", "s")
    assert (bad.returncode, bad.stderr) == (2, "stackyard: 422: url: scheme 'ftp' is not allowed; use http or https\n")
    missing = server.run("targets", "remove", "999999")
    assert missing.returncode == 2
    assert missing.stderr == "stackyard: no target with id 999999; `stackyard targets list` shows them\n"


def test_ingest_files_through_the_api_and_a_retry_stores_nothing_twice(server: Server) -> None:
    files = [str(DATA / "cpu.pb.gz"), str(DATA / "heap.pb.gz")]
    args = ["ingest", *files, "--service", "cli", "--label", "env=ci", "--time", "now"]
    first = server.run(*args)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.strip().splitlines()
    assert len(lines) == 2
    assert "cpu.pb.gz: stored profile " in lines[0] and "(cpu, " in lines[0]
    assert "heap.pb.gz: stored profile " in lines[1] and "(heap, " in lines[1]
    ids = [int(line.split("stored profile ")[1].split()[0]) for line in lines]
    # The same command again (a retry after a lost answer): the same profiles, none stored twice.
    again = server.run(*args)
    assert again.returncode == 0, again.stderr
    assert [int(line.split("already stored as profile ")[1].split()[0]) for line in again.stdout.splitlines()] == ids
    stored = server.api("/api/v1/profiles", type="cpu", query='{service="cli"}', **{"from": "now-1h", "to": "now+1h"})
    assert [p["id"] for p in stored["profiles"]] == ids[:1]
    assert stored["profiles"][0]["labels"] == {"service": "cli", "env": "ci"}

    # Without --time a capture keeps its own time (2026-11-27T01:19:45.611041Z); with one, it takes that.
    own = server.run("ingest", str(DATA / "cpu.pb.gz"), "--service", "cli-own")
    assert own.returncode == 0, own.stderr
    assert "2026-11-27T01:19:45.611041Z" in own.stdout
    given = server.run("ingest", str(DATA / "cpu.pb.gz"), "--service", "cli-own", "--time", "1800000000")
    assert given.returncode == 0, given.stderr
    assert "2027-01-15T08:00:00Z" in given.stdout and "stored profile" in given.stdout


def test_ingest_refusals_name_the_file_and_the_option(server: Server, tmp_path: Path) -> None:
    too_old = server.run("ingest", str(DATA / "cpu.pb.gz"), "--service", "cli", "--time", "1900-01-01T00:00:00Z")
    assert too_old.returncode == 1
    assert "cpu.pb.gz: time: 1900-01-01T00:00:00Z is older than the raw retention (36500d)" in too_old.stderr
    assert "--time (now, RFC 3339 or Unix seconds)" in too_old.stderr and "time=" not in too_old.stderr
    bad_time = server.run("ingest", str(DATA / "cpu.pb.gz"), "--service", "cli", "--time", "last tuesday")
    assert bad_time.returncode == 2
    assert "--time: 'last tuesday' is not RFC 3339" in bad_time.stderr
    # Past what 64-bit nanoseconds hold: refused, not a database error later.
    late = server.run("ingest", str(DATA / "cpu.pb.gz"), "--service", "cli", "--time", "2300-01-01T00:00:00Z")
    assert late.returncode == 2
    assert "'2300-01-01T00:00:00Z' is out of range (years 1678 to 2261)" in late.stderr

    garbage = tmp_path / "garbage.pb.gz"
    garbage.write_bytes(b"\x1f\x8bnot really gzip")
    mixed = server.run(
        "ingest", str(garbage), str(tmp_path / "missing.pb.gz"), str(DATA / "goroutine.pb.gz"), "--service", "cli"
    )
    assert mixed.returncode == 1
    assert "garbage.pb.gz: decompressing profile" in mixed.stderr
    assert "missing.pb.gz: cannot read" in mixed.stderr
    assert "Traceback" not in mixed.stderr
    assert "goroutine.pb.gz: stored profile " in mixed.stdout


def test_a_server_that_is_not_there_or_refuses_the_token(server: Server) -> None:
    nobody = closed_port_url()
    commands = (["targets", "list"], ["ingest", str(DATA / "cpu.pb.gz"), "--service", "x"], ["query", "top"])
    for args in commands:
        extra = ["--type", "cpu"] if args[0] == "query" else []
        result = server.run(*args, *extra, "--server", nobody)
        assert result.returncode == 3, (args, result.stderr)
        assert result.stderr == (
            f"stackyard: cannot reach the Stackyard server at {nobody} (connection refused); is `stackyard serve` "
            "running there? Name another with --server URL or STACKYARD_URL\n"
        )
    # STACKYARD_URL names the server when --server is not given.
    via_env = server.run("targets", "list", env={"STACKYARD_URL": nobody})
    assert via_env.returncode == 3 and nobody in via_env.stderr
    # Without the token, the server's 401 in one line.
    anonymous = server.run("targets", "list", env={"STACKYARD_API_TOKEN": ""})
    assert anonymous.returncode == 2
    assert anonymous.stderr.startswith("stackyard: 401: ") and len(anonymous.stderr.splitlines()) == 1
    # There is no direct-to-database mode: the server is the one writer.
    direct = server.run("targets", "list", "--database-url", "sqlite:///x.db")
    assert direct.returncode == 2
    assert "asks a running server and opens no database" in direct.stderr
    assert not (server.elsewhere / "x.db").exists()


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
    result = subprocess.run(
        [sys.executable, "-m", "stackyard", "ingest", str(DATA / "cpu.pb.gz"), "--service", "x", "--type", "wall"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "invalid choice: 'wall'" in result.stderr
