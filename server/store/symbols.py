"""Function deduplication: each (name, system name, file) is stored once, ever.

A profile names its functions through its own string table, so finding their
ids used to mean building a (name, system name, file) tuple per function and
looking it up: 0.6 ms for a Go service's 1,900 functions, most of what a known
profile cost after its samples. The table also keeps each known function under
a 128-bit digest of its strings (:func:`function_digests`), which numpy finds
for the whole function table at once; only functions not found that way
(new ones, a profile of another process's making) take the tuple lookup.
The digest is made of Python's string hash, keyed per process, like the
cache it serves: two different functions would have to collide in it, where
the table's stored identity (:func:`~server.store.keys.hash64`) is 64 bits.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from server.pprof import kernels
from server.pprof.mixing import mix64
from server.store.appends import Appends
from server.store.database import chunks
from server.store.keys import hash64
from server.store.models import FunctionRow

FunctionKey = tuple[str, str, str]
U64 = npt.NDArray[np.uint64]
IntArray = npt.NDArray[np.int64]
NOT_KNOWN = -1
_EMPTY: tuple[U64, U64, IntArray] = (
    np.zeros(0, dtype=np.uint64),
    np.zeros(0, dtype=np.uint64),
    np.zeros(0, dtype=np.int64),
)


def function_digests(
    strings: Sequence[str], names: IntArray, system_names: IntArray, filenames: IntArray
) -> tuple[U64, U64]:
    """Two 64-bit halves of a digest of every function's (name, system name, file), by string index.

    Valid in this process only (Python's string hash is keyed per process). Made in one pass of the
    C extension when it is built (:func:`server.pprof.kernels.function_digests`), the same words as
    :func:`function_digests_numpy`.
    """
    if isinstance(strings, list):
        native = kernels.function_digests(strings, names, system_names, filenames)
        if native is not None:
            return native
    return function_digests_numpy(strings, names, system_names, filenames)


def function_digests_numpy(
    strings: Sequence[str], names: IntArray, system_names: IntArray, filenames: IntArray
) -> tuple[U64, U64]:
    """:func:`function_digests` with numpy: what the extension's kernel is held equal to."""
    hashes = np.fromiter(map(hash, strings), dtype=np.int64, count=len(strings)).view(np.uint64)
    name, system_name, filename = hashes[names], hashes[system_names], hashes[filenames]
    with np.errstate(over="ignore"):
        first = mix64(name * np.uint64(0x9E3779B97F4A7C15) + mix64(system_name + mix64(filename)))
        inner = mix64(name + mix64(system_name ^ np.uint64(0x27D4EB2F)))
        second = mix64(filename * np.uint64(0xC2B2AE3D27D4EB4F) ^ inner)
    return first, second


#: The insert of new functions by dialect, built once (building a statement costs more than running it).
_INSERTS: dict[str, Any] = {}


def _insert(conn: Connection) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING RETURNING id, hash``: a function another writer stored is skipped."""
    name = conn.dialect.name
    statement = _INSERTS.get(name)
    if statement is None:
        dialect_insert = postgresql.insert if name == "postgresql" else sqlite.insert
        statement = dialect_insert(FunctionRow).on_conflict_do_nothing()
        statement = _INSERTS[name] = statement.returning(FunctionRow.id, FunctionRow.hash)
    return statement


class FunctionTable:
    """A write-through cache of the ``functions`` table, keyed by content."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._ids: dict[FunctionKey, int] = {}
        self._names: dict[int, str] = {}
        self._files: dict[int, str] = {}
        self._lock = threading.Lock()
        #: Known functions by digest: (first halves sorted, second halves, ids), replaced whole (readers take
        #: the tuple once, so no lock is needed to read it).
        self._digests = _EMPTY

    def ids(self, keys: Sequence[FunctionKey], start_lines: Sequence[int], appends: Appends | None = None) -> list[int]:
        """The database id of every key, inserting the ones never seen before: in ``appends`` (the profile's
        one write transaction; cached once it commits), or in a transaction of their own."""
        ids = self._ids
        try:
            return [ids[key] for key in keys]  # the steady state: every function seen before
        except KeyError:
            pass
        missing = {key: line for key, line in zip(keys, start_lines, strict=True) if key not in ids}
        with self._lock:
            if appends is None:
                with Appends(self._engine) as own:
                    self._store(missing, own)
                return [ids[key] for key in keys]
            found = self._store(missing, appends)
        return [ids[key] if key in ids else found[key] for key in keys]

    def cached(self, keys: Sequence[FunctionKey]) -> list[int] | None:
        """The id of every key if this process has them all (stored and committed), else None."""
        ids = self._ids
        try:
            return [ids[key] for key in keys]
        except KeyError:
            return None

    def known(self, first: U64, second: U64) -> IntArray:
        """The id of every function by its digest (:func:`function_digests`), :data:`NOT_KNOWN` where not known."""
        firsts, seconds, ids = self._digests
        if firsts.size == 0:
            return np.full(first.shape[0], NOT_KNOWN, dtype=np.int64)
        slot = np.minimum(np.searchsorted(firsts, first), firsts.shape[0] - 1)
        found = (firsts[slot] == first) & (seconds[slot] == second)
        return np.where(found, ids[slot], NOT_KNOWN)

    def remember(self, first: U64, second: U64, ids: IntArray) -> None:
        """Digests of functions whose ids :meth:`ids` gave (so committed): found by :meth:`known` from now on."""
        if first.size == 0:
            return
        with self._lock:
            firsts, seconds, known = self._digests
            unique, where = np.unique(first, return_index=True)
            slot = np.searchsorted(firsts, unique)
            if firsts.size:
                # A first half already there is not added again: a search finds one entry per first half.
                fresh = firsts[np.minimum(slot, firsts.shape[0] - 1)] != unique
                where, slot = where[fresh], slot[fresh]
            self._digests = (
                np.insert(firsts, slot, first[where]),
                np.insert(seconds, slot, second[where]),
                np.insert(known, slot, ids[where]),
            )

    def _store(self, missing: dict[FunctionKey, int], appends: Appends) -> dict[FunctionKey, int]:
        """Insert the functions not stored yet (under the append locks: no other writer inserts meanwhile);
        their ids, and those another writer stored first, cached once ``appends`` commits."""
        by_hash = {hash64(key): key for key in missing if key not in self._ids}
        rows = [
            {
                "hash": fhash,
                "name": key[0],
                "system_name": None if key[1] == key[0] else key[1],  # NULL: the same as the name
                "filename": key[2],
                "start_line": missing[key],
            }
            for fhash, key in sorted(by_hash.items())  # one order for every writer: no two wait on each other
        ]
        found: dict[FunctionKey, int] = {}
        conn = appends.connection()
        inserted = [row for part in chunks(rows, 1000) for row in conn.execute(_insert(conn), list(part))]
        found.update((by_hash[int(fhash)], int(fid)) for fid, fhash in inserted)
        # Only what another writer stored first is looked up: one statement, not two, for new functions.
        raced = list(by_hash.keys() - {int(fhash) for _, fhash in inserted})
        for part in chunks(raced, 500):
            query = select(FunctionRow.id, FunctionRow.hash).where(FunctionRow.hash.in_(part))
            found.update((by_hash[int(fhash)], int(fid)) for fid, fhash in conn.execute(query))
        # Cached only once committed: an id from a rolled-back insert must never be handed out.
        appends.after_commit(lambda: self._committed(found))
        return found

    def _committed(self, found: dict[FunctionKey, int]) -> None:
        for key, fid in found.items():
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
