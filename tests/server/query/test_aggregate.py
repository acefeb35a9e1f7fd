"""Reading and summing stored profiles (server.query.aggregate), called directly on both databases.

Profile numbers are checked against ``go tool pprof`` on the same captures:
the merged total, and every function's flat value (the samples whose leaf
frame it is). The edges use the same real captures: a part without the
sample type, a profile whose blob is gone, an empty range.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import delete

from server.errors import InvalidParameter
from server.ingest.profile import ingest
from server.query.aggregate import Merged, merge_profiles, merge_selected, resolve_sample, split_selector
from server.query.request import ProfileQuery
from server.query.selector import parse_selector
from server.settings import Settings
from server.store.models import ProfileBlob
from server.store.profiles import ProfileMeta
from server.store.repository import Store
from server.store.stacks import ROOT
from tests.support.oracle import pprof_top
from tests.support.tools import DATA

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)

NS = 10**9
T0 = 1_790_000_000 * NS
CPU = [DATA / "cpu.pb.gz", DATA / "cpu2.pb.gz"]


def put(store: Store, settings: Settings, path: Path, at_s: int, kind: str, **labels: str) -> ProfileMeta:
    stored = ingest(store, settings, path.read_bytes(), {"service": "demo", **labels}, kind, T0 + at_s * NS).stored
    meta = store.profiles.get(stored.id)
    assert meta is not None
    return meta


def query(kind: str, selector: str = '{service="demo"}', **options: str) -> ProfileQuery:
    return ProfileQuery(kind, parse_selector(selector), T0, T0 + 3600 * NS, **options)  # type: ignore[arg-type]


def flats(store: Store, merged: Merged) -> dict[str, int]:
    """Per function, the values of the samples whose leaf frame it is: pprof's flat."""
    framed = merged.nodes != ROOT
    store.stacks.ensure(merged.nodes[framed])
    functions = store.stacks.function[merged.nodes[framed]]
    names = store.functions.names(set(functions.tolist()))
    result: dict[str, int] = {}
    for function, value in zip(functions.tolist(), merged.values[framed].tolist(), strict=True):
        result[names[function]] = result.get(names[function], 0) + value
    return {name: value for name, value in result.items() if value}


def pprof_flats(rows: dict[str, tuple[int, int]]) -> dict[str, int]:
    return {name: flat for name, (flat, _) in rows.items() if flat}


def test_a_merge_of_two_captures_equals_pprofs_merge(store: Store, settings: Settings) -> None:
    for index, path in enumerate(CPU):
        put(store, settings, path, index * 10, "cpu", instance=f"i{index}")
    for sample, unit in (("cpu", "nanoseconds"), ("samples", "count")):
        merged = merge_profiles(store, query("cpu", sample=sample), 100)
        expected = pprof_top(CPU, sample, unit)
        assert (merged.sample_type, merged.unit, merged.aggregation) == (sample, unit, "sum")
        assert (merged.profile_count, merged.divisor) == (2, 1)
        assert merged.total() == expected.total
        assert flats(store, merged) == pprof_flats(expected.rows)
        # One row per sample key: sorted, no key twice.
        assert merged.keys is not None and bool((np.diff(merged.keys) > 0).all())
        # By node: one row per stack leaf, the key rows summed per node.
        by_node = merge_profiles(store, query("cpu", sample=sample), 100, by_node=True)
        assert by_node.keys is None and by_node.labelsets is None
        assert bool((np.diff(by_node.nodes) > 0).all())
        per_node: dict[int, int] = {}
        for node, value in zip(merged.nodes.tolist(), merged.values.tolist(), strict=True):
            per_node[node] = per_node.get(node, 0) + value
        assert dict(zip(by_node.nodes.tolist(), by_node.values.tolist(), strict=True)) == per_node


def test_sample_label_matchers_keep_what_pprof_tagfocus_keeps(store: Store, settings: Settings) -> None:
    for index, path in enumerate(CPU):
        put(store, settings, path, index * 10, "cpu")
    merged = merge_profiles(store, query("cpu", '{service="demo", handler="/checkout"}', sample="cpu"), 100)
    # Asked for node rows, a merge with sample-label matchers still reads keys: it needs their label sets.
    assert merge_profiles(store, query("cpu", '{handler="/checkout"}', sample="cpu"), 100, by_node=True).total() == (
        merged.total()
    )
    expected = pprof_top(CPU, "cpu", "nanoseconds", extra=("-tagfocus=handler=^/checkout$",))
    assert merged.total() == expected.shown > 0
    assert flats(store, merged) == pprof_flats(expected.rows)
    assert merged.labelsets is not None
    labelled = store.label_sets(set(merged.labelsets.tolist()))
    assert {dict(labelled[ls][0])["handler"] for ls in merged.labelsets.tolist()} == {"/checkout"}


def test_split_selector_tells_series_labels_from_sample_labels(store: Store, settings: Settings) -> None:
    put(store, settings, CPU[0], 0, "cpu", instance="i0")
    put(store, settings, CPU[1], 0, "cpu", instance="i1")
    series, on_samples = split_selector(store, query("cpu", '{instance="i1", handler=~"/s.*"}'))
    assert [s.labels["instance"] for s in series] == ["i1"]
    assert [m.name for m in on_samples.matchers] == ["handler"]
    assert split_selector(store, query("goroutine"))[0] == []  # no series of that kind


def test_gauges_are_averaged_per_profile_unless_summed(store: Store, settings: Settings) -> None:
    goroutines = DATA / "goroutine.pb.gz"
    put(store, settings, goroutines, 0, "goroutine")
    put(store, settings, goroutines, 15, "goroutine")
    expected = pprof_top([goroutines, goroutines], "goroutine", "count")
    averaged = merge_profiles(store, query("goroutine"), 100)
    assert (averaged.aggregation, averaged.profile_count, averaged.divisor) == ("avg", 2, 2)
    assert averaged.total() == expected.total  # the sum; the divisor is applied where numbers are shown
    assert flats(store, averaged) == pprof_flats(expected.rows)
    summed = merge_profiles(store, query("goroutine", aggregation="sum"), 100)
    assert (summed.aggregation, summed.divisor, summed.total()) == ("sum", 1, expected.total)


def test_resolve_sample_names_the_choices(store: Store, settings: Settings) -> None:
    heap = put(store, settings, DATA / "heap.pb.gz", 0, "heap")
    assert resolve_sample([heap], None) == ("inuse_space", "bytes")  # the profile's default sample type
    assert resolve_sample([heap], "alloc_objects") == ("alloc_objects", "count")
    assert resolve_sample([heap], "alloc_space/bytes") == ("alloc_space", "bytes")
    with pytest.raises(InvalidParameter, match="unknown sample type 'cpu'; this profile type has alloc_objects, "):
        resolve_sample([heap], "cpu")
    assert resolve_sample([], None) == ("", "")
    assert resolve_sample([], "cpu") == ("cpu", "")


def test_parts_without_the_sample_type_are_left_out(store: Store, settings: Settings) -> None:
    goroutine = put(store, settings, DATA / "goroutine.pb.gz", 0, "goroutine")
    cpu = put(store, settings, CPU[0], 0, "cpu")
    merged = merge_selected(store, [goroutine, cpu], "cpu", "nanoseconds", "sum")
    assert merged.profiles == [cpu]
    assert merged.total() == pprof_top(CPU[:1], "cpu", "nanoseconds").total


def test_a_profile_whose_blob_is_gone_is_left_out(store: Store, settings: Settings) -> None:
    """Retention may delete a profile between the plan listing it and its blob being read."""
    first = put(store, settings, CPU[0], 0, "cpu")
    second = put(store, settings, CPU[1], 10, "cpu")
    with store.engine.begin() as conn:
        conn.execute(delete(ProfileBlob).where(ProfileBlob.profile_id == first.id))
    merged = merge_selected(store, [first, second], "cpu", "nanoseconds", "sum")
    assert merged.profiles == [second]
    assert merged.total() == pprof_top(CPU[1:], "cpu", "nanoseconds").total


def test_nothing_selected_is_an_empty_merge(store: Store, settings: Settings) -> None:
    put(store, settings, DATA / "goroutine.pb.gz", 0, "goroutine")
    empty = ProfileQuery("goroutine", parse_selector('{service="demo"}'), T0 + NS, T0 + 2 * NS)
    merged = merge_profiles(store, empty, 100)
    assert (merged.profile_count, merged.divisor, merged.total()) == (0, 1, 0)
    assert merged.keys is not None and merged.labelsets is not None
    assert merged.keys.size == merged.nodes.size == merged.labelsets.size == merged.values.size == 0
    assert merged.sample_type == ""  # no profile to take the default from, and none asked for
    asked = ProfileQuery("goroutine", empty.selector, empty.start_ns, empty.end_ns, sample="goroutine")
    assert merge_profiles(store, asked, 100).sample_type == "goroutine"
