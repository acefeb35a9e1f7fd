"""An average is never called a total: the CLI's top line says "average per profile" for snapshot kinds.

The pages' wording is checked in the browser (tests/web/test_web_fleet.py); this is the
same rule for ``stackyard query top``, against the API's own answer.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from stackyard.cli import build_parser
from stackyard.querycli import run
from tests.support.helpers import push
from tests.support.oracle import pprof_top
from tests.support.tools import DATA

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)


def test_goroutine_top_says_average_per_profile(client: TestClient, capsys: pytest.CaptureFixture[str]) -> None:
    goroutines = DATA / "goroutine.pb.gz"
    push(client, goroutines, label="instance=a:1", time="1000")
    push(client, goroutines, label="instance=b:1", time="1001")
    args = build_parser().parse_args(["query", "top", "--type", "goroutine", "--from", "0", "--to", "3000"])
    assert run(args, client) == 0
    first = capsys.readouterr().out.splitlines()[0]
    answer = client.get("/api/v1/top", params={"type": "goroutine", "from": "0", "to": "3000"}).json()
    assert answer["aggregation"] == "avg" and answer["profiles"] == 2
    # two instances with the same count: the fleet has twice as many; the line gives the per-profile average
    per_profile = pprof_top([goroutines], "goroutine", "count").total
    assert answer["total"] == per_profile
    assert first == f"goroutine goroutine (avg) over 2 profiles, average per profile {per_profile}"
    assert "total" not in first
