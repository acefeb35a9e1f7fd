"""Config-file targets are checked against the network policy when the file is loaded, not first when scraped.

The commands run as real processes on real config files; names are resolved
by the real resolver (``localhost``), and 127.0.0.0/8 on the deny list stands
in for a network a test machine cannot reach, as in tests/server/network/test_safe_scraping.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from server.config.filesd import FileSDWatcher
from server.config.load import load_config
from server.config.problems import ConfigError
from server.network.policy import NetworkPolicy
from tests.stackyard.test_processes import stackyard
from tests.support.pgserver import free_port

LOOPBACK_DENIED = '["169.254.0.0/16", "fe80::/10", "127.0.0.0/8", "::1/128"]'
#: RFC 6761: names under .invalid never resolve.
UNRESOLVABLE = "not-yet-deployed.invalid:6060"


def write_config(directory: Path, *targets: str) -> Path:
    listed = ", ".join(f"'{t}'" for t in targets)
    path = directory / "stackyard.yaml"
    path.write_text(
        "scrape_configs:\n"
        "  - job_name: checkout\n"
        "    scrape_interval: 30s\n"
        "    static_configs:\n"
        f"      - targets: [{listed}]\n"
    )
    return path


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stackyard", *args],
        env={**os.environ, "STACKYARD_LOG_LEVEL": "WARNING", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_serve_refuses_a_metadata_target_before_starting(tmp_path: Path) -> None:
    config = write_config(tmp_path, "127.0.0.1:6060", "169.254.169.254:80")
    database = tmp_path / "db" / "s.db"
    result = run(["serve", "--port", "0", "--config", str(config)], {"STACKYARD_DATABASE_URL": f"sqlite:///{database}"})
    assert result.returncode == 2, result.stderr
    assert (
        f"stackyard: {config}:5: scrape_configs[0].static_configs[0].targets[1]: invalid target "
        "'169.254.169.254:80': refused: 169.254.169.254 is in the denied network 169.254.0.0/16"
    ) in result.stderr
    assert not database.exists()  # nothing migrated, nothing served
    assert "Traceback" not in result.stderr


def test_collect_refuses_a_name_resolving_into_a_denied_network(tmp_path: Path) -> None:
    config = write_config(tmp_path, "localhost:6060")
    result = run(
        [
            "collect",
            "--push-url",
            "http://127.0.0.1:1",
            "--listen",
            f"127.0.0.1:{free_port()}",
            "--config",
            str(config),
        ],
        {"STACKYARD_SCRAPE_DENY_NETWORKS": LOOPBACK_DENIED},
    )
    assert result.returncode == 2, result.stderr
    assert (
        f"{config}:5: scrape_configs[0].static_configs[0].targets[0]: invalid target 'localhost:6060': "
        "refused: localhost resolves to 127.0.0.1, which is in the denied network 127.0.0.0/8"
    ) in result.stderr
    # The same file under the default policy is fine: loopback is not denied unless the operator says so.
    assert load_config(config, NetworkPolicy()).targets[0].url == "http://localhost:6060"


def test_serve_denied_name_and_address_are_reported_together(tmp_path: Path) -> None:
    config = write_config(tmp_path, "localhost:6060", "http://[::ffff:169.254.169.254]:80", "2852039166:80")
    result = run(
        ["serve", "--port", "0", "--config", str(config)],
        {"STACKYARD_DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}", "STACKYARD_SCRAPE_DENY_NETWORKS": LOOPBACK_DENIED},
    )
    assert result.returncode == 2
    problems = {  # key path -> its line
        found.group(0): line
        for line in result.stderr.splitlines()
        if "invalid target" in line and (found := re.search(r"scrape_configs\S+(?=:)", line))
    }
    assert len(problems) == 3, result.stderr
    at = "scrape_configs[0].static_configs[0].targets"
    assert "invalid target 'localhost:6060': refused: localhost resolves to 127.0.0.1" in problems[f"{at}[0]"]
    assert "169.254.169.254 is in the denied network 169.254.0.0/16" in problems[f"{at}[1]"]
    assert "169.254.169.254 is in the denied network 169.254.0.0/16" in problems[f"{at}[2]"]


@pytest.mark.timeout(120)
def test_allowed_and_unresolvable_targets_still_start(tmp_path: Path) -> None:
    config = write_config(tmp_path, "localhost:6060", UNRESOLVABLE)
    port = free_port()
    env = {"STACKYARD_DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}"}
    with stackyard(
        ["serve", "--port", str(port), "--config", str(config)], env, f"http://127.0.0.1:{port}/readyz"
    ) as process:
        import httpx

        targets = httpx.get(f"http://127.0.0.1:{port}/api/v1/targets", timeout=10).json()["targets"]
        assert sorted(t["url"] for t in targets) == ["http://localhost:6060", f"http://{UNRESOLVABLE}"]
    assert process.stderr is not None
    log = process.stderr.read()
    assert "config target does not resolve now" in log and "not-yet-deployed.invalid" in log


def test_without_a_policy_loading_only_checks_the_shape(tmp_path: Path) -> None:
    # Tools reading a config (fuzzing, compose checks) pass no policy and resolve nothing.
    config = write_config(tmp_path, "169.254.169.254:80")
    assert load_config(config).targets[0].url == "http://169.254.169.254:80"
    with pytest.raises(ConfigError, match=r"refused: 169\.254\.169\.254 is in the denied network"):
        load_config(config, NetworkPolicy())


def test_file_sd_targets_written_as_denied_addresses_are_refused(tmp_path: Path) -> None:
    (tmp_path / "targets").mkdir()
    (tmp_path / "targets" / "a.yaml").write_text("- targets: ['10.1.2.3:6060', '169.254.169.254:80']\n")
    config = tmp_path / "stackyard.yaml"
    config.write_text("scrape_configs:\n  - job_name: sd\n    file_sd_configs:\n      - files: ['targets/*.yaml']\n")
    loaded = load_config(config, NetworkPolicy())
    watcher = FileSDWatcher(loaded.file_sd[0])
    assert watcher.poll() == []  # all or nothing: the file with a refused target contributes none
    (error,) = watcher.errors.values()
    assert "targets[1]: invalid target '169.254.169.254:80': refused: 169.254.169.254 is in the denied network" in error
    # Without a policy (as before) the same file is read; the guard would refuse the address at connect time.
    assert len(FileSDWatcher(load_config(config).file_sd[0]).poll() or []) == 2
