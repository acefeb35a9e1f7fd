"""Typed signature of the stack tree index in ``_treeindex.c``; see :mod:`server.store.stacks`."""

from typing import Literal, TypeAlias, final, overload

import numpy as np
import numpy.typing as npt
from typing_extensions import Buffer

#: numpy's stubs do not declare the buffer protocol, so its arrays are named beside any other buffer.
Words: TypeAlias = Buffer | npt.NDArray[np.int64]

@final
class Index:
    """Stack node ids by ``(parent, frame)``: the tree as child lists by node id, 8 bytes a node. A node's frame
    is the tree's ``function`` column (int32 by node id): :meth:`walk` and :meth:`lookup` read it, :meth:`add`
    and :meth:`commit` write it, and it must reach every id indexed.

    Every other buffer argument is a contiguous buffer of 64-bit integers (a numpy ``int64`` array).
    """

    def __init__(self) -> None: ...
    def __len__(self) -> int:
        """Nodes indexed."""

    @property
    def capacity(self) -> int:
        """Node ids the array has room for; it doubles when an id passes it."""

    def reserve(self, size: int, /) -> None:
        """Room for node ids below ``size``, so adding nodes up to it never grows the array."""

    def add(self, parents: Words, frames: Words, ids: Words, function: npt.NDArray[np.int32], /) -> None:
        """Index nodes, parents before their children, and write their frames into ``function`` (writable, with
        room for every id); each ``(parent, frame)`` must be new (:meth:`walk` makes only missing ones).
        ``ValueError``, with nothing added, for an id outside [1, 2**32) or indexed already, a parent not below
        its node, a frame outside [0, 2**31), or a function column too short or of another type."""

    def lookup(self, parents: Words, frames: Words, function: npt.NDArray[np.int32], /) -> bytes:
        """The id of each ``(parent, frame)`` as int64 bytes, -1 where there is none."""

    @overload
    def walk(
        self,
        frames: Words,
        offsets: Words,
        next_id: int,
        function: npt.NDArray[np.int32],
        /,
        *,
        leaf_first: bool = False,
        nodes: Literal[False],
        frame_of: Words | None = None,
    ) -> tuple[bytes, int, int]: ...
    @overload
    def walk(
        self,
        frames: Words,
        offsets: Words,
        next_id: int,
        function: npt.NDArray[np.int32],
        /,
        *,
        leaf_first: bool = False,
        nodes: Literal[True] = True,
        frame_of: Words | None = None,
    ) -> tuple[bytes, bytes, bytes, bytes, bytes]:
        """Resolve the stacks ``frames[offsets[i]:offsets[i + 1]]`` (root first, or leaf first) against the index.

        Returns ``(leaves, parents, frames, depths, recursive)``: every stack's leaf id (int64; 0 for an
        empty stack), then the columns of the nodes the stacks lack (int64, int64, int64, uint8), whose
        ids are ``next_id, next_id + 1, ...`` in that order: by first stack needing the node, then depth.
        With ``nodes=False``, ``(leaves, made, walk)``: the new nodes are not copied out; they stay in the
        index's scratch until its next walk, as walk number ``walk``, for :meth:`segment_columns` and
        :meth:`commit`. The index itself is not changed. With ``frame_of``, ``frames`` holds positions in it
        and ``frame_of[p]`` is the frame (a profile's line entries, mapped to their functions' ids as they
        are walked). ``ValueError`` for offsets that do not cut ``frames`` into stacks, a frame outside
        [0, 2**31) (or a position outside ``frame_of``), or a stack of 2**31 frames or more (depths are
        int32); ``OverflowError`` for new ids that would pass 2**32 (the tree is full, not the batch wrong).
        """

    def segment_columns(self, walk: int, /) -> tuple[bytes, int]:
        """The uncompressed column bytes of a segment of walk ``walk``'s new nodes and the flags of its 64-bit
        columns: what :func:`columns` makes of their arrays. ``ValueError`` if a later walk replaced them."""

    def commit(
        self,
        walk: int,
        parent: npt.NDArray[np.uint32],
        function: npt.NDArray[np.int32],
        recursive: npt.NDArray[np.bool_],
        known: npt.NDArray[np.bool_],
        /,
    ) -> None:
        """Index walk ``walk``'s new nodes and write them into the columns by node id (each writable, with
        room for the last new id), once. ``ValueError``, with nothing changed, if a later walk replaced
        them, they are indexed already, or a column is too short or of another type (parent uint32, function
        int32, recursive and known bool)."""

def depths(depth: npt.NDArray[np.int32], known: npt.NDArray[np.bool_], parents: Words, ids: Words, /) -> None:
    """:func:`mark_known`, and ``depth[id] = depth[parent] + 1`` for each node, in one pass (the store keeps no
    depth column; a migration that rebuilds line data works depths out with it).

    ``ValueError``, with nothing written, as :func:`mark_known`, for a depth column of another type or length
    than ``known`` (int32), or if a depth could reach 2**31.
    """

def mark_known(known: npt.NDArray[np.bool_], parents: Words, ids: Words, /) -> None:
    """Set ``known[id]`` for nodes in increasing id order, each under a parent that is known or an earlier node
    of the call: a loaded segment's nodes checked before any column takes them.

    ``ValueError``, with nothing written, for ids that do not increase, leave the column or are not above
    their parents, a parent that is neither known nor an earlier node of the call, or a column of another
    type (known bool).
    """

def columns(
    ids: Words, parents: Words, frames: Words, recursive: Buffer | npt.NDArray[np.bool_], /
) -> tuple[bytes, int]:
    """A stack segment's uncompressed column bytes (layout in :mod:`server.store.stackcodec`) and the flags of
    its 64-bit columns. ``ValueError`` for ids not positive and increasing, or a parent not below its node."""

def closure(mark: npt.NDArray[np.bool_], parent: npt.NDArray[np.uint32], leaves: Words, /) -> None:
    """Set ``mark[n]`` for every node of ``leaves`` and each ancestor of them, the root excluded, walking each
    leaf's path up the parent column until a marked node: each node is visited once. ``ValueError`` for a leaf
    outside ``[0, len(mark))`` (nothing marked) or a parent not below its node (the columns are broken)."""

def gather(
    mark: npt.NDArray[np.bool_],
    parent: npt.NDArray[np.uint32],
    function: npt.NDArray[np.int32],
    recursive: npt.NDArray[np.bool_],
    position: npt.NDArray[np.int32],
    node_ids: npt.NDArray[np.int64] | None,
    parents: npt.NDArray[np.int32],
    functions: npt.NDArray[np.int32],
    flags: npt.NDArray[np.bool_],
    /,
) -> None:
    """The marked nodes as a call tree's arrays, in id order, in one pass: ids (unless ``node_ids`` is None),
    parent indices (-1 for the root's
    children), functions and recursive flags, read from the tree's columns by id; ``position`` gets each marked
    id's index. ``ValueError`` for outputs not of one entry a mark, or a marked node whose parent is not marked."""
