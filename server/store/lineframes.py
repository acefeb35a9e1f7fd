"""The layout of line-frame segments (kind 3): ``(function, line, inlined)`` frames with ids, written before
migration 0022.

A store used to keep a second prefix tree, of ``(function, line)`` frame ids,
beside the function tree, and these frames were its frame ids; each key kept
its leaf there. Keys now keep a line vector instead
(:mod:`server.store.linevectors`) and the tree is built in memory when a query
asks for lines (:mod:`server.store.linestacks`). The layout stays for the
migrations that wrote these segments (0018) and convert them (0022).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection

from server.store import columncodec, segmentcache
from server.store.models import SegmentKind

IntArray = npt.NDArray[np.int64]
#: A line-frame segment's magic bytes (:mod:`server.store.columncodec`).
MAGIC = b"LF"
#: Frames a segment holds at most when a whole store is written at once (migration 0018).
SEGMENT_FRAMES = 65_536


@dataclass(slots=True)
class FrameRows:
    """Line frames in increasing id order."""

    ids: IntArray
    functions: IntArray
    lines: IntArray
    inlined: IntArray  # 1: a location's line entry other than its last

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def take(self, which: npt.NDArray[Any]) -> FrameRows:
        return FrameRows(self.ids[which], self.functions[which], self.lines[which], self.inlined[which])


def encode(rows: FrameRows) -> bytes:
    return columncodec.encode(MAGIC, rows.ids, [rows.functions, rows.lines, rows.inlined])


def decode(data: bytes) -> FrameRows:
    ids, (functions, lines, inlined) = columncodec.decode(MAGIC, 3, data)
    return FrameRows(ids, functions, lines, inlined)


def segment_row(rows: FrameRows) -> dict[str, Any]:
    """The ``segments`` row holding ``rows`` (at least one)."""
    return segmentcache.segment_row(SegmentKind.LINE_FRAMES, rows.ids, encode(rows))


def concatenate(parts: Sequence[FrameRows]) -> FrameRows:
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return FrameRows(empty, empty, empty, empty)
    return FrameRows(
        np.concatenate([p.ids for p in parts]),
        np.concatenate([p.functions for p in parts]),
        np.concatenate([p.lines for p in parts]),
        np.concatenate([p.inlined for p in parts]),
    )


def read_segments(conn: Connection, above: int = 0) -> list[FrameRows]:
    """The segments holding frames past ``above``, in id order."""
    return [decode(data) for data in segmentcache.read_data(conn, SegmentKind.LINE_FRAMES, above)]
