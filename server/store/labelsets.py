"""Sample label sets (``pprof.Do`` labels) stored once each; id 0 means "no labels"."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence

from sqlalchemy import Engine, select

from server.store.database import chunks, insert_ignoring_conflicts
from server.store.keys import hash64
from server.store.models import SampleLabel, SampleLabelset
from server.store.state import lock_against_gc

StringLabels = tuple[tuple[str, str], ...]
NumLabels = tuple[tuple[str, int, str], ...]
LabelsetKey = tuple[StringLabels, NumLabels]
NO_LABELS = 0


def _hash(key: LabelsetKey) -> int:
    return hash64([json.dumps([key[0], key[1]], ensure_ascii=False)])


class LabelsetTable:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._ids: dict[LabelsetKey, int] = {((), ()): NO_LABELS}
        self._by_id: dict[int, LabelsetKey] = {NO_LABELS: ((), ())}
        self._lock = threading.Lock()

    def ids(self, keys: Sequence[LabelsetKey]) -> list[int]:
        missing = {key for key in keys if key not in self._ids}
        if missing:
            with self._lock:
                self._store(missing)
        return [self._ids[key] for key in keys]

    def _store(self, missing: set[LabelsetKey]) -> None:
        by_hash = {_hash(key): key for key in missing if key not in self._ids}
        rows = [
            {"hash": h, "labels": [list(p) for p in k[0]], "num_labels": [list(p) for p in k[1]]}
            for h, k in by_hash.items()
        ]
        with self._engine.begin() as conn:
            # A collection deletes label sets no key points at: one must not run between finding a stored
            # set's id and inserting its labels (a foreign key to a row gone). Ids found here may still be
            # collected once this commits: the profile's commit sees the epoch moved and resolves it again.
            lock_against_gc(conn)
            insert_ignoring_conflicts(conn, SampleLabelset.__table__, rows)  # type: ignore[arg-type]
            found: dict[int, int] = {}
            for part in chunks(list(by_hash), 500):
                query = select(SampleLabelset.id, SampleLabelset.hash).where(SampleLabelset.hash.in_(part))
                found.update({h: i for i, h in conn.execute(query)})
            pairs = [
                {"labelset_id": found[h], "name": name, "value": value}
                for h, key in by_hash.items()
                for name, value in key[0]
            ]
            insert_ignoring_conflicts(conn, SampleLabel.__table__, pairs)  # type: ignore[arg-type]
        for h, key in by_hash.items():
            self._ids[key] = found[h]
            self._by_id[found[h]] = key

    def get(self, ids: Iterable[int]) -> dict[int, LabelsetKey]:
        """Label sets by id, loading the ones this process has not seen."""
        wanted = set(ids)
        unknown = [i for i in wanted if i not in self._by_id]
        if unknown:
            with self._engine.connect() as conn:
                for part in chunks(unknown, 500):
                    query = select(SampleLabelset.id, SampleLabelset.labels, SampleLabelset.num_labels).where(
                        SampleLabelset.id.in_(part)
                    )
                    for lid, labels, num_labels in conn.execute(query):
                        key: LabelsetKey = (
                            tuple((str(k), str(v)) for k, v in labels),
                            tuple((str(k), int(str(n)), str(u)) for k, n, u in num_labels),
                        )
                        self._by_id[lid] = key
                        self._ids.setdefault(key, lid)
        return {i: self._by_id[i] for i in wanted if i in self._by_id}
