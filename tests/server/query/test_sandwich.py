"""The sandwich view equals ``go tool pprof``: flat and cum as ``-top``, direct callers and callees as ``-peek``.

On the demo capture every function is checked; on the production-sized
profile the function that recurses through 200 others (``work.Run``) and the
30 largest by cum. SQLite and PostgreSQL both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.helpers import push
from tests.support.oracle import PprofPeek, pprof_peek, pprof_top
from tests.support.tools import DATA

pytestmark = pytest.mark.dates

RUN = "stackyard.example/bigservice/internal/work.Run"


def _sandwich(client: TestClient, function: str, **params: str) -> dict[str, Any]:
    query = {"type": "cpu", "sample": "cpu", "from": "0", "to": "now+1h", "function": function, "max_nodes": "100000"}
    query.update(params)
    response = client.get("/api/v1/sandwich", params=query)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _children(side: dict[str, Any]) -> dict[str, int]:
    """The root's children: name -> total (level 1 of the flame graph format)."""
    if len(side["levels"]) < 2:
        return {}
    level = side["levels"][1]
    return {side["names"][level[i + 3]]: level[i + 1] for i in range(0, len(level), 4)}


def _check(body: dict[str, Any], expected: PprofPeek) -> None:
    name = body["function"]
    assert (body["flat"], body["cum"]) == (expected.flat, expected.cum), name
    assert body["callees"]["total"] == body["callers"]["total"] == expected.cum, name
    assert body["callees"]["names"][0] == body["callers"]["names"][0] == name
    assert body["callees"]["levels"][0][2] == expected.flat, "the callees' root self is the flat"
    assert _children(body["callers"]) == expected.callers, name
    assert _children(body["callees"]) == expected.callees, name


def test_every_function_of_the_demo_capture_equals_pprof_peek(client: TestClient) -> None:
    push(client, DATA / "cpu.pb.gz")
    expected = pprof_peek([DATA / "cpu.pb.gz"], "cpu", "nanoseconds", ".")
    assert "main.fib" in expected and len(expected) > 30
    for name, peek in expected.items():
        _check(_sandwich(client, name), peek)
    fib = _sandwich(client, "main.fib")
    assert _children(fib["callees"]) == {}, "fib calling fib is one frame, as pprof has no fib -> fib edge"


def test_the_production_sized_profile_equals_pprof_peek(client: TestClient) -> None:
    push(client, DATA / "big_cpu.pb.gz")
    top = pprof_top([DATA / "big_cpu.pb.gz"], "cpu", "nanoseconds")
    largest = sorted(top.rows, key=lambda name: -top.rows[name][1])[:30]
    pattern = (
        "^("
        + "|".join(
            name.replace(".", r"\.").replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")
            for name in {RUN, *largest}
        )
        + ")$"
    )
    expected = pprof_peek([DATA / "big_cpu.pb.gz"], "cpu", "nanoseconds", pattern)
    assert RUN in expected and len(expected) >= 30
    for name, peek in expected.items():
        _check(_sandwich(client, name), peek)
    run = _sandwich(client, RUN)
    assert sum(_children(run["callers"]).values()) > run["cum"], "recursion: a sample counts under each caller"


def test_node_limit_applies_after_the_sandwich(client: TestClient) -> None:
    """Truncating the tree first would lose callers; the limit only folds what is drawn."""
    push(client, DATA / "big_cpu.pb.gz")
    full = _sandwich(client, RUN, max_nodes="100000")
    small = _sandwich(client, RUN, max_nodes="20")
    assert not full["callers"]["truncated"] and small["callers"]["truncated"]
    assert small["callers"]["nodes"] <= 1 + 20 + 21  # the root, 20 nodes, at most one "other" under each
    kept = _children(small["callers"])
    folded = kept.pop("other", 0)
    everything = _children(full["callers"])
    assert all(everything[name] == value for name, value in kept.items())
    assert sum(kept.values()) + folded == sum(everything.values())
    assert (small["flat"], small["cum"]) == (full["flat"], full["cum"])


def test_filters_apply_before_the_sandwich(client: TestClient) -> None:
    push(client, DATA / "cpu.pb.gz")
    filters = {"focus": "checkout"}
    body = _sandwich(client, "main.cpuHogA", **filters)
    expected = pprof_peek([DATA / "cpu.pb.gz"], "cpu", "nanoseconds", r"^main\.cpuHogA$", ("-focus=checkout",))
    _check(body, expected["main.cpuHogA"])
    gone = _sandwich(client, "main.cpuHogA", ignore="cpuHogA")
    assert (gone["flat"], gone["cum"]) == (0, 0)
    assert gone["callers"]["levels"] == gone["callees"]["levels"] == [[0, 0, 0, 0]]


def test_an_unknown_function_is_a_404_naming_it(client: TestClient, tmp_path: Path) -> None:
    push(client, DATA / "cpu.pb.gz")
    params = {"type": "cpu", "from": "0", "to": "now+1h"}
    response = client.get("/api/v1/sandwich", params={**params, "function": "main.nosuch"})
    assert response.status_code == 404
    assert "main.nosuch" in response.json()["error"]
    response = client.get("/api/v1/sandwich", params=params)
    assert response.status_code == 400
    assert response.json()["error"].startswith("function: required")
