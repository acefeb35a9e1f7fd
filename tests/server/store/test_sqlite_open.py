"""Connections opening one SQLite file at the same moment, as a fresh server's threads or starting ingest workers do."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from server.store.database import make_engine
from server.store.state import read_epoch

THREADS = 4
#: One first open in ~20 lost the race before the journal-mode change was retried: 100 make a miss unlikely.
TRIALS = 100


def test_threads_opening_a_wal_file_at_once_all_connect(sqlite_url: str, tmp_path: Path) -> None:
    """Each trial is a copy of a migrated WAL-mode file with no shared-memory index yet, opened by four threads at
    once: every one connects and reads (the losers of the index set-up wait instead of failing)."""
    template = Path(sqlite_url.removeprefix("sqlite:///"))
    failures: list[BaseException] = []
    epochs: list[int] = []
    for trial in range(TRIALS):
        path = tmp_path / f"copy-{trial}.db"
        shutil.copyfile(template, path)
        start = threading.Barrier(THREADS)

        def opener(url: str = f"sqlite:///{path}", start: threading.Barrier = start) -> None:
            engine = make_engine(url)
            try:
                start.wait()
                with engine.connect() as conn:
                    epochs.append(read_epoch(conn))
            except BaseException as exc:  # reported below: a thread's exception would vanish
                failures.append(exc)
                start.abort()
            finally:
                engine.dispose()

        threads = [threading.Thread(target=opener) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not failures, failures[:3]
    assert len(epochs) == THREADS * TRIALS
