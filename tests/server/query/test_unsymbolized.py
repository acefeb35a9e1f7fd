"""Unsymbolized frames and same-name functions through ingest and top: equal to ``go tool pprof -top``."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.foreign import FOREIGN, FOREIGN_DIR, unsymbolized_message
from tests.support.helpers import push, top
from tests.support.oracle import pprof_top

pytestmark = pytest.mark.dates


def test_top_keeps_unsymbolized_frames_and_merges_names(client: TestClient, tmp_path: Path) -> None:
    message = unsymbolized_message()
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


def _nodes(graph: dict[str, Any], width: int) -> list[tuple[int, str, int, list[str]]]:
    """(depth, name, self, ancestor names) per drawn box, read back from the levels by position.

    ``width`` is the number of numbers per box: 4 for one value column, 6 for a diff (base then comparison).
    """
    names = graph["names"]
    placed: list[list[tuple[float, float, str, list[str]]]] = []  # per depth: (start, end, name, path)
    out = []
    for depth, level in enumerate(graph["levels"]):
        row = []
        end = 0.0
        for i in range(0, len(level), width):
            values = level[i + 1 : i + width - 1]
            span = sum(values[0::2])
            start = end + level[i]
            end = start + span
            name = names[level[i + width - 1]]
            parent = (
                next((p for p in placed[depth - 1] if p[0] <= start < p[1] or p[0] == start), None) if depth else None
            )
            path = [*parent[3], parent[2]] if parent else []
            row.append((start, end, name, path))
            out.append((depth, name, int(values[1]) if width == 4 else int(values[3]), path))
        placed.append(row)
    return out


def test_foreign_flamegraphs_draw_one_box_per_name(client: TestClient) -> None:
    """Each function's self summed over its boxes is pprof's flat; no parent has two children of one name."""
    for name in FOREIGN:
        path = FOREIGN_DIR / name
        service = name.removesuffix(".pb.gz").replace("_", "-")
        push(client, path, service=service, type="cpu")
        params = {"type": "cpu", "sample": "cpu", "from": "0", "to": "now+1h", "query": f'{{service="{service}"}}'}
        graph = client.get("/api/v1/flamegraph", params=params).json()
        expected = pprof_top([path], "cpu", "nanoseconds", extra=("-symbolize=none",))
        assert graph["total"] == expected.total, name
        nodes = _nodes(graph, 4)[1:]
        flat: dict[str, int] = {}
        for _depth, function, self_value, _path in nodes:
            flat[function] = flat.get(function, 0) + self_value
        assert {f: v for f, v in flat.items() if v} == {f: fl for f, (fl, _) in expected.rows.items() if fl}, name
        boxes = [(tuple(p), function) for _d, function, _s, p in nodes]
        assert len(boxes) == len(set(boxes)), f"{name}: two siblings of one name"


def test_foreign_diff_equals_pprof(client: TestClient) -> None:
    """A diff between two foreign profiles: flat and cum changes equal ``go tool pprof -diff_base``."""
    base, new = FOREIGN_DIR / "cpp_cpu.pb.gz", FOREIGN_DIR / "js_cpu.pb.gz"
    push(client, base, service="cpp", type="cpu")
    push(client, new, service="js", type="cpu")
    params = {"type": "cpu", "sample": "cpu", "from": "0", "to": "now+1h"}
    selectors = {"query": '{service="js"}', "base_query": '{service="cpp"}'}
    body = client.get("/api/v1/diff", params={**params, **selectors}).json()
    expected = pprof_top([new], "cpu", "nanoseconds", diff_base=[base], extra=("-symbolize=none",))
    assert body["base_total"] == expected.total
    changes = {
        r["name"]: (r["flat_change"], r["cum_change"]) for r in body["rows"] if r["flat_change"] or r["cum_change"]
    }
    assert changes == expected.rows
    assert {"(anonymous)", "(anonymous namespace)::Parse", "[libc.so.6]"} <= set(changes)
    graph = client.get("/api/v1/diff", params={**params, **selectors, "format": "flamegraph"}).json()
    boxes = [(tuple(p), function) for _d, function, _s, p in _nodes(graph, 6)]
    assert len(boxes) == len(set(boxes)), "two siblings of one name"
    # (root)/A, (root)/A/A, (root)/A/A/A (index.js and db.js under router.js: one box), and under runQuery.
    assert sum(1 for _p, function in boxes if function == "(anonymous)") == 4


def test_foreign_pprof_export_equals_the_original(client: TestClient, tmp_path: Path) -> None:
    """The exported profile gives pprof the same top table as the file pushed, named frames included."""
    for name in FOREIGN:
        path = FOREIGN_DIR / name
        service = name.removesuffix(".pb.gz").replace("_", "-")
        push(client, path, service=service, type="cpu")
        params = {"type": "cpu", "from": "0", "to": "now+1h", "query": f'{{service="{service}"}}'}
        response = client.get("/api/v1/pprof", params=params)
        assert response.status_code == 200, response.text
        exported = tmp_path / name
        exported.write_bytes(response.content)
        for sample, unit in (("samples", "count"), ("cpu", "nanoseconds")):
            original = pprof_top([path], sample, unit, extra=("-symbolize=none",))
            again = pprof_top([exported], sample, unit, extra=("-symbolize=none",))
            assert (again.total, again.rows) == (original.total, original.rows), name
