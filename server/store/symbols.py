"""Functions, each (name, system name, file) stored once, ever: as compressed append-only segments.

A profile names its functions through its own string table, so finding their
ids used to mean building a (name, system name, file) tuple per function and
looking it up: 0.6 ms for a Go service's 1,900 functions, most of what a known
profile cost after its samples. The table also keeps each known function under
a 128-bit digest of its strings (:func:`function_digests`), looked up for the
whole function table at once in a C hash table; only functions not found that way
(new ones, a profile of another process's making) take the tuple lookup.
The digest is made of Python's string hash, keyed per process, like the
cache it serves: two different functions would have to collide in it.

Storage. A row per function, with a unique index on a hash of its strings,
was the largest relation of a PostgreSQL store's first day (1,388 bytes a
profile of 3,664, steady service): a heap tuple, a primary key and a unique
index entry per function, file names repeated in every row. Functions are
instead appended as segments (``segments`` rows of their kind), under the rule of
sample keys (:mod:`server.store.samplekeys`): no unique
index, dedup answered from memory; every segment is read at first use, new
functions are appended under the append lock after catching up on what other
writers appended (and looking again), and ids are cached only once
committed. Every process holds the whole dictionary (a few hundred bytes a
function); queries answer names and files from it without a statement.

A segment's bytes (:func:`encode`): a 12-byte header (magic ``FS``, version,
the sizes of the two integer blocks), then

- the rows' integer columns (:mod:`server.store.columncodec`, magic ``FN``):
  ids, start line, the UTF-8 length of the name, of the system name (-1: the
  same as the name, as Go's always are) and the file's number in the
  segment's file list;
- the file list's lengths (columncodec, magic ``FF``): a file is named once a
  segment, not once a function;
- one zstd frame of the strings: every name, then the system names that
  differ, then the distinct file names. Rows are in (name, system name, file)
  order and the files sorted, so a package's functions and paths sit side by
  side for the compressor.

Lengths, not separators, delimit the strings: a name may hold any character.
The frame's size must equal what the lengths add up to before it is
decompressed, and every length and file number is checked against it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Engine

from server.errors import IdsExhausted
from server.pprof import kernels
from server.pprof.mixing import mix64
from server.store import columncodec, segmentcache, stacks
from server.store._keyindex import KeyIndex
from server.store.appends import FUNCTIONS, Appends
from server.store.cachemarks import CacheMarks
from server.store.models import SegmentKind
from server.store.segmentcache import SegmentCache, lookup_ids
from server.store.stackcodec import CorruptSegment, unzstd

FunctionKey = tuple[str, str, str]
U64 = npt.NDArray[np.uint64]
IntArray = npt.NDArray[np.int64]
NOT_KNOWN = -1


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


#: A function segment's header: magic, version, then the byte sizes of its two integer blocks.
_HEADER = struct.Struct("<2sBxII")
MAGIC = b"FS"
_VERSION = 1
_ROWS = b"FN"
_FILES = b"FF"
#: The strings' compression level: they are most of a segment, written once and read by every process; a steady
#: service's day of names takes ~14 ms at this level, once. Strings under ``_SMALL_TEXT`` bytes take ``_SMALL_LEVEL``:
#: a churny service's profiles each bring a few dozen new functions, whose names took 70-150 us at level 12 against
#: 55-72 at level 3, for 1-2 % fewer bytes.
_LEVEL = 12
_SMALL_LEVEL = 3
_SMALL_TEXT = 16 * 1024
_SAME = -1  # a system name's length when it is the name
#: Functions a segment holds at most when a whole store is written at once (migration 0019).
SEGMENT_FUNCTIONS = 65_536


@dataclass(slots=True)
class FunctionRows:
    """Functions in increasing id order."""

    ids: IntArray
    names: list[str]
    system_names: list[str]
    filenames: list[str]
    start_lines: IntArray

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def take(self, which: npt.NDArray[Any]) -> FunctionRows:
        at = np.flatnonzero(which) if which.dtype == np.bool_ else which
        picked = at.tolist()
        return FunctionRows(
            self.ids[at],
            [self.names[i] for i in picked],
            [self.system_names[i] for i in picked],
            [self.filenames[i] for i in picked],
            self.start_lines[at],
        )

    def keys(self) -> list[FunctionKey]:
        return list(zip(self.names, self.system_names, self.filenames, strict=True))


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def encode(rows: FunctionRows) -> bytes:
    """The segment's bytes (layout in the module's docstring)."""
    files = sorted(set(rows.filenames))
    number = {name: at for at, name in enumerate(files)}
    names = [_utf8(name) for name in rows.names]
    systems = [
        b"" if system == name else _utf8(system) for name, system in zip(rows.names, rows.system_names, strict=True)
    ]
    file_bytes = [_utf8(name) for name in files]
    system_lengths = [
        _SAME if system == name else len(coded)
        for name, system, coded in zip(rows.names, rows.system_names, systems, strict=True)
    ]
    columns = [
        rows.start_lines.astype(np.int64),
        np.array([len(coded) for coded in names], dtype=np.int64),
        np.array(system_lengths, dtype=np.int64),
        np.array([number[name] for name in rows.filenames], dtype=np.int64),
    ]
    integers = columncodec.encode(_ROWS, rows.ids.astype(np.int64), columns)
    file_ids = np.arange(1, len(files) + 1, dtype=np.int64)
    lengths = columncodec.encode(_FILES, file_ids, [np.array([len(coded) for coded in file_bytes], dtype=np.int64)])
    raw = b"".join(names) + b"".join(systems) + b"".join(file_bytes)
    text = columncodec.compressor(_SMALL_LEVEL if len(raw) < _SMALL_TEXT else _LEVEL).compress(raw)
    return _HEADER.pack(MAGIC, _VERSION, len(integers), len(lengths)) + integers + lengths + text


def _strings(raw: bytes, lengths: list[int], at: int) -> tuple[list[str], int]:
    found: list[str] = []
    for length in lengths:
        found.append(raw[at : at + length].decode("utf-8", "surrogatepass"))
        at += length
    return found, at


def decode(data: bytes) -> FunctionRows:
    """A segment's functions; bytes that are not what their header says raise :class:`CorruptSegment`."""
    if len(data) < _HEADER.size:
        raise CorruptSegment(f"function segment of {len(data)} bytes is shorter than its header")
    magic, version, rows_size, files_size = _HEADER.unpack_from(data)
    if magic != MAGIC or version != _VERSION:
        raise CorruptSegment("not a function segment (or one of an unsupported version)")
    text_at = _HEADER.size + rows_size + files_size
    if text_at > len(data):
        raise CorruptSegment("function segment is cut short in its integer columns")
    ids, (start_lines, name_lengths, system_lengths, file_numbers) = columncodec.decode(
        _ROWS, 4, data[_HEADER.size : _HEADER.size + rows_size]
    )
    _, (file_lengths,) = columncodec.decode(_FILES, 1, data[_HEADER.size + rows_size : text_at])
    if (
        bool((name_lengths < 0).any())
        or bool((system_lengths < _SAME).any())
        or bool((file_lengths < 0).any())
        or bool(((file_numbers < 0) | (file_numbers >= file_lengths.shape[0])).any())
    ):
        raise CorruptSegment("function segment has a string length or file number out of range")
    expected = int(name_lengths.sum()) + int(system_lengths[system_lengths > 0].sum()) + int(file_lengths.sum())
    body = data[text_at:]
    mismatch = "function segment's strings are not the size its lengths add up to"
    raw = unzstd(body, expected, "function segment's strings", mismatch)
    if len(raw) != expected:
        raise CorruptSegment("function segment's strings are not the size its lengths add up to")
    try:
        names, at = _strings(raw, name_lengths.tolist(), 0)
        differing, at = _strings(raw, [n for n in system_lengths.tolist() if n != _SAME], at)
        files, at = _strings(raw, file_lengths.tolist(), at)
    except UnicodeDecodeError as exc:
        raise CorruptSegment(f"function segment holds a string that is not UTF-8: {exc}") from None
    others = iter(differing)
    systems = [name if n == _SAME else next(others) for name, n in zip(names, system_lengths.tolist(), strict=True)]
    filenames = [files[n] for n in file_numbers.tolist()]
    return FunctionRows(ids, names, systems, filenames, start_lines)


def segment_row(rows: FunctionRows) -> dict[str, Any]:
    """The ``segments`` row holding ``rows`` (at least one)."""
    return segmentcache.segment_row(SegmentKind.FUNCTIONS, rows.ids, encode(rows))


def concatenate(parts: Sequence[FunctionRows]) -> FunctionRows:
    return FunctionRows(
        np.concatenate([p.ids for p in parts]) if parts else np.zeros(0, dtype=np.int64),
        [name for p in parts for name in p.names],
        [name for p in parts for name in p.system_names],
        [name for p in parts for name in p.filenames],
        np.concatenate([p.start_lines for p in parts]) if parts else np.zeros(0, dtype=np.int64),
    )


def rows_of(keys: Sequence[FunctionKey], start_lines: Sequence[int], first_id: int) -> FunctionRows:
    """Functions ``keys`` (in that order) numbered from ``first_id``."""
    return FunctionRows(
        np.arange(first_id, first_id + len(keys), dtype=np.int64),
        [key[0] for key in keys],
        [key[1] for key in keys],
        [key[2] for key in keys],
        np.array(start_lines, dtype=np.int64),
    )


def read_segments(conn: Connection, above: int = 0) -> list[FunctionRows]:
    """The segments holding functions past ``above``, in id order."""
    return [decode(data) for data in segmentcache.read_data(conn, SegmentKind.FUNCTIONS, above)]


class FunctionTable(SegmentCache[FunctionRows]):
    """The process's copy of ``function_segments``: ids by content, and content by id for queries."""

    def __init__(self, engine: Engine, marks: CacheMarks | None = None) -> None:
        super().__init__(engine, marks)
        self._ids: dict[FunctionKey, int] = {}
        #: (name, system name, file name, start line) by id.
        self._rows: dict[int, tuple[str, str, str, int]] = {}
        #: Ids by name, made at the first :meth:`ids_named` (a function's history): other processes need none.
        self._named: dict[str, list[int]] | None = None
        #: Known functions by digest: the id by first half (one function a first half: the first remembered),
        #: the second half by id, to confirm. A hash table, not sorted arrays: a profile's ~2,700 unsorted
        #: probes took a binary search each, and remembering new functions copied the arrays (np.insert)
        #: every profile that brought some, as a churny service's profiles do.
        self._by_first = KeyIndex()
        self._second = np.zeros(1024, dtype=np.uint64)

    def ids(self, keys: Sequence[FunctionKey], start_lines: Sequence[int], appends: Appends | None = None) -> list[int]:
        """The id of every key, appending the ones never stored before: in ``appends`` (the profile's one write
        transaction; their ids are handed out, and cached once it commits), or in a transaction of their own."""
        ids = self._ids
        try:
            return [ids[key] for key in keys]  # the steady state: every function seen before
        except KeyError:
            pass
        with self._lock:
            self._ensure_loaded()
            missing: dict[FunctionKey, int] = {}
            for key, line in zip(keys, start_lines, strict=True):
                if key not in ids:
                    missing.setdefault(key, line)
            if not missing:
                return [ids[key] for key in keys]
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
        with self._lock:  # remember() grows the second halves: read them with the ids the index gives
            ids = lookup_ids(self._by_first, first.view(np.int64))
            seconds = self._second
        found = ids > 0
        confirmed = np.flatnonzero(found)
        found[confirmed] = seconds[ids[confirmed]] == second[confirmed]
        ids[~found] = NOT_KNOWN
        return ids

    def remember(self, first: U64, second: U64, ids: IntArray) -> None:
        """Digests of functions whose ids :meth:`ids` gave (so committed): found by :meth:`known` from now on."""
        if first.size == 0:
            return
        with self._lock:
            keys = first.view(np.int64)
            _, where = np.unique(keys, return_index=True)
            # A first half already there is not added again: the index holds one function a first half.
            where = where[lookup_ids(self._by_first, keys[where]) < 0]
            if where.size == 0:
                return
            top = int(ids[where].max()) + 1
            if top > self._second.shape[0]:
                grown = np.zeros(max(top, 2 * self._second.shape[0]), dtype=np.uint64)
                grown[: self._second.shape[0]] = self._second
                self._second = grown
            self._second[ids[where]] = second[where]
            self._by_first.add(np.ascontiguousarray(keys[where]), np.ascontiguousarray(ids[where], dtype=np.int64))

    def _store(self, missing: dict[FunctionKey, int], appends: Appends) -> dict[FunctionKey, int]:
        """Append the functions none of which this process has loaded, in ``appends``, after catching up on
        what other writers appended (under the append locks: none appends meanwhile); their ids are cached
        once it commits. Returns the ids of those appended: until the commit, the caller finds them only there.
        :class:`~server.errors.IdsExhausted`, before anything is written, when they would pass the last id."""
        conn = appends.segments(self)
        # Another writer appended since (the newest segment is past this process's): only what is still missing.
        if appends.appended_past(FUNCTIONS, self._high) and self._catch_up(conn, guarded=appends.guarded):
            missing = {key: line for key, line in missing.items() if key not in self._ids}
        if not missing:
            return {}
        if self._high + len(missing) >= stacks.FRAME_LIMIT:  # read at call time: tests lower it
            raise IdsExhausted(
                f"the function table has handed out all {stacks.FRAME_LIMIT:,} function ids (the highest is "
                f"{self._high:,}): profiles that bring new functions cannot be stored until an operator acts, "
                "see docs/operations.md"
            )
        keys = sorted(missing)  # a package's functions side by side: they compress together
        rows = rows_of(keys, [missing[key] for key in keys], self._high + 1)
        appends.add_segment(segment_row(rows))
        # Cached only once committed: an id from a rolled-back segment must never be handed out.
        appends.after_commit(lambda: self._committed(rows))
        return dict(zip(keys, rows.ids.tolist(), strict=True))

    def _read(self, conn: Connection, above: int) -> list[FunctionRows]:
        return read_segments(conn, above)

    def _add(self, rows: FunctionRows) -> None:
        """Functions (in increasing id order, all above those loaded) into the maps."""
        if len(rows) == 0:
            return
        ids = rows.ids.tolist()
        keys = list(zip(rows.names, rows.system_names, rows.filenames, strict=True))
        self._ids.update(zip(keys, ids, strict=True))  # in bulk: 100,000 functions load in ~0.1 s
        lines = rows.start_lines.tolist()
        self._rows.update(zip(ids, zip(rows.names, rows.system_names, rows.filenames, lines, strict=True), strict=True))
        if self._named is not None:
            for fid, name in zip(ids, rows.names, strict=True):
                self._named.setdefault(name, []).append(fid)
        self._high = max(self._high, ids[-1])

    def _loaded_rows(self, ids: Iterable[int]) -> tuple[set[int], dict[int, tuple[str, str, str, int]]]:
        """``ids`` as a set, and the rows by id once every one of them this process may lack is read (a function
        another process appended since): the segments past what is loaded are read only then."""
        wanted = set(ids)
        rows = self._rows
        unknown = [fid for fid in wanted if fid not in rows]
        if unknown and (not self._loaded or max(unknown) > self._high):
            with self._lock:
                if not self._loaded or max(unknown) > self._high:
                    with self._engine.connect() as conn:
                        self._catch_up(conn)
        return wanted, rows

    def names(self, ids: Iterable[int]) -> dict[int, str]:
        """Function names by id (ids not stored are left out)."""
        wanted, rows = self._loaded_rows(ids)
        return {fid: rows[fid][0] for fid in wanted if fid in rows}

    def frames(self, ids: Iterable[int]) -> dict[int, tuple[str, str]]:
        """(name, file name) by id, for filters that match either."""
        wanted, rows = self._loaded_rows(ids)
        return {fid: (rows[fid][0], rows[fid][2]) for fid in wanted if fid in rows}

    def rows(self, ids: Iterable[int]) -> dict[int, tuple[str, str, str, int]]:
        """Full function rows (name, system name, file name, start line), for exports that must carry file names."""
        wanted, rows = self._loaded_rows(ids)
        return {fid: rows[fid] for fid in sorted(wanted) if fid in rows}

    def ids_named(self, name: str) -> set[int]:
        """Every stored function with this name (it may exist in several files or binaries), those other
        processes appended included."""
        with self._lock, self._engine.connect() as conn:
            self._catch_up(conn)
            if self._named is None:
                self._named = {}
                for fid, row in self._rows.items():
                    self._named.setdefault(row[0], []).append(fid)
            return set(self._named.get(name, ()))
