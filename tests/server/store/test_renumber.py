"""Renumbering the stack tree's node ids in garbage collection, on both databases: every answer stays equal to
``go tool pprof``'s, and processes whose caches predate it never mix the two numberings.

A real store cannot reach half of 2**32 node ids in a test, so the tests lower the limit the collection's rule
reads (``server.store.stacks.NODE_LIMIT``) to just past the highest id the profiles used. Everything else is
real: the store, retention, rollups, the HTTP API, and other "processes" (a second ``Store`` on the same
database, with its own caches filled before the renumbering).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.errors import Renumbered
from server.pyroscope.proto.querier.v1 import querier_pb2
from server.query import service
from server.query.request import ProfileQuery
from server.query.selector import parse_selector
from server.settings import Settings
from server.store import renumber
from server.store import stacks as stacks_module
from server.store.check import check_store
from server.store.idspace import id_use
from server.store.repository import Store
from server.store.rollups import DAY_S, HOUR_S, NS
from server.upkeep.jobs import build_rollups
from server.upkeep.retention import apply_retention
from tests.support.helpers import push
from tests.support.oracle import pprof_top
from tests.support.tools import DATA

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)

DAY0 = 1_790_000_000 - 1_790_000_000 % DAY_S  # a UTC midnight, in seconds
KEPT = [(600, DATA / "cpu.pb.gz"), (4200, DATA / "cpu2.pb.gz"), (7800, DATA / "cpu_slow.pb.gz")]
#: Pushed 40 days before and gone by the collection: its ~20,000 nodes are most of the tree, and the newest.
EXPIRED = DATA / "big_cpu.pb.gz"
NOW = (DAY0 + DAY_S) * NS  # retention's "now": the kept profiles are a day old, the expired one 41 days
RAW_ONLY = (DAY0 + 3700, DAY0 + 7100)  # inside one hour: raw profiles only (cpu2), no rollup
WITH_ROLLUPS = (DAY0, DAY0 + DAY_S)  # the day: read from its daily rollup


def _query(span: tuple[int, int], rollups: bool = True) -> ProfileQuery:
    return ProfileQuery("cpu", parse_selector('{service="kept"}'), span[0] * NS, span[1] * NS, "cpu", None, rollups)


def _expected(span: tuple[int, int]) -> tuple[int, dict[str, tuple[int, int]]]:
    return _pprof([path for offset, path in KEPT if span[0] <= DAY0 + offset < span[1]])


def _table(store: Store, settings: Settings, query: ProfileQuery) -> tuple[int, dict[str, tuple[int, int]]]:
    """The top table as ``go tool pprof -top`` gives it: the total, and (flat, cum) by function."""
    table = service.top(store.pinned(), settings, query)
    return int(table.total), {row.name: (int(row.flat), int(row.cum)) for row in table.rows}


def _answer(store: Store, settings: Settings, span: tuple[int, int]) -> tuple[int, dict[str, tuple[int, int]]]:
    return _table(store, settings, _query(span))


def _pprof(files: list[Path]) -> tuple[int, dict[str, tuple[int, int]]]:
    expected = pprof_top(files, "cpu", "nanoseconds")
    return expected.total, expected.rows


def _renumber(filled: tuple[Store, Store], retained: Settings) -> tuple[Store, Store]:
    """The first half of the setup's story: retention expires the old profile and the collection renumbers."""
    store, other = filled
    assert apply_retention(store, retained, now_ns=NOW)["renumbered_nodes"] > 0
    return store, other


@pytest.fixture
def retained(database_url: str) -> Settings:
    """Retention as a collection applies it at ``NOW`` (pushes take the tests' settings: theirs is past any date)."""
    return Settings(database_url=database_url, retention_raw="30d", retention_hourly="365d", retention_daily="365d")


@pytest.fixture
def filled(
    database_url: str, settings: Settings, retained: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Store, Store]]:
    """The kept profiles rolled up, then an expired one pushed: a store about to collect most of its tree, and
    a second process whose caches were filled from it before the collection (answers given, keys loaded)."""
    store = Store.from_url(database_url)
    with TestClient(create_app(settings, store)) as client:
        for offset, path in KEPT:
            push(client, path, "kept", time=str(DAY0 + offset))
        assert build_rollups(store, now_ns=(DAY0 + 2 * DAY_S) * NS)["daily"] == 1
        push(client, EXPIRED, "gone", time=str(DAY0 - 40 * DAY_S))
    highest = id_use(store.engine)[0].highest
    monkeypatch.setattr(stacks_module, "NODE_LIMIT", highest + 10)  # past half: the collection's rule renumbers
    other = Store.from_url(database_url)
    for span in (RAW_ONLY, WITH_ROLLUPS):
        assert _answer(other, retained, span) == _expected(span)
    yield store, other
    other.close()
    store.close()


def test_the_rule_renumbers_past_half_of_the_space_when_it_gives_back_a_quarter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stacks_module, "NODE_LIMIT", 1000)
    assert not renumber.wanted(highest=499, live=10)  # not yet half-way
    assert renumber.wanted(highest=500, live=250)
    assert not renumber.wanted(highest=900, live=651)  # would give back less than a quarter
    assert renumber.wanted(highest=999, live=700)  # a full tree whose live nodes are most of it still gains


def test_a_collection_renumbers_and_every_answer_stays_pprofs(
    filled: tuple[Store, Store], settings: Settings, retained: Settings
) -> None:
    store, _ = filled
    before = id_use(store.engine)[0]
    deleted = apply_retention(store, retained, now_ns=NOW)
    assert deleted["raw"] == 1
    live = deleted["renumbered_nodes"]
    assert 0 < live < before.highest // 2
    after = id_use(store.engine)[0]
    assert (after.highest, after.stored) == (live, live)  # ids 1..live, no gaps
    report = check_store(store.engine)
    assert report.ok, report.problems
    fresh = Store.from_url(retained.database_url)
    try:
        for span in (RAW_ONLY, WITH_ROLLUPS):
            assert _answer(fresh, retained, span) == _expected(span)
            raw = service.flame(fresh, retained, _query(span, rollups=False), 10_000)
            assert service.flame(fresh, retained, _query(span), 10_000) == raw  # rollups' node tables renumbered too
    finally:
        fresh.close()
    # New stacks are numbered past the live nodes: the expired profile's, stored again, are as many as before.
    with TestClient(create_app(settings, store)) as client:
        push(client, EXPIRED, "again", time=str(DAY0 + 9000))
    assert id_use(store.engine)[0].highest == before.highest
    again = ProfileQuery("cpu", parse_selector('{service="again"}'), DAY0 * NS, (DAY0 + DAY_S) * NS, "cpu")
    assert _table(store, settings, again) == _pprof([EXPIRED])


def test_a_process_whose_caches_predate_it_refuses_to_mix_then_answers(
    filled: tuple[Store, Store], retained: Settings
) -> None:
    _, other = _renumber(filled, retained)
    # What it holds still agrees with itself: keys keep their ids, and its key nodes and tree are one numbering.
    assert _answer(other, retained, RAW_ONLY) == _expected(RAW_ONLY)
    # A rollup's node table is of the new numbering: refused, not mixed.
    with pytest.raises(Renumbered):
        _answer(other, retained, WITH_ROLLUPS)
    # The refusal marked its caches stale: the next query has a fresh set.
    assert _answer(other, retained, WITH_ROLLUPS) == _expected(WITH_ROLLUPS)


def test_the_refusal_reaches_http_clients_as_a_503(filled: tuple[Store, Store], retained: Settings) -> None:
    _, other = _renumber(filled, retained)
    with TestClient(create_app(retained, other)) as client:
        params = {"type": "cpu", "query": '{service="kept"}', "from": str(WITH_ROLLUPS[0]), "to": str(WITH_ROLLUPS[1])}
        refused = client.get("/api/v1/top", params=params)
        assert refused.status_code == 503
        assert refused.headers["Retry-After"]
        assert "renumbered the stack tree's nodes" in refused.json()["error"]
        again = client.get("/api/v1/top", params=params)
        assert again.status_code == 200 and again.json()["total"] == _expected(WITH_ROLLUPS)[0]


def test_writers_and_rollup_builds_with_old_caches_write_the_new_numbering(
    filled: tuple[Store, Store], settings: Settings, retained: Settings
) -> None:
    store, other = _renumber(filled, retained)
    # The other process writes a profile of new stacks and one of known stacks, into an hour already rolled up.
    with TestClient(create_app(settings, other)) as client:
        push(client, EXPIRED, "kept", time=str(DAY0 + 5400))
        push(client, DATA / "cpu.pb.gz", "kept", time=str(DAY0 + 5500))
    # Its first write was refused (the collection moved the epoch) and its caches replaced: it builds the rollups.
    written = build_rollups(other, now_ns=(DAY0 + 2 * DAY_S) * NS)
    assert written["hourly"] >= 1 and written["daily"] == 1
    expected = _pprof([path for _, path in KEPT] + [EXPIRED, DATA / "cpu.pb.gz"])
    fresh = Store.from_url(retained.database_url)
    try:
        for rollups in (True, False):
            assert _table(fresh, retained, _query(WITH_ROLLUPS, rollups)) == expected
    finally:
        fresh.close()
    report = check_store(store.engine)
    assert report.ok, report.problems


def test_a_rollup_build_with_caches_of_the_old_numbering_is_deferred(
    filled: tuple[Store, Store], settings: Settings, retained: Settings
) -> None:
    store, other = _renumber(filled, retained)
    # A late profile of known stacks (so the other process appends nothing and keeps its caches) dirties an hour.
    with TestClient(create_app(settings, store)) as client:
        push(client, DATA / "cpu2.pb.gz", "kept", time=str(DAY0 + 4300))
    (kept,) = [s.id for s in store.series.all() if s.labels == {"service": "kept"}]
    hour = (DAY0 + 3600) * NS
    # Its node table would be of the old numbering: deferred, nothing written.
    assert other.rollups.try_build(kept, HOUR_S, hour) is None
    assert not [r for r in other.rollups.list([kept], HOUR_S, hour, hour)]
    # The refusal replaced the caches: the retry builds it, from the new numbering.
    assert other.rollups.try_build(kept, HOUR_S, hour) == 1
    assert build_rollups(other, now_ns=(DAY0 + 2 * DAY_S) * NS)["deferred"] == 0  # the day, and the emptied hour
    expected = _pprof([path for _, path in KEPT] + [DATA / "cpu2.pb.gz"])
    for rollups in (True, False):
        assert _table(other, retained, _query(WITH_ROLLUPS, rollups)) == expected


def test_grafanas_query_in_binary_protobuf_is_refused_once_as_unavailable_then_answers(
    filled: tuple[Store, Store], retained: Settings
) -> None:
    """What Grafana's Pyroscope data source sends (Connect, binary protobuf) meets the same refusal: Connect's
    ``unavailable``, which clients retry; the retry's flame graph holds pprof's total."""
    _, other = _renumber(filled, retained)
    request = querier_pb2.SelectMergeStacktracesRequest(
        profile_typeID="process_cpu:cpu:nanoseconds:cpu:nanoseconds",
        label_selector='{service_name="kept"}',
        start=WITH_ROLLUPS[0] * 1000,
        end=WITH_ROLLUPS[1] * 1000,
    )
    headers = {"Content-Type": "application/proto", "Connect-Protocol-Version": "1"}
    path = "/querier.v1.QuerierService/SelectMergeStacktraces"
    with TestClient(create_app(retained, other)) as client:
        refused = client.post(path, content=request.SerializeToString(), headers=headers)
        assert refused.status_code == 503 and refused.json()["code"] == "unavailable"
        assert "renumbered" in refused.json()["message"]
        answered = client.post(path, content=request.SerializeToString(), headers=headers)
        assert answered.status_code == 200, answered.text
        graph = querier_pb2.SelectMergeStacktracesResponse.FromString(answered.content).flamegraph
        assert graph.total == _expected(WITH_ROLLUPS)[0]
