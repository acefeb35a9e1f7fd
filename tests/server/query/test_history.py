"""A function's flat and cum over time, equal to go tool pprof on each step's profiles."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from server.store.repository import Store
from server.store.rollups import NS
from server.upkeep.jobs import build_rollups
from tests.support.helpers import push
from tests.support.oracle import pprof_top
from tests.support.tools import DATA

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)

T0 = 1_790_000_000 - 1_790_000_000 % 86_400
NORMAL, SLOW = DATA / "cpu.pb.gz", DATA / "cpu_slow.pb.gz"
# Two hours at normal speed, then a "deploy" that makes main.mix slower.
TIMELINE = [(0, NORMAL), (1200, NORMAL), (3600, NORMAL), (4800, NORMAL), (7200, SLOW), (8400, SLOW)]


def test_history_shows_when_a_function_got_slower(client: TestClient, store: Store) -> None:
    for offset, path in TIMELINE:
        push(client, path, time=str(T0 + offset))
    params = {"type": "cpu", "sample": "cpu", "from": str(T0), "to": str(T0 + 3 * 3600 - 1), "step": "1h"}
    raw = client.get("/api/v1/functions/main.mix/history", params=params).json()
    build_rollups(store, now_ns=(T0 + 86_400) * NS)
    rolled = client.get("/api/v1/functions/main.mix/history", params=params).json()
    assert rolled == raw
    for hour, (time_s, flat, cum) in enumerate(raw["points"]):
        assert time_s == T0 + hour * 3600
        files = [path for offset, path in TIMELINE if hour * 3600 <= offset < (hour + 1) * 3600]
        expected = pprof_top(files, "cpu", "nanoseconds").rows.get("main.mix", (0, 0))
        assert (flat, cum) == expected
    assert raw["points"][2][1] > 2 * raw["points"][0][1], "the slow deploy shows as a step up"
    recursive = client.get("/api/v1/functions/main.fib/history", params=params).json()
    for hour, (_, flat, cum) in enumerate(recursive["points"]):
        files = [path for offset, path in TIMELINE if hour * 3600 <= offset < (hour + 1) * 3600]
        assert (flat, cum) == pprof_top(files, "cpu", "nanoseconds").rows["main.fib"], "recursion counts once"


def test_unknown_function_is_404(client: TestClient) -> None:
    push(client, NORMAL)
    response = client.get("/api/v1/functions/main.nothing/history", params={"type": "cpu"})
    assert response.status_code == 404
    assert "no function named 'main.nothing'" in response.json()["error"]
