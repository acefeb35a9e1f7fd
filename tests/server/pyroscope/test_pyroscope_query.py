"""Pyroscope's QuerierService and render endpoints against real captures, in both encodings, on both databases.

Every method is called with binary protobuf and with JSON, through stubs
generated from our .proto files; both answers must be the same message. The
numbers are checked against Stackyard's own API and ``go tool pprof``.
Profiles are stored at fixed times (May 2026), never relative to the clock.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from fastapi.testclient import TestClient
from google.protobuf import json_format
from google.protobuf.message import Message

from server.app import create_app
from server.auth.tokens import Scope, TokenEntry, digest
from server.pyroscope.proto.google.v1 import profile_pb2
from server.pyroscope.proto.querier.v1 import querier_pb2
from server.pyroscope.proto.types.v1 import types_pb2
from server.settings import Settings
from tests.conftest import TEST_RETENTION
from tests.support.helpers import UNITS
from tests.support.oracle import pprof_top
from tests.support.tools import DATA

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)

T0 = 1_780_000_000  # 2026-05-28T20:26:40Z, in seconds
MS = 1000
CPU = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
SAMPLES = "process_cpu:samples:count:cpu:nanoseconds"
GOROUTINE = "goroutine:goroutine:count:goroutine:count"
SERVICE = "/querier.v1.QuerierService/"
#: (file, kind, seconds after T0, labels)
FIXTURES = [
    ("cpu", "cpu", 0, {"service": "api", "env": "prod", "instance": "a"}),
    ("cpu2", "cpu", 10, {"service": "api", "env": "prod", "instance": "b"}),
    ("cpu_slow", "cpu", 20, {"service": "web", "env": "dev", "instance": "c"}),
    ("heap", "heap", 0, {"service": "api", "env": "prod", "instance": "a"}),
    ("allocs", "allocs", 0, {"service": "api", "env": "prod", "instance": "a"}),
    ("goroutine", "goroutine", 0, {"service": "api", "env": "prod", "instance": "a"}),
    ("goroutine", "goroutine", 5, {"service": "api", "env": "prod", "instance": "a"}),
    ("goroutine", "goroutine", 5, {"service": "web", "env": "dev", "instance": "c"}),
    ("mutex", "mutex", 0, {"service": "api", "env": "prod", "instance": "a"}),
    ("block", "block", 0, {"service": "api", "env": "prod", "instance": "a"}),
]
ALL_TYPES = sorted(
    [
        "block:contentions:count:contentions:count",
        "block:delay:nanoseconds:contentions:count",
        GOROUTINE,
        "memory:alloc_objects:count:space:bytes",
        "memory:alloc_space:bytes:space:bytes",
        "memory:inuse_objects:count:space:bytes",
        "memory:inuse_space:bytes:space:bytes",
        "mutex:contentions:count:contentions:count",
        "mutex:delay:nanoseconds:contentions:count",
        CPU,
        SAMPLES,
    ]
)
M = TypeVar("M", bound=Message)


def push_fixtures(client: TestClient) -> None:
    for name, kind, offset, labels in FIXTURES:
        params: dict[str, Any] = {
            "service": labels["service"],
            "type": kind,
            "time": str(T0 + offset),
            "label": [f"{k}={v}" for k, v in labels.items() if k != "service"],
        }
        response = client.post("/api/v1/ingest", params=params, content=(DATA / f"{name}.pb.gz").read_bytes())
        assert response.status_code == 201, response.text


@pytest.fixture
def pyro(client: TestClient) -> TestClient:
    push_fixtures(client)
    return client


def call(client: TestClient, method: str, request: Message, answer: type[M]) -> M:
    """The method called in binary protobuf and in JSON: both answers must be one message, which is returned."""
    binary = client.post(
        SERVICE + method,
        content=request.SerializeToString(),
        headers={"Content-Type": "application/proto", "Connect-Protocol-Version": "1", "Accept-Encoding": "gzip"},
    )
    assert binary.status_code == 200, binary.text
    assert binary.headers["content-type"] == "application/proto"
    from_binary = answer.FromString(binary.content)
    text = client.post(
        SERVICE + method,
        content=json_format.MessageToJson(request),
        headers={"Content-Type": "application/json", "Connect-Protocol-Version": "1"},
    )
    assert text.status_code == 200, text.text
    assert text.headers["content-type"] == "application/json"
    from_json = json_format.Parse(text.text, answer())
    assert from_json == from_binary, f"{method}: JSON and binary answers differ"
    return from_binary


def refused(client: TestClient, method: str, body: dict[str, Any], status: int, code: str) -> str:
    response = client.post(SERVICE + method, content=json.dumps(body), headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    error = response.json()
    assert error["code"] == code
    message: str = error["message"]
    return message


def stacks(profile_type: str, selector: str = "{}", start: int = T0, end: int = T0 + 60, **extra: Any) -> Any:
    return querier_pb2.SelectMergeStacktracesRequest(
        profile_typeID=profile_type, label_selector=selector, start=start * MS, end=end * MS, **extra
    )


# --- decoding flame graphs -------------------------------------------------------------------------------------


@dataclass
class Node:
    name: str
    depth: int
    start: int
    total: int
    self: int
    parent: Node | None


def decode(names: list[str], levels: list[list[int]], stride: int = 4, side: int = 0) -> list[Node]:
    """Nodes with absolute positions and parents found by position, as Grafana's reader finds them."""
    nodes: list[Node] = []
    previous: list[Node] = []
    for depth, level in enumerate(levels):
        current: list[Node] = []
        x = 0
        for i in range(0, len(level), stride):
            gap, total, self_ = level[i + 3 * side], level[i + 3 * side + 1], level[i + 3 * side + 2]
            start = x + gap
            x = start + total
            parent = next((p for p in previous if p.start <= start and start + total <= p.start + p.total), None)
            assert depth == 0 or parent is not None, f"no parent for {names[level[i + stride - 1]]} at depth {depth}"
            node = Node(names[level[i + stride - 1]], depth, start, total, self_, parent)
            current.append(node)
        nodes.extend(current)
        previous = current
    return nodes


def per_function(nodes: list[Node]) -> dict[str, tuple[int, int]]:
    """(flat, cum) per function as pprof counts them: cum once per stack, however often the function recurs."""
    flat: dict[str, int] = defaultdict(int)
    cum: dict[str, int] = defaultdict(int)
    for node in nodes:
        if node.depth == 0:
            continue
        flat[node.name] += node.self
        ancestors = set()
        up = node.parent
        while up is not None and up.depth > 0:
            ancestors.add(up.name)
            up = up.parent
        if node.name not in ancestors:
            cum[node.name] += node.total
    return {name: (flat[name], cum[name]) for name in cum}


def graph_levels(graph: querier_pb2.FlameGraph | querier_pb2.FlameGraphDiff) -> list[list[int]]:
    return [list(level.values) for level in graph.levels]


# --- the methods -----------------------------------------------------------------------------------------------


def test_profile_types_list_what_the_range_holds(pyro: TestClient) -> None:
    # Grafana's "Save & test": 1970, nothing there, and still a 200.
    save_and_test = call(
        pyro, "ProfileTypes", querier_pb2.ProfileTypesRequest(start=1000, end=4000), querier_pb2.ProfileTypesResponse
    )
    assert list(save_and_test.profile_types) == []
    everything = call(
        pyro,
        "ProfileTypes",
        querier_pb2.ProfileTypesRequest(start=T0 * MS, end=(T0 + 60) * MS),
        querier_pb2.ProfileTypesResponse,
    )
    assert [t.ID for t in everything.profile_types] == ALL_TYPES
    cpu = next(t for t in everything.profile_types if t.ID == CPU)
    assert (cpu.name, cpu.sample_type, cpu.sample_unit, cpu.period_type, cpu.period_unit) == (
        "process_cpu", "cpu", "nanoseconds", "cpu", "nanoseconds",
    )  # fmt: skip
    later = call(
        pyro,
        "ProfileTypes",
        querier_pb2.ProfileTypesRequest(start=(T0 + 15) * MS, end=(T0 + 60) * MS),
        querier_pb2.ProfileTypesResponse,
    )
    assert [t.ID for t in later.profile_types] == [CPU, SAMPLES]  # only cpu_slow lies after T0+15
    assert [
        t.ID
        for t in call(
            pyro, "ProfileTypes", querier_pb2.ProfileTypesRequest(), querier_pb2.ProfileTypesResponse
        ).profile_types
    ] == ALL_TYPES


def test_save_and_test_on_an_empty_store(client: TestClient) -> None:
    answer = call(
        client, "ProfileTypes", querier_pb2.ProfileTypesRequest(start=1000, end=4000), querier_pb2.ProfileTypesResponse
    )
    assert len(answer.profile_types) == 0
    stats = call(client, "GetProfileStats", types_pb2.GetProfileStatsRequest(), types_pb2.GetProfileStatsResponse)
    assert not stats.data_ingested
    empty = call(client, "SelectMergeStacktraces", stacks(CPU), querier_pb2.SelectMergeStacktracesResponse)
    assert list(empty.flamegraph.names) == ["total"] and graph_levels(empty.flamegraph) == [[0, 0, 0, 0]]


def test_label_names_and_values_honour_matchers_and_range(pyro: TestClient) -> None:
    request = types_pb2.LabelNamesRequest(matchers=[f'{{__profile_type__="{CPU}"}}'], start=T0 * MS, end=(T0 + 60) * MS)
    names = call(pyro, "LabelNames", request, types_pb2.LabelNamesResponse).names
    assert list(names) == [
        "__name__", "__period_type__", "__period_unit__", "__profile_type__", "__type__", "__unit__",
        "env", "instance", "service_name",
    ]  # fmt: skip
    values = types_pb2.LabelValuesRequest(name="service_name", start=T0 * MS, end=(T0 + 60) * MS)
    assert list(call(pyro, "LabelValues", values, types_pb2.LabelValuesResponse).names) == ["api", "web"]
    values.matchers.append('{__name__="memory"}')
    assert list(call(pyro, "LabelValues", values, types_pb2.LabelValuesResponse).names) == ["api"]
    values.matchers.append('{env="dev"}')  # several matchers: any of them
    assert list(call(pyro, "LabelValues", values, types_pb2.LabelValuesResponse).names) == ["api", "web"]
    by_service = types_pb2.LabelValuesRequest(
        name="instance", matchers=['{service_name="api"}'], start=T0 * MS, end=(T0 + 60) * MS
    )
    assert list(call(pyro, "LabelValues", by_service, types_pb2.LabelValuesResponse).names) == ["a", "b"]
    by_service.start, by_service.end = (T0 + 15) * MS, (T0 + 60) * MS  # only web's profile lies there
    assert list(call(pyro, "LabelValues", by_service, types_pb2.LabelValuesResponse).names) == []
    types = types_pb2.LabelValuesRequest(
        name="__profile_type__", matchers=['{service_name="web"}'], start=T0 * MS, end=(T0 + 60) * MS
    )
    assert list(call(pyro, "LabelValues", types, types_pb2.LabelValuesResponse).names) == [GOROUTINE, CPU, SAMPLES]
    everything = types_pb2.LabelNamesRequest(matchers=["{}"], start=T0 * MS, end=(T0 + 60) * MS)
    assert "service" not in call(pyro, "LabelNames", everything, types_pb2.LabelNamesResponse).names


def test_series_as_the_drilldown_app_asks(pyro: TestClient) -> None:
    request = querier_pb2.SeriesRequest(
        matchers=["{}"], label_names=["service_name", "__profile_type__"], start=T0 * MS, end=(T0 + 60) * MS
    )
    answer = call(pyro, "Series", request, querier_pb2.SeriesResponse)
    found = {tuple((p.name, p.value) for p in labels.labels) for labels in answer.labels_set}
    expected = {(("__profile_type__", t), ("service_name", "api")) for t in ALL_TYPES}
    expected |= {(("__profile_type__", t), ("service_name", "web")) for t in (CPU, SAMPLES, GOROUTINE)}
    assert found == expected
    full = querier_pb2.SeriesRequest(
        matchers=['{service_name="web", __name__="goroutine"}'], start=T0 * MS, end=(T0 + 60) * MS
    )
    (only,) = call(pyro, "Series", full, querier_pb2.SeriesResponse).labels_set
    assert {p.name: p.value for p in only.labels} == {
        "__name__": "goroutine", "__profile_type__": GOROUTINE, "__type__": "goroutine", "__unit__": "count",
        "__period_type__": "goroutine", "__period_unit__": "count", "env": "dev", "instance": "c",
        "service_name": "web",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("profile_type", "kind", "sample"),
    [
        (CPU, "cpu", "cpu"),
        (SAMPLES, "cpu", "samples"),
        ("memory:inuse_space:bytes:space:bytes", "heap", "inuse_space"),
        ("memory:alloc_objects:count:space:bytes", "allocs", "alloc_objects"),
        (GOROUTINE, "goroutine", "goroutine"),
        ("mutex:delay:nanoseconds:contentions:count", "mutex", "delay"),
        ("block:contentions:count:contentions:count", "block", "contentions"),
    ],
)
def test_select_merge_stacktraces_equals_the_flamegraph_api(
    pyro: TestClient, profile_type: str, kind: str, sample: str
) -> None:
    selector = '{service_name="api"}'
    answer = call(
        pyro,
        "SelectMergeStacktraces",
        stacks(profile_type, selector, max_nodes=100_000),
        querier_pb2.SelectMergeStacktracesResponse,
    )
    graph = answer.flamegraph
    levels = graph_levels(graph)
    assert graph.names[0] == "total" and levels[0][:1] == [0] and levels[0][3] == 0
    assert all(len(level) % 4 == 0 for level in levels)
    ours = decode(list(graph.names), levels)
    theirs = pyro.get(
        "/api/v1/flamegraph",
        params={"type": kind, "sample": sample, "query": '{service="api"}', "from": str(T0), "to": str(T0 + 60),
                "aggregation": "sum", "max_nodes": "100000"},
    ).json()  # fmt: skip
    assert graph.total == theirs["total"] > 0
    assert per_function(ours) == {
        name: values for name, values in per_function(decode(theirs["names"], theirs["levels"])).items() if values[1]
    }
    assert graph.max_self == max(node.self for node in ours)


def test_flame_graph_numbers_equal_go_tool_pprof(pyro: TestClient) -> None:
    files = [DATA / "cpu.pb.gz", DATA / "cpu2.pb.gz"]
    for profile_type, sample in ((CPU, "cpu"), (SAMPLES, "samples")):
        request = stacks(profile_type, '{service_name="api", env=~"pro.*"}', max_nodes=100_000)
        graph = call(pyro, "SelectMergeStacktraces", request, querier_pb2.SelectMergeStacktracesResponse).flamegraph
        expected = pprof_top(files, sample, UNITS[sample])
        assert graph.total == expected.total
        assert per_function(decode(list(graph.names), graph_levels(graph))) == {
            name: row for name, row in expected.rows.items() if row[1]
        }


def test_max_nodes_folds_into_other(pyro: TestClient) -> None:
    full = call(
        pyro, "SelectMergeStacktraces", stacks(CPU, max_nodes=100_000), querier_pb2.SelectMergeStacktracesResponse
    ).flamegraph
    small = call(
        pyro, "SelectMergeStacktraces", stacks(CPU, max_nodes=5), querier_pb2.SelectMergeStacktracesResponse
    ).flamegraph
    nodes = decode(list(small.names), graph_levels(small))
    assert "other" in small.names and "other" not in full.names
    assert len([n for n in nodes if n.name != "other"]) <= 5 + 1  # the root is not counted
    assert small.total == full.total
    assert sum(n.self for n in nodes) == small.total  # every sample is somewhere: in a kept node or in other
    default = call(pyro, "SelectMergeStacktraces", stacks(CPU), querier_pb2.SelectMergeStacktracesResponse).flamegraph
    assert default == full  # fewer nodes than the default limit (2048)


def test_select_series_sums_averages_and_groups(pyro: TestClient) -> None:
    # Steps of 15 s from T0 - 10: (T0-25, T0-10], (T0-10, T0+5], (T0+5, T0+20], (T0+20, T0+35].
    start, end = (T0 - 10) * MS, (T0 + 35) * MS
    request = querier_pb2.SelectSeriesRequest(profile_typeID=CPU, label_selector="{}", start=start, end=end, step=15)
    (line,) = call(pyro, "SelectSeries", request, querier_pb2.SelectSeriesResponse).series
    assert list(line.labels) == []  # no group_by: one series of everything
    totals = {
        name: pprof_top([DATA / f"{name}.pb.gz"], "cpu", "nanoseconds").total for name in ("cpu", "cpu2", "cpu_slow")
    }
    assert [(p.timestamp, p.value) for p in line.points] == [
        ((T0 + 5) * MS, totals["cpu"]),  # T0 lands in (T0-10, T0+5], stamped with the step's end
        ((T0 + 20) * MS, totals["cpu2"] + totals["cpu_slow"]),  # T0+10 and T0+20 (the end is inclusive)
    ]
    request.group_by.append("service_name")
    grouped = call(pyro, "SelectSeries", request, querier_pb2.SelectSeriesResponse).series
    assert [[(p.name, p.value) for p in s.labels] for s in grouped] == [
        [("service_name", "api")],
        [("service_name", "web")],
    ]
    assert [(p.timestamp, p.value) for p in grouped[1].points] == [((T0 + 20) * MS, totals["cpu_slow"])]
    request.limit = 1
    (top,) = call(pyro, "SelectSeries", request, querier_pb2.SelectSeriesResponse).series
    largest = 0 if totals["cpu"] + totals["cpu2"] >= totals["cpu_slow"] else 1
    assert top == grouped[largest]
    # Goroutines at T0 and T0+5 (api) and T0+5 (web): one step holds all three.
    goroutines = pprof_top([DATA / "goroutine.pb.gz"], "goroutine", "count").total
    gauge = querier_pb2.SelectSeriesRequest(
        profile_typeID=GOROUTINE, label_selector="{}", start=start, end=end, step=15
    )
    (summed,) = call(pyro, "SelectSeries", gauge, querier_pb2.SelectSeriesResponse).series
    assert [(p.timestamp, p.value) for p in summed.points] == [((T0 + 5) * MS, 3 * goroutines)]
    gauge.aggregation = types_pb2.TIME_SERIES_AGGREGATION_TYPE_AVERAGE
    (averaged,) = call(pyro, "SelectSeries", gauge, querier_pb2.SelectSeriesResponse).series
    assert [(p.timestamp, p.value) for p in averaged.points] == [((T0 + 5) * MS, goroutines)]
    # A step that ends after `end` is not Pyroscope's: the profile at T0+20 is left out when end is T0+19.
    request = querier_pb2.SelectSeriesRequest(
        profile_typeID=CPU, label_selector="{}", start=start, end=(T0 + 19) * MS, step=15
    )
    (line,) = call(pyro, "SelectSeries", request, querier_pb2.SelectSeriesResponse).series
    assert [(p.timestamp, p.value) for p in line.points] == [((T0 + 5) * MS, totals["cpu"])]


def test_diff_has_both_sides_on_their_own_axes(pyro: TestClient) -> None:
    left, right = DATA / "cpu.pb.gz", DATA / "cpu_slow.pb.gz"
    request = querier_pb2.DiffRequest(
        left=stacks(CPU, '{instance="a"}', max_nodes=100_000), right=stacks(CPU, '{service_name="web"}')
    )
    graph = call(pyro, "Diff", request, querier_pb2.DiffResponse).flamegraph
    levels = graph_levels(graph)
    assert graph.names[0] == "total" and all(len(level) % 7 == 0 for level in levels)
    expected_left, expected_right = pprof_top([left], "cpu", "nanoseconds"), pprof_top([right], "cpu", "nanoseconds")
    assert (graph.leftTicks, graph.rightTicks) == (expected_left.total, expected_right.total)
    assert graph.total == graph.leftTicks + graph.rightTicks
    for side, expected in ((0, expected_left), (1, expected_right)):
        nodes = [n for n in decode(list(graph.names), levels, stride=7, side=side)]
        assert per_function([n for n in nodes if n.total or n.depth == 0]) == {
            name: row for name, row in expected.rows.items() if row[1]
        }
    assert graph.max_self == max(max(level[2::7] + level[5::7]) for level in levels)


def test_select_merge_profile_is_the_merged_pprof(pyro: TestClient, tmp_path: Path) -> None:
    request = querier_pb2.SelectMergeProfileRequest(
        profile_typeID="memory:alloc_space:bytes:space:bytes", label_selector="{}", start=T0 * MS, end=(T0 + 60) * MS
    )
    merged = call(pyro, "SelectMergeProfile", request, profile_pb2.Profile)
    assert merged.string_table[merged.default_sample_type] == "alloc_space"
    path = tmp_path / "merged.pb"
    path.write_bytes(merged.SerializeToString())
    for sample in ("alloc_space", "alloc_objects"):
        expected = pprof_top([DATA / "allocs.pb.gz"], sample, UNITS[sample])
        again = pprof_top([path], sample, UNITS[sample])
        assert (again.total, again.rows) == (expected.total, expected.rows)
    request.profile_typeID = CPU
    cpu = call(pyro, "SelectMergeProfile", request, profile_pb2.Profile)
    path.write_bytes(cpu.SerializeToString())
    files = [DATA / "cpu.pb.gz", DATA / "cpu2.pb.gz", DATA / "cpu_slow.pb.gz"]
    assert pprof_top([path], "cpu", "nanoseconds").rows == pprof_top(files, "cpu", "nanoseconds").rows


def test_get_profile_stats(pyro: TestClient) -> None:
    stats = call(pyro, "GetProfileStats", types_pb2.GetProfileStatsRequest(), types_pb2.GetProfileStatsResponse)
    assert (stats.data_ingested, stats.oldest_profile_time, stats.newest_profile_time) == (
        True,
        T0 * MS,
        (T0 + 20) * MS,
    )
    text = pyro.post(SERVICE + "GetProfileStats", content="{}", headers={"Content-Type": "application/json"}).json()
    assert text == {"dataIngested": True, "oldestProfileTime": str(T0 * MS), "newestProfileTime": str((T0 + 20) * MS)}


def test_service_name_and_virtual_labels_in_selectors(pyro: TestClient) -> None:
    def total(selector: str, profile_type: str = CPU) -> int:
        request = stacks(profile_type, selector)
        return int(
            call(pyro, "SelectMergeStacktraces", request, querier_pb2.SelectMergeStacktracesResponse).flamegraph.total
        )

    everything = total("{}")
    assert everything == total("") == total(f'{{__profile_type__="{CPU}"}}') == total('{__name__="process_cpu"}')
    assert total(f'{{__profile_type__="{SAMPLES}"}}') == 0  # the selector and the type disagree: nothing
    assert total('{service_name="api"}') + total('{service_name="web"}') == everything
    assert total('{service_name=~"a.*"}') == total('{service_name="api"}') > 0
    assert total('{service="api"}') == total('{service_name="api"}')  # Stackyard's own name works too
    assert total("{}", "goroutines:goroutine:count:goroutine:count") == 0  # no series is the SDK's goroutines
    assert total("{}", "nosuch:cpu:nanoseconds:cpu:nanoseconds") == 0


def test_bad_requests_are_named_refusals(pyro: TestClient) -> None:
    body = {"profileTypeID": "cpu", "labelSelector": "{}", "start": str(T0 * MS), "end": str((T0 + 60) * MS)}
    assert "profile type ID" in refused(pyro, "SelectMergeStacktraces", body, 400, "invalid_argument")
    body["profileTypeID"] = CPU
    body["labelSelector"] = '{service_name="api"'
    assert "label_selector" in refused(pyro, "SelectMergeStacktraces", body, 400, "invalid_argument")
    body["labelSelector"] = "{}"
    body["maxNodes"] = "1000000000"
    assert "max_flamegraph_nodes" in refused(pyro, "SelectMergeStacktraces", body, 400, "invalid_argument")
    del body["maxNodes"]
    body["end"] = str((T0 - 60) * MS)
    assert "before" in refused(pyro, "SelectMergeStacktraces", body, 400, "invalid_argument")
    series = {"profileTypeID": CPU, "labelSelector": "{}", "start": str(T0 * MS), "end": str((T0 + 60) * MS)}
    assert "step" in refused(pyro, "SelectSeries", series, 400, "invalid_argument")
    selector = {**body, "end": str((T0 + 60) * MS), "stackTraceSelector": {"callSite": [{"name": "main.main"}]}}
    assert "not served" in refused(pyro, "SelectMergeStacktraces", selector, 400, "invalid_argument")
    assert "name" in refused(pyro, "LabelValues", {}, 400, "invalid_argument")
    diff = {
        "left": body | {"end": str((T0 + 60) * MS)},
        "right": {**body, "profileTypeID": SAMPLES, "end": str((T0 + 60) * MS)},
    }
    assert "left side" in refused(pyro, "Diff", diff, 400, "invalid_argument")


def test_queries_need_the_read_scope(sqlite_url: str) -> None:
    tokens = {scope: f"token-{scope.value}-{'y' * 24}" for scope in Scope}
    settings = Settings(
        database_url=sqlite_url,
        retention_raw=TEST_RETENTION,
        auth_tokens=[TokenEntry(name=s.value, scopes=[s], sha256=digest(t)) for s, t in tokens.items()],
    )
    with TestClient(create_app(settings)) as client:
        request = querier_pb2.ProfileTypesRequest(start=1000, end=4000).SerializeToString()
        headers = {"Content-Type": "application/proto"}
        anonymous = client.post(SERVICE + "ProfileTypes", content=request, headers=headers)
        assert anonymous.status_code == 401
        assert anonymous.json() == {"code": "unauthenticated", "message": "authentication required"}
        ingest = client.post(
            SERVICE + "ProfileTypes",
            content=request,
            headers={**headers, "Authorization": f"Bearer {tokens[Scope.INGEST]}"},
        )
        assert ingest.status_code == 403 and ingest.json()["code"] == "permission_denied"
        for scope in (Scope.READ, Scope.ADMIN):
            allowed = client.post(
                SERVICE + "ProfileTypes",
                content=request,
                headers={**headers, "Authorization": f"Bearer {tokens[scope]}"},
            )
            assert allowed.status_code == 200 and allowed.content == b""
        render = client.get("/pyroscope/render", params={"query": f"{CPU}{{}}", "from": "now-1h", "until": "now"})
        assert render.status_code == 401


# --- render ------------------------------------------------------------------------------------------------------


def test_render_is_flamebearer_with_a_timeline(pyro: TestClient) -> None:
    params = {
        "query": f'{CPU}{{service_name="api"}}',
        "from": str(T0 - 10),
        "until": str(T0 + 35),
        "max-nodes": "100000",
    }
    answer = pyro.get("/pyroscope/render", params=params).json()
    assert set(answer) == {"version", "flamebearer", "metadata", "timeline", "groups", "heatmap"}
    assert answer["metadata"] == {
        "format": "single",
        "spyName": "",
        "sampleRate": 1_000_000_000,
        "units": "samples",
        "name": "cpu",
    }
    graph = call(
        pyro,
        "SelectMergeStacktraces",
        stacks(CPU, '{service_name="api"}', T0 - 10, T0 + 35, max_nodes=100_000),
        querier_pb2.SelectMergeStacktracesResponse,
    ).flamegraph
    assert answer["flamebearer"] == {
        "names": list(graph.names), "levels": graph_levels(graph), "numTicks": graph.total, "maxSelf": graph.max_self,
    }  # fmt: skip
    totals = [pprof_top([DATA / f"{n}.pb.gz"], "cpu", "nanoseconds").total for n in ("cpu", "cpu2")]
    # 15 s steps from T0-10: the points stamped T0+5 and T0+20 fall in samples 1 and 2.
    assert answer["timeline"] == {
        "startTime": T0 - 10,
        "samples": [0, totals[0], totals[1]],
        "durationDelta": 15,
        "watermarks": None,
    }
    same = pyro.get(
        "/pyroscope/render", params={**params, "from": str((T0 - 10) * MS), "until": str((T0 + 35) * MS)}
    ).json()
    assert same == answer  # milliseconds, told apart from seconds by their size
    by_name = pyro.get(
        "/pyroscope/render", params={**params, "query": f'{{__name__="{CPU}", service_name="api"}}'}
    ).json()
    assert by_name == answer
    grouped = pyro.get("/pyroscope/render", params={**params, "query": f"{CPU}{{}}", "groupBy": "service_name"}).json()
    assert set(grouped["groups"]) == {"api", "web"}
    assert pyro.get("/pyroscope/render", params={**params, "query": "{}"}).status_code == 400


def test_render_diff_is_double_flamebearer(pyro: TestClient) -> None:
    params = {
        "leftQuery": f'{CPU}{{instance="a"}}', "leftFrom": str(T0 * MS), "leftUntil": str((T0 + 1) * MS),
        "rightQuery": f'{CPU}{{service_name="web"}}', "rightFrom": str(T0 * MS), "rightUntil": str((T0 + 60) * MS),
        "max-nodes": "100000",
    }  # fmt: skip
    answer = pyro.get("/pyroscope/render-diff", params=params).json()
    assert answer["metadata"]["format"] == "double"
    assert answer["leftTicks"] == pprof_top([DATA / "cpu.pb.gz"], "cpu", "nanoseconds").total
    assert answer["rightTicks"] == pprof_top([DATA / "cpu_slow.pb.gz"], "cpu", "nanoseconds").total
    assert answer["flamebearer"]["numTicks"] == answer["leftTicks"] + answer["rightTicks"]
    assert all(len(level) % 7 == 0 for level in answer["flamebearer"]["levels"])
    mismatched = pyro.get("/pyroscope/render-diff", params={**params, "rightQuery": f"{SAMPLES}{{}}"})
    assert mismatched.status_code == 400 and "must match" in mismatched.json()["error"]
