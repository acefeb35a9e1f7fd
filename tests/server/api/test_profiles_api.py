"""Series and single profiles, and pprof sample labels in selectors."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.support.helpers import UNITS, push, top
from tests.support.oracle import pprof_list, pprof_top
from tests.support.tools import DATA

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)


def test_series_and_profiles_listing(client: TestClient) -> None:
    push(client, DATA / "cpu.pb.gz", service="api", label="instance=a", time="1000")
    push(client, DATA / "cpu2.pb.gz", service="api", label="instance=b", time="1010")
    push(client, DATA / "heap.pb.gz", service="api", label="instance=a", time="1020")
    series = client.get("/api/v1/series", params={"type": "cpu"}).json()["series"]
    assert sorted(s["labels"]["instance"] for s in series) == ["a", "b"]
    one = client.get("/api/v1/series", params={"query": '{instance="a"}'}).json()["series"]
    assert sorted(s["type"] for s in one) == ["cpu", "heap"]
    listed = client.get("/api/v1/profiles", params={"type": "cpu", "from": "0", "to": "2000"}).json()
    assert [p["time"] for p in listed["profiles"]] == ["1970-01-01T00:16:40Z", "1970-01-01T00:16:50Z"]
    assert listed["profiles"][0]["totals"]["cpu"] == pprof_top([DATA / "cpu.pb.gz"], "cpu", "nanoseconds").total
    assert listed["profiles"][0]["labels"] == {"service": "api", "instance": "a"}
    limited = client.get("/api/v1/profiles", params={"type": "cpu", "from": "0", "to": "2000", "limit": "1"}).json()
    assert len(limited["profiles"]) == 1 and limited["truncated"] is True


def test_open_one_profile(client: TestClient, tmp_path: Path) -> None:
    stored = push(client, DATA / "heap.pb.gz")
    path = f"/api/v1/profiles/{stored['id']}"
    for sample in ("inuse_space", "alloc_objects"):
        ours = client.get(f"{path}/top", params={"sample": sample}).json()
        expected = pprof_top([DATA / "heap.pb.gz"], sample, UNITS[sample])
        assert ours["total"] == expected.total
        assert {r["name"]: (r["flat"], r["cum"]) for r in ours["rows"]} == expected.rows
    exported = tmp_path / "one.pb.gz"
    exported.write_bytes(client.get(f"{path}/pprof").content)
    assert pprof_top([exported], "inuse_space", "bytes") == pprof_top([DATA / "heap.pb.gz"], "inuse_space", "bytes")
    graph = client.get(f"{path}/flamegraph").json()
    assert graph["sample_type"] == "inuse_space" and graph["total"] == stored["totals"]["inuse_space"]
    assert client.get("/api/v1/profiles/999999/top").status_code == 404


def test_one_profile_takes_the_frame_filters_as_pprof_does(client: TestClient, tmp_path: Path) -> None:
    push(client, DATA / "cpu2.pb.gz", time="1000")  # another profile in the range: the answers are this one's alone
    stored = push(client, DATA / "cpu.pb.gz", time="1010")
    path = f"/api/v1/profiles/{stored['id']}"
    filters = {"focus": "main", "hide": r"main\.step"}
    flags = ("-focus=main", r"-hide=main\.step")
    ours = client.get(f"{path}/top", params={"sample": "cpu", **filters}).json()
    expected = pprof_top([DATA / "cpu.pb.gz"], "cpu", "nanoseconds", extra=flags)
    assert (ours["total"], ours["shown"]) == (expected.total, expected.shown) and expected.shown < expected.total
    assert {r["name"]: (r["flat"], r["cum"]) for r in ours["rows"]} == expected.rows
    graph = client.get(f"{path}/flamegraph", params={"sample": "cpu", **filters}).json()
    assert graph["total"] == expected.shown
    exported = tmp_path / "filtered.pb.gz"
    exported.write_bytes(client.get(f"{path}/pprof", params=filters).content)
    assert pprof_top([exported], "cpu", "nanoseconds").rows == expected.rows
    sandwich = client.get(f"{path}/sandwich", params={"function": "main.cpuHogA", **filters}).json()
    assert sandwich["profiles"] == 1 and sandwich["cum"] == expected.rows["main.cpuHogA"][1]
    refused = client.get(f"{path}/top", params={"focus": "(?=x)"})
    assert refused.status_code == 400 and refused.json()["error"].startswith("focus: ")
    assert client.get(f"{path}/sandwich").status_code == 400
    assert client.get(f"{path}/sandwich", params={"function": "main.nosuch"}).status_code == 404


def test_sample_label_matchers_equal_pprof_tagfocus(client: TestClient, tmp_path: Path) -> None:
    push(client, DATA / "cpu.pb.gz", service="demo")
    push(client, DATA / "cpu2.pb.gz", service="demo")
    files = [DATA / "cpu.pb.gz", DATA / "cpu2.pb.gz"]
    ours = top(client, type="cpu", sample="cpu", query='{service="demo", handler="/checkout"}')
    expected = pprof_top(files, "cpu", "nanoseconds", extra=("-tagfocus=handler=^/checkout$",))
    assert ours["total"] == expected.shown > 0
    assert {r["name"]: (r["flat"], r["cum"]) for r in ours["rows"]} == expected.rows
    everything = top(client, type="cpu", sample="cpu", query='{service="demo"}')
    other = top(client, type="cpu", sample="cpu", query='{service="demo", handler!="/checkout"}')
    assert other["total"] + ours["total"] == everything["total"]
    response = client.get(
        "/api/v1/pprof", params={"type": "cpu", "from": "0", "to": "now+1h", "query": '{handler=~"/check.*"}'}
    )
    exported = tmp_path / "checkout.pb.gz"
    exported.write_bytes(response.content)
    again = pprof_top([exported], "cpu", "nanoseconds")
    assert again.total == expected.shown
    assert again.rows == expected.rows


def test_one_profile_at_line_granularity_equals_pprof(client: TestClient) -> None:
    """``top?granularity=lines`` and ``source`` of one profile: ``-top -lines`` and ``-list`` of that file alone."""
    push(client, DATA / "cpu2.pb.gz", time="1000")  # another profile in the range: the answers are this one's alone
    stored = push(client, DATA / "cpu.pb.gz", time="1010")
    path = f"/api/v1/profiles/{stored['id']}"
    for filters, flags in (({}, ()), ({"focus": "main", "hide": r"main\.step"}, ("-focus=main", r"-hide=main\.step"))):
        ours = client.get(f"{path}/top", params={"sample": "cpu", "granularity": "lines", **filters}).json()
        expected = pprof_top([DATA / "cpu.pb.gz"], "cpu", "nanoseconds", extra=("-lines", *flags))
        assert (ours["total"], ours["shown"]) == (expected.total, expected.shown)
        rows = {
            f"{r['name']} {r['file']}:{r['line']}" if r["line"] else r["name"]: (r["flat"], r["cum"])
            for r in ours["rows"]
        }
        assert rows == expected.rows
    listing = client.get(f"{path}/source", params={"sample": "cpu", "function": "main.fib"}).json()
    expected_list = pprof_list([DATA / "cpu.pb.gz"], "cpu", "nanoseconds", "main.fib", DATA.parent.parent, "stackyard")
    (routine,) = listing["routines"]
    assert (routine["flat"], routine["cum"]) == (expected_list[0].flat, expected_list[0].cum)
    assert {e["line"]: (e["flat"], e["cum"]) for e in routine["lines"] if e["flat"] or e["cum"]} == expected_list[
        0
    ].lines
    assert listing["profiles"] == 1 and listing["total"] == expected.total
    assert client.get(f"{path}/source", params={"function": "main.nosuch"}).status_code == 404
    assert client.get(f"{path}/source").status_code == 422  # function is required
    assert client.get(f"{path}/top", params={"granularity": "words"}).status_code == 422
