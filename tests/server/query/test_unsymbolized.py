"""Unsymbolized frames and same-name functions through ingest and top: equal to ``go tool pprof -top``."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.server.pprof.test_frames import _unsymbolized_profile
from tests.support.foreign import FOREIGN, FOREIGN_DIR
from tests.support.helpers import push, top
from tests.support.oracle import pprof_top

pytestmark = pytest.mark.dates


def test_top_keeps_unsymbolized_frames_and_merges_names(client: TestClient, tmp_path: Path) -> None:
    message = _unsymbolized_profile()
    message.time_nanos = 1_700_000_000 * 10**9
    path = tmp_path / "unsymbolized.pb.gz"
    path.write_bytes(gzip.compress(message.SerializeToString()))
    push(client, path, type="cpu")
    for sample, unit in (("samples", "count"), ("cpu", "nanoseconds")):
        ours = top(client, type="cpu", sample=sample, aggregation="sum", query='{service="demo"}')
        expected = pprof_top([path], sample, unit, extra=("-symbolize=none",))
        assert ours["total"] == expected.total
        assert {row["name"]: (row["flat"], row["cum"]) for row in ours["rows"]} == expected.rows


def test_foreign_profiles_equal_pprof_top(client: TestClient) -> None:
    """C++-, Rust- and JavaScript-shaped profiles: every sample type equals ``go tool pprof -top``."""
    for name in FOREIGN:
        path = FOREIGN_DIR / name
        service = name.removesuffix(".pb.gz").replace("_", "-")
        push(client, path, service=service, type="cpu")
        for sample, unit in (("samples", "count"), ("cpu", "nanoseconds")):
            query = f'{{service="{service}"}}'
            ours = top(client, type="cpu", sample=sample, aggregation="sum", query=query)
            expected = pprof_top([path], sample, unit, extra=("-symbolize=none",))
            assert ours["total"] == expected.total > 0, name
            assert {row["name"]: (row["flat"], row["cum"]) for row in ours["rows"]} == expected.rows, name
