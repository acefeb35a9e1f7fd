"""Frame filters (focus, ignore, hide, show, show_from) equal ``go tool pprof``'s, on SQLite and PostgreSQL.

Each case runs ``go tool pprof -top`` with the same flags on the same file:
every row's flat and cum, the total (pprof keeps dividing by the unfiltered
one) and what the filters kept ("accounting for") must be equal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.helpers import push
from tests.support.oracle import pprof_top
from tests.support.tools import DATA

pytestmark = pytest.mark.dates

# (file, filters): single filters, a file-name match, and the combinations whose order matters.
CPU_CASES: list[dict[str, str]] = [
    {"focus": "runtime"},  # unanchored: runtime.futex and runtime/pprof alike
    {"ignore": "runtime"},
    {"focus": r"proc\.go"},  # a file name only
    {"focus": "main", "ignore": "fib"},
    {"hide": "runtime"},  # runtime-only stacks become empty and go
    {"hide": r"main\.step"},  # an inlined frame: its caller becomes flat
    {"show": "runtime"},
    {"show": r"main\.go$"},
    {"show_from": r"cpuHogA|main\.every"},  # root-most match: the frames between stay
    {"show_from": "nomatch"},
    {"focus": r"main\.step", "hide": r"main\.step"},  # focus sees hidden frames
    {"show_from": r"main\.every", "hide": r"main\.every"},  # show_from comes after hide
    {"focus": "fib", "show_from": "fib"},  # recursion cut at its root-most frame
]
BIG_CASES: list[dict[str, str]] = [
    {"focus": "codec/"},  # in file names only
    {"ignore": r"platform\."},
    {"hide": r"platform\.|runtime"},
    {"show": "internal/(storage|codec)"},
    {"show_from": r"storage\."},
    {"focus": "storage", "ignore": "Mix", "hide": "codec", "show_from": "Reader"},
]


def _flags(filters: dict[str, str]) -> tuple[str, ...]:
    return tuple(f"-{name}={pattern}" for name, pattern in filters.items())


def _check(client: TestClient, path: Path, filters: dict[str, str]) -> None:
    params = {"type": "cpu", "from": "0", "to": "now+1h", "sample": "cpu", **filters}
    response = client.get("/api/v1/top", params=params)
    assert response.status_code == 200, response.text
    ours: dict[str, Any] = response.json()
    expected = pprof_top([path], "cpu", "nanoseconds", extra=_flags(filters))
    assert ours["total"] == expected.total, filters
    assert ours["shown"] == expected.shown, filters
    assert {r["name"]: (r["flat"], r["cum"]) for r in ours["rows"]} == expected.rows, filters


def test_filters_equal_pprof_on_the_demo_capture(client: TestClient) -> None:
    push(client, DATA / "cpu.pb.gz")
    for filters in CPU_CASES:
        _check(client, DATA / "cpu.pb.gz", filters)


def test_filters_equal_pprof_on_the_production_sized_profile(client: TestClient) -> None:
    push(client, DATA / "big_cpu.pb.gz")
    for filters in BIG_CASES:
        _check(client, DATA / "big_cpu.pb.gz", filters)


def test_a_filtered_flame_graph_is_whole(client: TestClient) -> None:
    """The root is what the filters kept, and its children add up to it."""
    push(client, DATA / "cpu.pb.gz")
    params = {"type": "cpu", "from": "0", "to": "now+1h", "focus": r"main\.fib"}
    graph = client.get("/api/v1/flamegraph", params=params).json()
    top = client.get("/api/v1/top", params=params).json()
    assert graph["total"] == top["shown"] < top["total"]
    first = graph["levels"][1]
    assert sum(first[i + 1] for i in range(0, len(first), 4)) == graph["total"]
    assert "main.fib" in graph["names"] and "main.cpuHogA" not in graph["names"]


@pytest.mark.parametrize("name", ["focus", "ignore", "hide", "show", "show_from"])
def test_a_bad_pattern_is_refused_naming_its_parameter(client: TestClient, name: str) -> None:
    for route in ("top", "flamegraph", "pprof", "diff", "sandwich"):
        params = {"type": "cpu", "from": "0", "to": "now", "function": "main.fib", name: "(?=x)"}
        response = client.get(f"/api/v1/{route}", params=params)
        assert response.status_code == 400, (route, response.text)
        assert response.json()["detail"].startswith(f"{name}: lookahead"), response.text
