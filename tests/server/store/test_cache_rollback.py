"""A write that fails part-way leaves no id of its rolled-back rows in the caches.

Functions, stack nodes and sample keys are created in their own
transactions before the profile row. If one of those commits fails (the
database went away at that moment), the ids it returned never existed; a
cache that kept them would hand them to the next profile, whose rows would
then point at nothing. Every commit after the first ``k`` is made to fail,
for each ``k``, and the store must stay consistent and take the profile once
the database answers again.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from server.ingest.profile import ingest
from server.settings import Settings
from server.store.check import check_store
from server.store.repository import Store
from tests.support.tools import DATA

pytestmark = pytest.mark.dates  # CI runs it again with the clock 400 days ahead (Makefile: pytest-later)

CPU = (DATA / "cpu.pb.gz").read_bytes()


@pytest.mark.parametrize("commits_before_failure", range(6))
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
