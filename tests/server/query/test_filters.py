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
        assert response.json()["error"].startswith(f"{name}: lookahead"), response.text


def test_a_filtered_export_reopens_as_pprof_filters_the_original(client: TestClient, tmp_path: Path) -> None:
    """The pprof download carries the filtered stacks: pprof's plain -top of it equals its filtered -top."""
    push(client, DATA / "cpu.pb.gz")
    for number, filters in enumerate([{"hide": "runtime", "focus": "main"}, {"show_from": r"cpuHogA|main\.every"}]):
        params = {"type": "cpu", "from": "0", "to": "now+1h", **filters}
        response = client.get("/api/v1/pprof", params=params)
        assert response.status_code == 200, response.text
        exported = tmp_path / f"filtered-{number}.pb.gz"
        exported.write_bytes(response.content)
        expected = pprof_top([DATA / "cpu.pb.gz"], "cpu", "nanoseconds", extra=_flags(filters))
        again = pprof_top([exported], "cpu", "nanoseconds")
        assert again.total == expected.shown
        assert again.rows == expected.rows


def test_a_filtered_diff_equals_pprof_diff_base(client: TestClient) -> None:
    base, new = DATA / "cpu.pb.gz", DATA / "cpu_slow.pb.gz"
    push(client, base, time="1000")
    push(client, new, time="2000")
    for filters in [{"focus": "main", "hide": r"main\.step"}, {"ignore": "fib", "show_from": r"main\.every"}]:
        params = {"type": "cpu", "sample": "cpu", "from": "1500", "to": "2500", "base_from": "500", "base_to": "1500"}
        body = client.get("/api/v1/diff", params={**params, **filters}).json()
        expected = pprof_top([new], "cpu", "nanoseconds", diff_base=[base], extra=_flags(filters))
        assert body["base_total"] == expected.total
        changes = {r["name"]: (r["flat_change"], r["cum_change"]) for r in body["rows"]}
        assert {k: v for k, v in changes.items() if v != (0, 0)} == expected.rows
