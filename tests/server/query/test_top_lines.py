"""``GET /api/v1/top?granularity=lines`` equals ``go tool pprof -top -lines`` on the real captures, on both
databases: row names ``pkg.F file.go:123``, flat and cum per line with inlined frames as rows of their own and
recursion counted once per sample; profiles without line data are refused with the time line data starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from server.pprof.encode import encode
from server.pprof.model import Function, Line, Location, Profile, Sample, ValueType
from server.store.linevectors import SINCE, forget
from server.store.models import StoreState
from server.store.repository import Store
from server.store.rollups import NS
from server.upkeep.jobs import build_rollups
from tests.support.helpers import UNITS, push, top
from tests.support.oracle import pprof_top
from tests.support.tools import DATA

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)

CPU = [DATA / "cpu.pb.gz", DATA / "cpu2.pb.gz", DATA / "cpu_slow.pb.gz"]


def _lines(client: TestClient, **params: str) -> dict[str, object]:
    return top(client, **{"granularity": "lines", "query": '{service="demo"}', **params})


def _compare(ours: dict[str, object], files: list[Path], sample: str) -> None:
    expected = pprof_top(files, sample, UNITS[sample], extra=("-lines",))
    assert ours["total"] == expected.total
    rows = ours["rows"]
    assert isinstance(rows, list)
    by_label = {}
    marks = {}
    for row in rows:
        label = f"{row['name']} {row['file']}:{row['line']}" if row["line"] else row["name"]
        by_label[label] = (row["flat"], row["cum"])
        if row["inline"]:
            marks[label] = row["inline"]
    assert by_label == expected.rows
    assert marks == expected.marks  # pprof's "(inline)" and "(partial-inline)"
    flats = [abs(row["flat"]) for row in rows]
    assert flats == sorted(flats, reverse=True)


def test_lines_of_merged_cpu_profiles_equal_pprof(client: TestClient) -> None:
    for index, path in enumerate(CPU):
        push(client, path, label=f"instance=i{index}")
    for sample in ("samples", "cpu"):
        _compare(_lines(client, type="cpu", sample=sample), CPU, sample)
    one = _lines(client, type="cpu", sample="cpu", query='{service="demo", instance="i0"}')
    rows = {(r["name"], r["line"]): (r["flat"], r["cum"]) for r in one["rows"]}  # type: ignore[attr-defined]
    # Verified by hand against pprof: the inlined main.step has rows of its own, and main.fib's recursive
    # call site counts once per sample (its cum is the function's whole cum, not times the depth).
    assert rows[("main.step", 54)] == (110_000_000, 110_000_000)
    assert rows[("main.fib", 117)] == (70_000_000, 310_000_000)
    file = next(r["file"] for r in one["rows"] if r["name"] == "main.fib")  # type: ignore[attr-defined]
    assert file == "stackyard/examples/demo/main.go"


@pytest.mark.parametrize(
    ("kind", "samples"), [("heap", ["alloc_space", "inuse_objects"]), ("goroutine", ["goroutine"])]
)
def test_lines_of_other_kinds_equal_pprof(client: TestClient, kind: str, samples: list[str]) -> None:
    path = DATA / f"{kind}.pb.gz"
    push(client, path, type=kind)
    for sample in samples:
        _compare(_lines(client, type=kind, sample=sample, aggregation="sum"), [path], sample)


def test_profiles_without_line_data_are_refused_with_the_time(client: TestClient, store: Store) -> None:
    push(client, CPU[0])
    forget(store.engine)  # as migration 0015 leaves a store with older profiles
    with store.engine.begin() as conn:
        conn.execute(update(StoreState).where(StoreState.key == SINCE).values(value=1_764_000_000_000_000_000))
    store.reset_caches()
    response = client.get("/api/v1/top", params={"type": "cpu", "from": "0", "to": "now+1h", "granularity": "lines"})
    assert response.status_code == 409, response.text
    assert "no line data before 2025-11-24T16:00:00Z" in response.json()["error"]
    assert top(client, type="cpu")["rows"], "function granularity still answers"


def test_an_unknown_granularity_is_refused(client: TestClient) -> None:
    response = client.get("/api/v1/top", params={"type": "cpu", "granularity": "addresses"})
    assert 400 <= response.status_code < 500
    assert "granularity" in response.text


def test_rollups_answer_lines_as_raw_profiles_do(client: TestClient, store: Store) -> None:
    """Rollups keep sample keys, so a day of line data reads them and gives pprof's numbers."""
    day = 1_790_000_000 - 1_790_000_000 % 86_400
    for offset, path in zip((0, 1200, 3600), CPU, strict=True):
        push(client, path, time=str(day + offset))
    params = {"type": "cpu", "sample": "cpu", "from": str(day), "to": str(day + 86_399), "granularity": "lines"}
    raw = client.get("/api/v1/top", params=params).json()
    build_rollups(store, now_ns=(day + 2 * 86_400) * NS)
    assert client.get("/api/v1/top", params=params).json() == raw
    _compare(raw, CPU, "cpu")


def test_filters_at_line_granularity_equal_pprof(client: TestClient) -> None:
    """Filters match a line frame by its function's name and file, as ``-top -lines`` with pprof's filters do."""
    push(client, DATA / "cpu.pb.gz")
    cases: list[dict[str, str]] = [
        {"focus": "fib"},
        {"ignore": "runtime"},
        {"hide": r"main\.step"},  # an inlined line: its caller's line becomes flat
        {"show": r"main\.go$"},
        {"show_from": r"main\.every", "hide": r"main\.every"},
    ]
    for filters in cases:
        # The same patterns at function level first: matches remembered for function ids must not answer
        # for line frames, which are numbered apart.
        assert top(client, type="cpu", sample="cpu", query='{service="demo"}', **filters)["total"] == 940_000_000
        ours = _lines(client, type="cpu", sample="cpu", **filters)
        flags = tuple(f"-{name}={pattern}" for name, pattern in filters.items())
        expected = pprof_top([DATA / "cpu.pb.gz"], "cpu", "nanoseconds", extra=("-lines", *flags))
        assert ours["total"] == expected.total, filters
        assert ours["shown"] == expected.shown, filters
        rows = ours["rows"]
        assert isinstance(rows, list)
        labels = {
            f"{r['name']} {r['file']}:{r['line']}" if r["line"] else r["name"]: (r["flat"], r["cum"]) for r in rows
        }
        assert labels == expected.rows, filters


def _inlined_here_called_there() -> bytes:
    """``helper`` line 10 inlined into ``caller`` on one stack and called from ``other`` on another (pprof:
    ``(partial-inline)``); ``leaf`` line 5 inlined into ``helper`` everywhere (``(inline)``), and ``caller``
    called from itself through an inlined frame further down; and ``main.n`` called from ``main.p`` twice on
    one stack, inlined the first time (only the first call into a row on a stack counts for the mark)."""
    helper = Function("main.helper", "main.helper", "main.go", 9)
    caller = Function("main.caller", "main.caller", "main.go", 19)
    other = Function("main.other", "main.other", "main.go", 29)
    leaf = Function("main.leaf", "main.leaf", "main.go", 4)
    inlined = Location((Line(leaf, 5), Line(helper, 10), Line(caller, 20)), address=0x1000, id=1)
    called = Location((Line(leaf, 5), Line(helper, 10)), address=0x2000, id=2)
    from_other = Location((Line(other, 30),), address=0x3000, id=3)
    again = Location((Line(caller, 20),), address=0x4000, id=4)
    # main.p line 1 calls main.n line 2 twice on one stack: inlined first (from the root), then not.
    p, n, x = (Function(f"main.{c}", f"main.{c}", "other.go", i) for i, c in enumerate("pnx"))
    p_inlining_n = Location((Line(n, 2), Line(p, 1)), address=0x5000, id=5)
    via_x = Location((Line(x, 3),), address=0x6000, id=6)
    p_again = Location((Line(p, 1),), address=0x7000, id=7)
    n_called = Location((Line(n, 2),), address=0x8000, id=8)
    profile = Profile(
        sample_types=[ValueType("samples", "count"), ValueType("cpu", "nanoseconds")],
        samples=[
            Sample((inlined,), (5, 50_000_000)),
            Sample((called, from_other), (7, 70_000_000)),
            Sample((inlined, again), (3, 30_000_000)),
            Sample((called, again), (0, 0)),  # no value: adds no edge
            Sample((n_called, p_again, via_x, p_inlining_n), (2, 20_000_000)),
        ],
        period_type=ValueType("cpu", "nanoseconds"),
        period=10_000_000,
        time_nanos=1_764_000_000_000_000_000,
    )
    return encode(profile)


def test_inline_marks_of_a_row_inlined_on_some_stacks_equal_pprof(client: TestClient, tmp_path: Path) -> None:
    path = tmp_path / "inline.pb.gz"
    path.write_bytes(_inlined_here_called_there())
    push(client, path)
    ours = _lines(client, type="cpu", sample="cpu")
    _compare(ours, [path], "cpu")
    marks = {(r["name"], r["line"]): r["inline"] for r in ours["rows"]}  # type: ignore[attr-defined]
    assert marks[("main.helper", 10)] == "partial-inline" and marks[("main.leaf", 5)] == "inline"
    assert marks[("main.other", 30)] == ""
    assert marks[("main.n", 2)] == "inline"  # the call that counts is the first from the root
