"""Function deduplication: each (name, system name, file) is stored once, ever."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from sqlalchemy import Engine, select

from server.store.database import chunks, insert_returning
from server.store.keys import hash64
from server.store.models import FunctionRow

FunctionKey = tuple[str, str, str]


class FunctionTable:
    """A write-through cache of the ``functions`` table, keyed by content."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._ids: dict[FunctionKey, int] = {}
        self._names: dict[int, str] = {}
        self._files: dict[int, str] = {}
        self._lock = threading.Lock()

    def ids(self, keys: Sequence[FunctionKey], start_lines: Sequence[int]) -> list[int]:
        """The database id of every key, inserting the ones never seen before."""
        ids = self._ids
        try:
            return [ids[key] for key in keys]  # the steady state: every function seen before
        except KeyError:
            pass
        missing = {key: line for key, line in zip(keys, start_lines, strict=True) if key not in ids}
        with self._lock:
            self._store(missing)
        return [ids[key] for key in keys]

    def _store(self, missing: dict[FunctionKey, int]) -> None:
        by_hash = {hash64(key): key for key in missing if key not in self._ids}
        rows = [
            {
                "hash": fhash,
                "name": key[0],
                "system_name": None if key[1] == key[0] else key[1],  # NULL: the same as the name
                "filename": key[2],
                "start_line": missing[key],
            }
            for fhash, key in by_hash.items()
        ]
        found: list[tuple[int, int]] = []
        with self._engine.begin() as conn:
            table = FunctionRow.__table__
            inserted = insert_returning(conn, table, rows, (FunctionRow.id, FunctionRow.hash))  # type: ignore[arg-type]
            found.extend((int(fid), int(fhash)) for fid, fhash in inserted)
            # Only what another writer stored first is looked up: one statement, not two, for new functions.
            raced = list(by_hash.keys() - {fhash for _, fhash in found})
            for part in chunks(raced, 500):
                query = select(FunctionRow.id, FunctionRow.hash).where(FunctionRow.hash.in_(part))
                found.extend((int(fid), int(fhash)) for fid, fhash in conn.execute(query))
        # Cached only once committed: an id from a rolled-back insert must never be handed out.
        for fid, fhash in found:
            key = by_hash[fhash]
            self._ids[key] = fid
            self._names[fid] = key[0]

    def names(self, ids: Iterable[int]) -> dict[int, str]:
        """Function names by id, loading those this process has not seen."""
        wanted = set(ids)
        unknown = [fid for fid in wanted if fid not in self._names]
        if unknown:
            with self._engine.connect() as conn:
                for part in chunks(unknown, 500):
                    for fid, name in conn.execute(
                        select(FunctionRow.id, FunctionRow.name).where(FunctionRow.id.in_(part))
                    ):
                        self._names[fid] = name
        return {fid: self._names[fid] for fid in wanted if fid in self._names}

    def frames(self, ids: Iterable[int]) -> dict[int, tuple[str, str]]:
        """(name, file name) by id, for filters that match either; cached like :meth:`names`."""
        wanted = set(ids)
        unknown = [fid for fid in wanted if fid not in self._files or fid not in self._names]
        if unknown:
            with self._engine.connect() as conn:
                for part in chunks(unknown, 500):
                    query = select(FunctionRow.id, FunctionRow.name, FunctionRow.filename).where(
                        FunctionRow.id.in_(part)
                    )
                    for fid, name, filename in conn.execute(query):
                        self._names[fid] = name
                        self._files[fid] = filename
        return {fid: (self._names[fid], self._files[fid]) for fid in wanted if fid in self._files}

    def rows(self, ids: Iterable[int]) -> dict[int, tuple[str, str, str, int]]:
        """Full function rows, for exports that must carry file names."""
        result: dict[int, tuple[str, str, str, int]] = {}
        with self._engine.connect() as conn:
            for part in chunks(sorted(set(ids)), 500):
                query = select(
                    FunctionRow.id,
                    FunctionRow.name,
                    FunctionRow.system_name,
                    FunctionRow.filename,
                    FunctionRow.start_line,
                ).where(FunctionRow.id.in_(part))
                for fid, name, system_name, filename, start_line in conn.execute(query):
                    result[fid] = (name, name if system_name is None else system_name, filename, start_line)
        return result

    def ids_named(self, name: str) -> set[int]:
        """Every stored function with this name (it may exist in several files or binaries)."""
        with self._engine.connect() as conn:
            return {int(fid) for (fid,) in conn.execute(select(FunctionRow.id).where(FunctionRow.name == name))}
