"""bench/fleet.py keeps working: its smoke run on a database of the session's PostgreSQL.

Three real ``stackyard serve`` replicas scrape 30 loopback targets every 3 s for
an 8 s window. What is checked is what the benchmark reports, not its speed:
the shares add up to the fleet, profiles are stored at about the scheduled rate
(a busy machine may drop a few), no scrape fails, and the per-profile costs the
extrapolation multiplies are measured.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.support.pgserver import PostgresServer
from tests.support.tools import ROOT


@pytest.mark.postgres
@pytest.mark.timeout(240)
def test_the_quick_fleet_run_reports_shares_rates_and_costs(
    postgres: PostgresServer, postgres_template: str, tmp_path: Path
) -> None:
    name = f"fleet_{uuid.uuid4().hex[:12]}"
    url = postgres.create_database(name, template=postgres_template)
    try:
        out = tmp_path / "fleet.json"
        finished = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "fleet.py"), "--quick", "--database-url", url, "--json", str(out)],
            check=False,
            capture_output=True,
            text=True,
            timeout=200,
        )
        assert finished.returncode == 0, finished.stdout + finished.stderr
    finally:
        postgres.drop_database(name)
    result = json.loads(out.read_text())
    shares = [replica["share"] for replica in result["replicas"]]
    assert len(shares) == 3 and sum(shares) == 30, shares
    assert all(replica["failed"] == 0 for replica in result["replicas"]), result["replicas"]
    assert 0.5 * result["expected_per_s"] <= result["stored_per_s"] <= 1.2 * result["expected_per_s"], result
    assert result["server_cpu_per_profile_s"] > 0 and result["postgres_cpu_per_profile_s"] > 0
    assert result["bytes_per_profile"] > 0 and result["commits_per_s"] > 0
    assert [row["instances"] for row in result["extrapolated"]] == [1_000, 10_000, 100_000]
    assert "extrapolated from the per-profile costs" in finished.stdout
