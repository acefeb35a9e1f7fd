"""``stackyard query``: readable tables from the query API, clear errors."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from stackyard.cli import build_parser
from stackyard.querycli import human, run
from tests.support.helpers import push
from tests.support.tools import DATA

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)


def _run(client: TestClient, argv: list[str]) -> int:
    args = build_parser().parse_args(["query", *argv])
    return run(args, client)


def test_top_diff_and_timeseries_tables(client: TestClient, capsys: pytest.CaptureFixture[str]) -> None:
    push(client, DATA / "cpu.pb.gz", time="1000")
    push(client, DATA / "cpu_slow.pb.gz", time="2000")
    assert _run(client, ["top", "--type", "cpu", "--sample", "cpu", "--from", "0", "--to", "3000", "--limit", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("cpu cpu (sum) over 2 profiles, total ")
    assert len(out) == 2 + 3 and "main." in out[2]
    args = [
        "diff",
        "--type",
        "cpu",
        "--sample",
        "cpu",
        "--from",
        "1500",
        "--to",
        "2500",
        "--base-from",
        "500",
        "--base-to",
        "1500",
    ]
    assert _run(client, args) == 0
    diff = capsys.readouterr().out
    assert "main.mix" in diff and "+" in diff
    assert _run(client, ["timeseries", "--type", "cpu", "--from", "0", "--to", "3000", "--step", "1000s"]) == 0
    series = capsys.readouterr().out
    assert "1970-01-01 00:16:40" in series and "{instance=" not in series


def test_errors_are_one_line_and_exit_2(client: TestClient, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(client, ["top", "--type", "cpu", "--query", "{bad"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("stackyard: 400: query: ") and "Traceback" not in err


def test_units_read_like_pprof() -> None:
    assert human(1_230_000_000, "nanoseconds") == "1.23s"
    assert human(1536, "bytes") == "1.50kB"
    assert human(42, "count") == "42"
