"""The tree of ``(function, line)`` frames that line granularity is computed from, built in memory from line vectors.

``go tool pprof -lines`` keys a frame by function and line. A sample key
stores its lines as a vector aligned with its function-tree path
(:mod:`server.store.linevectors`); when a query asks for lines, the keys it
merges are turned into stacks of line frames here: each frame of the key's
path (its function) paired with the vector's line and inlined flag, given a
frame id, and walked into a prefix tree kept in memory only
(:class:`~server.store.stacks.StackTree` with no engine). A key's leaf is
kept, so a key costs this once a process; the tree and its ids are the
process's own and never stored (a reset after garbage collection drops them
with the other caches).

A frame inlined into its location's last line entry has an id of its own
(``inlined`` 1): pprof marks the rows whose calls were inlined, and that is
known only from the frame (rows merge both ids, as pprof's key has no such
flag).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from server.store._keyindex import KeyIndex
from server.store.linevectors import LineVectorTable
from server.store.segmentcache import lookup_ids
from server.store.stacks import LINES, ROOT, StackTree

IntArray = npt.NDArray[np.int64]
#: A frame packs into one int64 as ``function_id << 33 | inlined << 32 | line`` when the line fits 32 bits
#: and the function 30; other frames are numbered through a dictionary.
_LINE_BITS = 32
_LINE_MASK = (1 << _LINE_BITS) - 1
_FUNCTION_LIMIT = 1 << 30
Frame = tuple[int, int, int]  # function id, line, inlined (0 or 1)


class NoLineVector(LookupError):
    """Some key has no line vector: it was stored before line data was kept (migration 0015)."""


class LineFrames:
    """Ids for ``(function, line, inlined)`` frames, handed out in this process as they are first met."""

    def __init__(self) -> None:
        self._index = KeyIndex()
        self._unpacked: dict[Frame, int] = {}
        self._count = 0
        self.function = np.zeros(1024, dtype=np.int64)
        self.line = np.zeros(1024, dtype=np.int64)
        self.inlined_flag = np.zeros(1024, dtype=np.int64)

    def ids(self, functions: IntArray, lines: IntArray, inlined: IntArray) -> IntArray:
        """The id of every ``(functions[i], lines[i], inlined[i])``, numbering the frames not met before.

        Every frame is looked up in the C hash table (a 24 h of churn is ~1,000,000 frames over ~11,000
        distinct ones); only the frames not found are sorted, to number each distinct one once, and looked up
        again. (``np.unique`` with its inverse took 76 ms of the first line-level query on such a range.)
        """
        if functions.size == 0:
            return np.zeros(0, dtype=np.int64)
        flags = (inlined != 0).astype(np.int64)
        fits = (lines >= 0) & (lines <= _LINE_MASK) & (functions >= 0) & (functions < _FUNCTION_LIMIT)
        found = np.full(functions.shape[0], -1, dtype=np.int64)
        if bool(fits.any()):
            packed = (functions[fits] << (_LINE_BITS + 1)) | (flags[fits] << _LINE_BITS) | lines[fits]
            known = lookup_ids(self._index, packed)
            missing = known < 0
            if bool(missing.any()):
                ordered = np.sort(packed[missing])
                first = np.ones(ordered.shape[0], dtype=bool)
                first[1:] = ordered[1:] != ordered[:-1]
                new = ordered[first]
                self._index.add(new, self._number(new >> (_LINE_BITS + 1), new & _LINE_MASK, (new >> _LINE_BITS) & 1))
                known[missing] = lookup_ids(self._index, packed[missing])
            found[fits] = known
        for at in np.flatnonzero(~fits).tolist():  # the rare frame that does not pack
            frame = (int(functions[at]), int(lines[at]), int(flags[at]))
            if frame not in self._unpacked:
                self._unpacked[frame] = int(self._number(*(np.array([v]) for v in frame))[0])
            found[at] = self._unpacked[frame]
        return found

    def _number(self, functions: IntArray, lines: IntArray, inlined: IntArray) -> IntArray:
        ids = self._count + 1 + np.arange(functions.shape[0], dtype=np.int64)
        size = int(ids[-1]) + 1
        if size > self.function.shape[0]:
            size = max(size, 2 * self.function.shape[0])
            for name in ("function", "line", "inlined_flag"):
                column = getattr(self, name)
                grown = np.zeros(size, dtype=np.int64)
                grown[: column.shape[0]] = column
                setattr(self, name, grown)
        self.function[ids] = functions
        self.line[ids] = lines
        self.inlined_flag[ids] = inlined
        self._count = int(ids[-1])
        return ids

    def _known(self, ids: Iterable[int]) -> IntArray:
        """``ids`` (an array, or any iterable of ints) sorted, once each, those handed out only. (A set of numpy
        integers, hashed one by one, took 40 ms for a churny day's ~11,000 frames.)"""
        given = ids if isinstance(ids, np.ndarray) else np.fromiter(ids, dtype=np.int64)
        wanted = np.sort(given.astype(np.int64, copy=False))
        if wanted.size:
            keep = np.ones(wanted.shape[0], dtype=bool)
            keep[1:] = wanted[1:] != wanted[:-1]
            wanted = wanted[keep]
        found: IntArray = wanted[(wanted >= 1) & (wanted <= self._count)]
        return found

    def pairs(self, ids: Iterable[int]) -> dict[int, tuple[int, int]]:
        """``(function id, line)`` of every id."""
        wanted = self._known(ids)
        return dict(
            zip(
                wanted.tolist(),
                zip(self.function[wanted].tolist(), self.line[wanted].tolist(), strict=True),
                strict=True,
            )
        )

    def inlined(self, ids: Iterable[int]) -> set[int]:
        """Which of ``ids`` are inlined frames."""
        wanted = self._known(ids)
        return set(wanted[self.inlined_flag[wanted] != 0].tolist())


class LineStacks:
    """The line frames and the tree of line-frame stacks of the keys asked for so far, and each key's leaf."""

    def __init__(self) -> None:
        self.frames = LineFrames()
        self.tree = StackTree(None, tree=LINES)
        self._leaf = np.full(1024, -1, dtype=np.int64)  # by key id; -1: not built yet
        self._lock = threading.Lock()

    def leaves(self, keys: IntArray, nodes: IntArray, stacks: StackTree, vectors: LineVectorTable) -> IntArray:
        """The leaf in the line tree of every key ``keys[i]`` (its function-tree node ``nodes[i]``); keys met for
        the first time are built from their vectors. :class:`NoLineVector` if a key has none, ``LookupError`` if a
        vector does not fit its key's stack (a store ``server.store.check`` would report)."""
        with self._lock:
            if keys.size and int(keys.max()) >= self._leaf.shape[0]:
                grown = np.full(max(int(keys.max()) + 1, 2 * self._leaf.shape[0]), -1, dtype=np.int64)
                grown[: self._leaf.shape[0]] = self._leaf
                self._leaf = grown
            leaves = self._leaf[keys] if keys.size else keys.copy()
            todo = np.flatnonzero(leaves < 0)
            if todo.size:
                new_keys, first = np.unique(keys[todo], return_index=True)
                built = self._build(new_keys, nodes[todo[first]], stacks, vectors)
                self._leaf[new_keys] = built
                leaves = self._leaf[keys]
            return leaves

    def _build(self, keys: IntArray, nodes: IntArray, stacks: StackTree, vectors: LineVectorTable) -> IntArray:
        if bool(vectors.lacking(keys).any()):  # (what other processes wrote since is read first)
            raise NoLineVector("some sample keys have no line vector")
        values, offsets = vectors.vectors(keys)
        lengths = np.diff(offsets)
        stacks.ensure(nodes)
        # Each key's functions, leaf first: its node, then the parents, a level at a time. A vector fits its
        # key's stack when the walk meets the root exactly as its values run out.
        functions = np.zeros(values.shape[0], dtype=np.int64)
        at, current, remaining = offsets[:-1].copy(), nodes.copy(), lengths.copy()
        while at.size:
            if bool(((current == ROOT) != (remaining == 0)).any()):
                raise LookupError("a line vector does not fit its sample key's stack")
            going = remaining > 0
            at, current, remaining = at[going], current[going], remaining[going]
            functions[at] = stacks.function[current]
            current = stacks.parent[current].astype(np.int64)  # the tree's column is uint32
            at, remaining = at + 1, remaining - 1
        frame_ids = self.frames.ids(functions, values >> 1, values & 1)
        built: IntArray = self.tree.resolve_arrays(frame_ids, offsets, leaf_first=True)
        return built
