"""Rollups answer exactly what the raw profiles answer, across bucket edges and late data."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select, update

from server.pprof import decode
from server.query import service
from server.query.diff import compare, diff_top
from server.query.plan import plan
from server.query.request import ProfileQuery
from server.query.selector import parse_selector
from server.settings import Settings
from server.store import blob
from server.store.models import RollupBlob, RollupDirty
from server.store.repository import Store
from server.store.rollups import DAY_S, HOUR_S, NS, SCAN_KEY, LateMarks, read_state
from server.upkeep.jobs import build_rollups
from tests.support.helpers import push
from tests.support.oracle import pprof_top
from tests.support.tools import DATA

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)

DAY0 = 1_790_000_000 - 1_790_000_000 % DAY_S  # a UTC midnight, in seconds
FILES = [DATA / "cpu.pb.gz", DATA / "cpu2.pb.gz", DATA / "cpu_slow.pb.gz"]
# (seconds after DAY0, file): before the first day, inside hours, on edges, over three days.
TIMELINE = [
    (-1800, 0),
    (600, 1),
    (3000, 2),
    (3600, 0),
    (3900, 1),
    (10_800, 2),
    (86_399, 0),
    (86_400, 1),
    (93_600, 2),
    (172_800 + 43_200, 0),
    (172_800 + 43_260, 1),
    (259_199, 2),
]


def _query(start_s: int, end_s: int, rollups: bool, selector: str = "{}") -> ProfileQuery:
    return ProfileQuery(
        "cpu", parse_selector(selector), (DAY0 + start_s) * NS, (DAY0 + end_s) * NS, "cpu", None, rollups
    )


@pytest.fixture
def filled(client: TestClient, store: Store) -> Store:
    for offset, index in TIMELINE:
        push(client, FILES[index], time=str(DAY0 + offset), label=f"file=f{index}")
    written = build_rollups(store, now_ns=(DAY0 + 4 * DAY_S) * NS)
    assert written["hourly"] >= 9 and written["daily"] >= 4
    return store


RANGES = [(-3600, 4 * 86_400), (0, 86_400), (300, 90_000), (3600, 7200), (3599, 7201), (86_399, 172_800 + 43_230)]


@pytest.mark.parametrize(("start", "end"), RANGES)
def test_rollups_equal_raw_and_pprof(filled: Store, settings: Settings, start: int, end: int) -> None:
    with_rollups = service.top(filled, settings, _query(start, end, True))
    raw_only = service.top(filled, settings, _query(start, end, False))
    assert with_rollups == raw_only
    files = [FILES[i] for offset, i in TIMELINE if start <= offset <= end]
    expected = pprof_top(files, "cpu", "nanoseconds")
    assert with_rollups.merge.profiles == len(files)
    assert with_rollups.total == expected.total
    assert {r.name: (r.flat, r.cum) for r in with_rollups.rows} == expected.rows
    graph = service.flame(filled, settings, _query(start, end, True), 10_000)
    assert graph == service.flame(filled, settings, _query(start, end, False), 10_000)


def test_a_long_range_reads_rollups_not_raw_profiles(filled: Store) -> None:
    from server.query.plan import plan

    series = [s.id for s in filled.series.all()]
    parts = plan(filled, series, (DAY0 - 3600) * NS, (DAY0 + 4 * DAY_S) * NS, 1000)
    assert {p.width_s for p in parts} == {HOUR_S, DAY_S}, "whole days from daily rollups, the odd hour hourly"
    assert sum(p.profiles for p in parts) == len(TIMELINE)
    assert len(parts) < len(TIMELINE)


def test_exports_diffs_and_sample_filters_agree(filled: Store, settings: Settings, tmp_path: Path) -> None:
    for rollups in (True, False):
        exported = tmp_path / f"export-{rollups}.pb.gz"
        exported.write_bytes(service.pprof_export(filled, settings, _query(-3600, 4 * 86_400, rollups)))
        again = pprof_top([exported], "cpu", "nanoseconds")
        assert again == pprof_top(FILES * 4, "cpu", "nanoseconds")
    for normalize in (False, True):
        results = []
        for rollups in (True, False):
            comparison = compare(
                filled, settings, _query(0, 2 * 86_400, rollups), _query(2 * 86_400, 4 * 86_400, rollups), normalize
            )
            results.append(diff_top(comparison, None))
        assert results[0] == results[1]
    labelled = [service.top(filled, settings, _query(0, 4 * 86_400, r, '{handler="/search"}')) for r in (True, False)]
    assert labelled[0] == labelled[1] and labelled[0].total > 0


def test_late_data_invalidates_then_rebuilds(filled: Store, client: TestClient, settings: Settings) -> None:
    (series,) = [s.id for s in filled.series.all() if s.labels["file"] == "f1"]
    assert filled.rollups.list([series], HOUR_S, DAY0 * NS, DAY0 * NS), "the first hour of day 0 is rolled up"
    push(client, FILES[1], time=str(DAY0 + 1200), label="file=f1")
    with filled.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(RollupDirty)).scalar_one() == 1
    assert not filled.rollups.list([series], HOUR_S, DAY0 * NS, DAY0 * NS), "late data drops its hour's rollup"
    assert not filled.rollups.list([series], DAY_S, DAY0 * NS, DAY0 * NS), "and its day's"
    before = service.top(filled, settings, _query(0, 86_400, True))
    assert before == service.top(filled, settings, _query(0, 86_400, False))
    assert before.merge.profiles == 1 + sum(1 for offset, _ in TIMELINE if 0 <= offset <= 86_400)
    written = build_rollups(filled, now_ns=(DAY0 + 4 * DAY_S) * NS)
    assert written == {"hourly": 1, "daily": 1, "deferred": 0}  # behind the scan watermark: found as dirty
    assert service.top(filled, settings, _query(0, 86_400, True)) == before
    assert build_rollups(filled, now_ns=(DAY0 + 4 * DAY_S) * NS) == {"hourly": 0, "daily": 0, "deferred": 0}


def test_late_data_marks_its_hour_once_until_it_is_rebuilt(
    filled: Store, client: TestClient, settings: Settings
) -> None:
    """A back-fill of one past hour leaves one dirty mark, not one per profile; after the rebuild the next
    late profile of that hour drops the new rollup and marks the hour again."""
    (series,) = [s.id for s in filled.series.all() if s.labels["file"] == "f1"]

    def marks() -> int:
        with filled.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(RollupDirty)).scalar_one())

    for seconds in (1200, 1500, 1800):
        push(client, FILES[1], time=str(DAY0 + seconds), label="file=f1")
    assert marks() == 1
    assert build_rollups(filled, now_ns=(DAY0 + 4 * DAY_S) * NS) == {"hourly": 1, "daily": 1, "deferred": 0}
    assert marks() == 0 and filled.rollups.list([series], HOUR_S, DAY0 * NS, DAY0 * NS)
    push(client, FILES[1], time=str(DAY0 + 2100), label="file=f1")
    assert marks() == 1, "the rebuilt hour is marked again"
    assert not filled.rollups.list([series], HOUR_S, DAY0 * NS, DAY0 * NS)
    build_rollups(filled, now_ns=(DAY0 + 4 * DAY_S) * NS)
    assert service.top(filled, settings, _query(0, 86_400, True)) == service.top(
        filled, settings, _query(0, 86_400, False)
    )


def test_late_marks_answer_membership_and_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    marks = LateMarks()
    assert (1, 3600) not in marks
    marks.add([(1, 3600), (2, 7200)])
    assert (1, 3600) in marks and (2, 7200) in marks and (1, 7200) not in marks
    monkeypatch.setattr(LateMarks, "LIMIT", 2)
    marks.add([(3, 0)])  # past the limit: forgotten first (a forgotten mark costs one redundant row)
    marks.add([(4, 0)])
    assert (4, 0) in marks and (1, 3600) not in marks


def test_each_run_scans_from_the_watermark(filled: Store, client: TestClient) -> None:
    """A run reads raw profiles only past the last run's watermark; new closed hours are still found."""
    end = (DAY0 + 4 * DAY_S) * NS
    with filled.engine.connect() as conn:
        assert read_state(conn, SCAN_KEY) == end  # the fixture's run scanned up to its closed hour
    push(client, FILES[0], time=str(DAY0 + 4 * DAY_S + 10), label="file=f0")  # a new hour, after the watermark
    with filled.engine.begin() as conn:  # it is in the past, so ingest marked it dirty too: find it by the scan alone
        conn.execute(delete(RollupDirty))
    assert build_rollups(filled, now_ns=end + 3600 * NS)["hourly"] == 1
    with filled.engine.connect() as conn:
        assert read_state(conn, SCAN_KEY) == end + 3600 * NS
        assert conn.execute(select(func.count()).select_from(RollupDirty)).scalar_one() == 0


def test_rollup_blob_holds_every_sample_type(filled: Store) -> None:
    (series,) = [s.id for s in filled.series.all() if s.labels["file"] == "f0"]
    (day,) = filled.rollups.list([series], DAY_S, DAY0 * NS, DAY0 * NS)
    totals = decode(FILES[0].read_bytes()).totals()
    held = [o for o, i in TIMELINE if i == 0 and 0 <= o < 86_400]
    assert day.profiles == len(held) == 2
    assert day.totals == [v * len(held) for v in totals]
    assert replace(day, totals=[]).sample_types == ("samples/count", "cpu/nanoseconds")


def test_rollups_carry_their_values_per_stack_node(filled: Store) -> None:
    """Each rollup blob holds its key rows summed per stack leaf node, as a function-level view sums them."""
    rollups = [m for width in (HOUR_S, DAY_S) for m in filled.rollups.list(_series(filled), width, 0, 2**62)]
    blobs = filled.rollups.blobs([m.id for m in rollups])
    assert len(blobs) == len(rollups) >= 13
    for data in blobs.values():
        keyed, per_node = blob.decode(data), blob.decode_nodes(data)
        assert per_node is not None
        nodes, _ = filled.sample_identities(keyed.keys)
        expected: dict[int, list[int]] = {}
        for node, row in zip(nodes.tolist(), keyed.values.tolist(), strict=True):
            expected[node] = [a + b for a, b in zip(expected.get(node, [0] * len(row)), row, strict=True)]
        assert dict(zip(per_node.keys.tolist(), per_node.values.tolist(), strict=True)) == expected


def test_a_range_of_rollups_is_drawn_from_node_sums_alone(filled: Store, settings: Settings) -> None:
    """A fresh server answers a flame graph, top table and diff over whole days without reading a sample key."""
    fresh = Store(filled.engine)
    whole_days = _query(0, 2 * 86_400, True)
    assert {p.width_s for p in plan(fresh, _series(fresh), whole_days.start_ns, whole_days.end_ns + 1, 100)} == {DAY_S}
    graph = service.flame(fresh, settings, whole_days, 10_000)
    table = service.top(fresh, settings, whole_days)
    assert not fresh.sample_keys.known.any(), "no sample key was resolved"
    assert graph == service.flame(filled, settings, _query(0, 2 * 86_400, False), 10_000)
    assert table == service.top(filled, settings, _query(0, 2 * 86_400, False))
    files = [FILES[i] for offset, i in TIMELINE if 0 <= offset < 2 * 86_400]
    expected = pprof_top(files, "cpu", "nanoseconds")
    assert (table.total, {r.name: (r.flat, r.cum) for r in table.rows}) == (expected.total, expected.rows)


def test_rollups_written_before_node_sums_are_still_read(filled: Store, settings: Settings) -> None:
    """A rollup blob of the older layout (keys only) answers as before: its keys are resolved to nodes."""
    with filled.engine.begin() as conn:
        for rollup_id, data in conn.execute(select(RollupBlob.rollup_id, RollupBlob.data)).all():
            old = blob.encode_v2(blob.decode(bytes(data)))
            conn.execute(update(RollupBlob).where(RollupBlob.rollup_id == rollup_id).values(data=old))
    fresh = Store(filled.engine)
    for start, end in RANGES:
        assert service.top(fresh, settings, _query(start, end, True)) == service.top(
            fresh, settings, _query(start, end, False)
        )
        assert service.flame(fresh, settings, _query(start, end, True), 10_000) == service.flame(
            fresh, settings, _query(start, end, False), 10_000
        )


def _series(store: Store) -> list[int]:
    return [s.id for s in store.series.all()]
