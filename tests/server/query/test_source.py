"""``GET /api/v1/source?function=F`` equals ``go tool pprof -list '^F$'`` per line and in its header, on both
databases; source text appears only when ``STACKYARD_SOURCE_ROOTS`` maps the profile's path, and a path that
would leave its root is refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.pprof.encode import encode
from server.pprof.model import Function, Line, Location, Profile, Sample, ValueType
from server.settings import Settings
from server.store.repository import Store
from tests.support.helpers import UNITS, push
from tests.support.oracle import pprof_list
from tests.support.tools import DATA

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)

REPO = DATA.parent.parent
CPU = [DATA / "cpu.pb.gz", DATA / "cpu2.pb.gz"]


@pytest.fixture
def mapped(database_url: str, store: Store, tmp_path: Path) -> Iterator[TestClient]:
    """A server whose source roots map the captures' ``stackyard/...`` paths to this repository, and
    ``evil/...`` and every other path to a directory beside a secret."""
    (tmp_path / "root").mkdir()
    (tmp_path / "secret.go").write_text("package secret\n")
    (tmp_path / "root" / "link.go").symlink_to(tmp_path / "secret.go")
    roots = f"stackyard={REPO},evil={tmp_path / 'root'},={tmp_path / 'root'}"
    settings = Settings(database_url=database_url, retention_raw="36500d", source_roots=roots)
    with TestClient(create_app(settings, store)) as client:
        yield client


def _source(client: TestClient, function: str, **params: str) -> dict[str, object]:
    query = {"type": "cpu", "from": "0", "to": "now+1h", "function": function, **params}
    response = client.get("/api/v1/source", params=query)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


@pytest.mark.parametrize("function", ["main.fib", "main.step", "main.cpuHogA"])
def test_lines_equal_pprof_list(mapped: TestClient, function: str) -> None:
    for path in CPU:
        push(mapped, path)
    expected = pprof_list(CPU, "cpu", UNITS["cpu"], function, REPO, "stackyard")
    body = _source(mapped, function, sample="cpu")
    routines = body["routines"]
    assert isinstance(routines, list) and len(routines) == len(expected) == 1
    ours, theirs = routines[0], expected[0]
    assert (ours["function"], ours["flat"], ours["cum"]) == (theirs.function, theirs.flat, theirs.cum)
    valued = {e["line"]: (e["flat"], e["cum"]) for e in ours["lines"] if e["flat"] or e["cum"]}
    assert valued == theirs.lines
    assert ours["source"] == ""
    text = (REPO / "examples/demo/main.go").read_text().splitlines()
    assert all(e["text"] == text[e["line"] - 1] for e in ours["lines"])


def test_recursion_counts_again_per_line_in_the_header(client: TestClient) -> None:
    push(client, CPU[0])
    fib = _source(client, "main.fib", sample="cpu")["routines"][0]  # type: ignore[index]
    # Checked against pprof by hand: 310 ms flat; the header's cum adds the lines' cums (120+90+30+310).
    assert (fib["flat"], fib["cum"]) == (310_000_000, 550_000_000)
    assert "STACKYARD_SOURCE_ROOTS" in fib["source"]
    assert all("text" not in e for e in fib["lines"])


def _evil_profile(filename: str) -> bytes:
    function = Function("evil.F", "evil.F", filename, 1)
    location = Location((Line(function, 1),), address=0x1000, id=1)
    profile = Profile(
        sample_types=[ValueType("samples", "count"), ValueType("cpu", "nanoseconds")],
        samples=[Sample((location,), (1, 10_000_000))],
        period_type=ValueType("cpu", "nanoseconds"),
        period=10_000_000,
        time_nanos=1_764_000_000_000_000_000,
    )
    return encode(profile)


@pytest.mark.parametrize(
    ("filename", "reason"),
    [
        ("evil/../../secret.go", "refused"),  # pprof's name for it: ../secret.go
        ("/tmp/secret.go", "refused"),
        ("evil/link.go", "refused"),  # a symlink out of the root
        ("evil/missing.go", "not found"),
    ],
)
def test_paths_outside_a_root_are_refused(mapped: TestClient, filename: str, reason: str) -> None:
    response = mapped.post("/api/v1/ingest", params={"service": "evil"}, content=_evil_profile(filename))
    assert response.status_code == 201, response.text
    routine = _source(mapped, "evil.F", query='{service="evil"}')["routines"][0]  # type: ignore[index]
    assert reason in routine["source"]
    assert routine["lines"] == [{"line": 1, "flat": 10_000_000, "cum": 10_000_000}]


def test_an_unknown_function_is_a_404_naming_it(client: TestClient) -> None:
    push(client, CPU[0])
    response = client.get("/api/v1/source", params={"type": "cpu", "from": "0", "to": "now+1h", "function": "no.Such"})
    assert response.status_code == 404
    assert "no.Such" in response.json()["error"]


def test_a_source_root_without_a_directory_stops_the_settings() -> None:
    with pytest.raises(ValueError, match="prefix=directory"):
        Settings(database_url="sqlite://", source_roots="github.com/acme/shop")
