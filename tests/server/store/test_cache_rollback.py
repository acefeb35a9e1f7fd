"""A write that fails part-way leaves no id of its rolled-back rows in the caches.

A profile's new functions, line frames, stack nodes and sample keys are
created in one transaction with the profile row (label sets, the series
and the shape in their own). If a commit fails (the database went away at
that moment), the ids it handed out never existed; a cache that kept them
would hand them to the next profile, whose rows would then point at
nothing. Every commit after the first ``k`` is made to fail, for each ``k``,
and the store must stay consistent and take the profile once the database
answers again. A statement failing inside the one transaction is tried too:
its last insert, after every other table has handed out its new ids.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError

from server.ingest.profile import ingest
from server.pprof.decode import decode_columns
from server.settings import Settings
from server.store.check import check_store
from server.store.models import SegmentKind, SegmentRow
from server.store.repository import Store
from server.store.symbols import NOT_KNOWN, function_digests
from tests.support.statements import bound_kinds
from tests.support.tools import DATA

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)

CPU = (DATA / "cpu.pb.gz").read_bytes()


#: A first ingest's commits: the series, the shape, the label sets, the new rows with the profile.
COMMITS = 4


@pytest.mark.parametrize("commits_before_failure", range(COMMITS))
def test_failed_commits_leave_no_ids_behind(store: Store, settings: Settings, commits_before_failure: int) -> None:
    state = {"commits": 0, "failing": True}

    def fail_late_commits(_conn: Any) -> None:
        state["commits"] += 1
        if state["failing"] and state["commits"] > commits_before_failure:
            raise OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))

    event.listen(store.engine, "commit", fail_late_commits)
    try:
        with pytest.raises(OperationalError):
            ingest(store, settings, CPU, {"service": "torn"}, time_ns=time.time_ns())
        state["failing"] = False
        stored = ingest(store, settings, CPU, {"service": "torn"}, time_ns=time.time_ns())
    finally:
        event.remove(store.engine, "commit", fail_late_commits)
    assert stored.stored.samples > 0
    report = check_store(store.engine, blobs=True, raw_since_ns=0, hourly_since_ns=0)
    assert report.ok, report.problems


def test_a_first_ingest_commits_as_often_as_counted(store: Store, settings: Settings) -> None:
    """What the test above fails in turn: every commit of a first ingest, and no more."""
    commits: list[int] = []
    event.listen(store.engine, "commit", lambda _conn: commits.append(1))
    ingest(store, settings, CPU, {"service": "counted"}, time_ns=time.time_ns())
    assert len(commits) == COMMITS


def test_a_failed_last_insert_leaves_no_id_in_any_cache(store: Store, settings: Settings) -> None:
    """The sample keys' segment is the last insert of a profile's one transaction: by then functions,
    line frames and both trees have handed out ids. Its failure must leave none of them cached."""

    def fail_key_insert(_conn: Any, _cursor: Any, statement: str, parameters: Any, context: Any, _many: bool) -> None:
        if not statement.lstrip().upper().startswith("INSERT INTO SEGMENTS"):
            return
        if SegmentKind.SAMPLE_KEYS in bound_kinds(statement, parameters, context):
            raise OperationalError(statement, {}, Exception("server closed the connection unexpectedly"))

    event.listen(store.engine, "before_cursor_execute", fail_key_insert)
    try:
        with pytest.raises(OperationalError):
            ingest(store, settings, CPU, {"service": "torn"}, time_ns=time.time_ns())
    finally:
        event.remove(store.engine, "before_cursor_execute", fail_key_insert)
    columns = decode_columns(CPU)
    digests = function_digests(
        columns.strings, columns.function_name, columns.function_system_name, columns.function_filename
    )
    dedup = store.dedup
    assert bool((dedup.functions.known(*digests) == NOT_KNOWN).all())
    assert dedup.functions.names([1, 2, 3]) == {}  # nothing committed, nothing cached
    assert dedup.stacks.size == 0 and not bool(dedup.sample_keys.known.any())
    assert not bool(dedup.line_vectors.has(np.arange(1, 10_000)).any())
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(SegmentRow)).scalar_one() == 0
    stored = ingest(store, settings, CPU, {"service": "torn"}, time_ns=time.time_ns())
    assert stored.stored.samples > 0
    assert dedup.stacks.size > 0 and int(np.count_nonzero(dedup.sample_keys.known)) > 0
    report = check_store(store.engine, blobs=True, raw_since_ns=0, hourly_since_ns=0)
    assert report.ok, report.problems
