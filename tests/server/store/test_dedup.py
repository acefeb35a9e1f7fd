"""Deduplication on its own, on both databases: a real profile's samples become ids that give its stacks back.

Each sample's sample key must lead to a stack node whose path to the root
is exactly the sample's frames (inlined ones expanded, as ``go tool pprof``
counts them) and to its ``pprof.Do`` labels; the same profile must resolve to
the same ids every time, in this process or a fresh one, and a profile seen
before must not touch the database at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from sqlalchemy import Engine, event, func, select

from server.pprof.columns import ProfileColumns
from server.pprof.decode import decode_columns, to_profile
from server.store.dedup import Dedup
from server.store.models import FunctionRow, SampleKeySegment
from server.store.repository import Store
from server.store.stacks import ROOT
from tests.support.tools import DATA

CPU = (DATA / "cpu.pb.gz").read_bytes()


def _columns() -> ProfileColumns:
    return decode_columns(CPU)


@contextmanager
def _statements(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _stack_names(dedup: Dedup, store: Store, node: int) -> list[str]:
    """Function names from ``node`` up to the root: leaf first, as a sample lists its frames."""
    dedup.stacks.ensure(np.array([node], dtype=np.int64))
    functions: list[int] = []
    while node != ROOT:
        functions.append(int(dedup.stacks.function[node]))
        node = int(dedup.stacks.parent[node])
    names = store.functions.names(functions)
    return [names[f] for f in functions]


def test_every_sample_key_gives_back_its_frames_and_labels(store: Store) -> None:
    dedup = Dedup(store.engine)
    columns = _columns()
    keys = dedup.sample_key_ids(columns)
    profile = to_profile(columns)
    assert keys.shape[0] == len(profile.samples) and bool((keys > 0).all())
    nodes, labelsets = dedup.sample_keys.resolve(keys)
    label_sets = dedup.labelsets.get(labelsets.tolist())
    for sample, node, labelset in zip(profile.samples, nodes.tolist(), labelsets.tolist(), strict=True):
        assert _stack_names(dedup, store, node) == [f.name for f in sample.frames()]
        assert label_sets[labelset] == (sample.labels, sample.num_labels)
    # The capture's labels (tests/data/README.md): some samples carry handler=..., others none (label set 0).
    handlers = {dict(label_sets[ls][0]).get("handler") for ls in labelsets.tolist()}
    assert {"/checkout", "/search", None} <= handlers
    assert 0 in labelsets.tolist()


def test_functions_are_stored_once_by_content(store: Store) -> None:
    dedup = Dedup(store.engine)
    dedup.sample_key_ids(_columns())
    profile = to_profile(_columns())
    distinct = {f.key() for f in profile.all_functions()}
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(FunctionRow)).scalar_one() == len(distinct)


def test_a_profile_seen_before_resolves_from_memory(store: Store) -> None:
    dedup = Dedup(store.engine)
    first = dedup.sample_key_ids(_columns())
    with _statements(store.engine) as statements:
        again = dedup.sample_key_ids(_columns())
    assert again.tolist() == first.tolist()
    assert statements == []


def test_a_fresh_process_and_a_reset_find_the_same_ids(store: Store) -> None:
    first = Dedup(store.engine)
    keys = first.sample_key_ids(_columns()).tolist()
    with store.engine.connect() as conn:
        stored = conn.execute(select(func.sum(SampleKeySegment.keys))).scalar_one()
    fresh = Dedup(store.engine)  # another replica or worker process: empty caches, the same database
    assert fresh.sample_key_ids(_columns()).tolist() == keys
    first.reset(epoch=3)
    assert first.epoch == 3 and int(first.stacks.known.sum()) == 1  # the root alone
    assert first.sample_key_ids(_columns()).tolist() == keys
    with store.engine.connect() as conn:
        assert conn.execute(select(func.sum(SampleKeySegment.keys))).scalar_one() == stored  # nothing added


def test_the_epoch_is_read_once(store: Store) -> None:
    dedup = Dedup(store.engine)
    assert dedup.epoch is None
    dedup.ensure_epoch()
    assert dedup.epoch == 0  # a fresh database: no collection ran
    with _statements(store.engine) as statements:
        dedup.ensure_epoch()
    assert statements == []
