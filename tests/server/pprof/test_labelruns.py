"""Samples grouped by their label entries: exactly the groups a dictionary of each run's bytes finds."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.pprof import kernels, labelruns
from server.pprof.columns import ProfileColumns
from server.pprof.decode import decode_columns
from server.pprof.labelruns import label_runs, runs_by_bytes
from tests.support.tools import DATA

CPU = decode_columns((DATA / "cpu.pb.gz").read_bytes())


def _canonical(groups: np.ndarray, first: np.ndarray) -> list[int]:
    """Groups numbered by first appearance, and checked against ``first``: comparable across numberings."""
    assert sorted(groups[first].tolist()) == list(range(first.shape[0]))
    assert all(groups[f] == g for g, f in enumerate(first.tolist()))
    order: dict[int, int] = {}
    return [order.setdefault(g, len(order)) for g in groups.tolist()]


def _with_labels(runs: list[list[tuple[int, int, int, int]]]) -> ProfileColumns:
    """The cpu capture's columns carrying these label runs, one per sample (an empty run: unlabelled)."""
    offsets = np.zeros(len(runs) + 1, dtype=np.int64)
    np.cumsum([len(run) for run in runs], out=offsets[1:])
    flat = np.array([entry for run in runs for entry in run], dtype=np.int64).reshape(-1, 4)
    return dataclasses.replace(
        CPU,
        sample_label_offsets=offsets,
        label_key=flat[:, 0].copy(),
        label_str=flat[:, 1].copy(),
        label_num=flat[:, 2].copy(),
        label_num_unit=flat[:, 3].copy(),
    )


entries = st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(-1, 1), st.integers(0, 1))


@settings(max_examples=80, derandomize=True, deadline=None, database=None)
@given(st.lists(st.lists(entries, max_size=3), min_size=1, max_size=40))
def test_groups_are_those_of_the_bytes(runs: list[list[tuple[int, int, int, int]]]) -> None:
    columns = _with_labels(runs)
    labelled = np.flatnonzero(np.diff(columns.sample_label_offsets) > 0)
    if labelled.size == 0:
        return
    found = _canonical(*label_runs(columns, labelled))
    assert found == _canonical(*runs_by_bytes(columns, labelled))
    kept = [runs[i] for i in labelled.tolist()]
    for i, run in enumerate(kept):
        for j, other in enumerate(kept):
            assert (found[i] == found[j]) == (run == other)


def test_a_hash_collision_falls_back_to_the_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    runs = [[(1, 2, 0, 0)], [(1, 2, 0, 0)], [(2, 1, 0, 0)], [], [(1, 2, 0, 0), (2, 1, 0, 0)], [(2, 1, 0, 0)]]
    columns = _with_labels(runs)
    labelled = np.flatnonzero(np.diff(columns.sample_label_offsets) > 0)
    monkeypatch.setattr(labelruns, "mix64", np.zeros_like)  # every run hashes the same
    assert labelruns._hashed_runs(columns, labelled) is None
    assert _canonical(*label_runs(columns, labelled)) == [0, 0, 1, 2, 1]


def test_a_real_profile_groups_as_before() -> None:
    labelled = np.flatnonzero(np.diff(CPU.sample_label_offsets) > 0)
    assert labelled.size > 0
    assert _canonical(*label_runs(CPU, labelled)) == _canonical(*runs_by_bytes(CPU, labelled))


def test_without_the_kernel_the_numpy_grouping_is_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    labelled = np.flatnonzero(np.diff(CPU.sample_label_offsets) > 0)
    native = _canonical(*label_runs(CPU, labelled))
    monkeypatch.setattr(kernels, "label_runs", lambda _columns: None)  # not built, or past its probe budget
    assert _canonical(*label_runs(CPU, labelled)) == native
