"""Hostile inputs against a real ``stackyard serve`` process: refused naming the limit, memory bounded, /healthz alive.

The issue's repro, byte for byte: a 255 KiB gzip push inflating to 256 MiB of
empty samples took the server to 4.6 GB of resident memory and held
``/healthz`` for 26 s before its 400. Here every such input (one per record
type of a profile, the same bytes served to a scrape, and goroutine dumps
pushed and scraped) goes to one server process; for each, the test reads the
process's peak resident memory (``VmHWM``, reset between inputs) and asks
``/healthz`` continuously while the server handles it. Times are reported by
bench/hostile.py, not asserted here.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.hostile import (
    MIB,
    Outcome,
    ServerProbe,
    bombs,
    connect_bombs,
    empty_samples,
    goroutine_bomb,
    serving,
)
from tests.support.pgserver import free_port
from tests.support.procs import stackyard, status, wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/<pid>/status")

#: What the issue asks of every decode path: refused with the server under 1 GB.
RSS_BOUND = 1024 * MIB

EXPECTED = {
    "empty samples": "the profile has more than 1000000 samples, the limit (max_profile_samples)",
    "empty mappings": "bytes of memory, the limit (max_decompressed_bytes)",
    "empty functions": "bytes of memory, the limit (max_decompressed_bytes)",
    "locations of empty lines": "the profile has more than 1000000 locations, the limit (max_profile_locations)",
    "short strings": "bytes of memory, the limit (max_decompressed_bytes)",
    "sample types": "the profile declares more than 256 sample types, the limit",
    "one sample of 64 Mi labels": "is longer than 16777216 bytes, the limit",
    "one sample of 128 Mi values": "is longer than 16777216 bytes, the limit",
}


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProbe]:
    folder: Path = tmp_path_factory.mktemp("hostile")
    port = free_port()
    env = {
        "STACKYARD_DATABASE_URL": f"sqlite:///{folder / 'stackyard.db'}",
        "STACKYARD_PORT": str(port),
        "STACKYARD_SCRAPE_SYNC_INTERVAL": "0.5",
    }
    base = f"http://127.0.0.1:{port}"
    with stackyard(["serve"], env) as process:
        wait_for(lambda: status(base + "/readyz") == 200, 60, "the server to be ready", process)
        yield ServerProbe(base, process.pid)


def check_alive(outcome: Outcome) -> None:
    """The server stayed under the bound and kept answering /healthz while it handled the input.

    ``responsive``: some /healthz answer came back while the input was being
    handled, unless that took under half a second (then nothing was starved
    for long); a server whose parse held the interpreter lock would answer
    none until it was done.
    """
    assert outcome.peak_rss < RSS_BOUND, f"peak RSS {outcome.peak_rss / MIB:.0f} MiB"
    assert outcome.responsive(), outcome


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_pushed_bombs_are_refused_naming_the_limit(probe: ServerProbe, name: str) -> None:
    outcome = probe.push(bombs()[name])
    assert outcome.status == 413, outcome.message
    assert EXPECTED[name] in outcome.message
    check_alive(outcome)


@pytest.mark.parametrize("name", sorted(connect_bombs()))
def test_pyroscope_push_bombs_are_refused_before_they_are_parsed(probe: ServerProbe, name: str) -> None:
    # 32 MiB of two-byte entries would be 16 million protobuf objects (about 700 MB) once parsed.
    body, content_type = connect_bombs()[name]
    headers = {"Content-Type": content_type, "Content-Encoding": "gzip", "Connect-Protocol-Version": "1"}
    outcome = probe.push(body, "/push.v1.PusherService/Push", headers)
    assert outcome.status == 400, outcome.message
    assert '"code": "invalid_argument"' in outcome.message and "more than 100000" in outcome.message
    check_alive(outcome)


def test_a_scrape_target_serving_the_bomb_is_refused_the_same_way(probe: ServerProbe) -> None:
    with serving(empty_samples()) as url:
        outcome = probe.scrape(url, "heap")
    assert outcome.status == 0  # the target is down, and its health says why
    assert outcome.message.startswith("the profile has more than 1000000 samples, the limit (max_profile_samples)")
    check_alive(outcome)


def test_a_pushed_dump_of_minimal_goroutines_is_refused(probe: ServerProbe) -> None:
    outcome = probe.push(goroutine_bomb(), "/api/v1/goroutines/ingest")
    assert outcome.status == 413, outcome.message
    assert "the dump has more than 10000 distinct stacks, the limit (max_dump_stacks)" in outcome.message
    check_alive(outcome)


def test_a_scraped_dump_of_minimal_goroutines_is_refused(probe: ServerProbe) -> None:
    with serving(goroutine_bomb()) as url:
        outcome = probe.scrape(url, "goroutine_dump")
    assert outcome.status == 0
    assert outcome.message.startswith("the dump has more than 10000 distinct stacks, the limit (max_dump_stacks)")
    check_alive(outcome)
