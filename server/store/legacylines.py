"""The line-data layouts of stores written before migration 0022, for the migrations that write and convert them.

Until 0022 a sample key's lines were its leaf in a second prefix tree, of
``(function, line, inlined)`` frames (segment kind 1, the stack layout of
:mod:`server.store.stackcodec`; the frames kind 3, here): a key segment had a
fourth column, that leaf, and a key stored before line data (migration 0015)
had none (:data:`NO_LINES`) until ingest saw it again and recorded the leaf
in the table ``sample_key_lines``. The store no longer reads any of it
(:mod:`server.store.linevectors` keeps a key's lines now), but migrations 0018
and 0022 write these segments (0022 converts them both ways), and a migration must
go on writing exactly what it wrote: so the layout lives here, apart from
the store's code, and the table is named through ``sa.table`` rather than a
model (the schema has no such table past 0022).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from sqlalchemy import Connection

from server.store import columncodec

IntArray = npt.NDArray[np.int64]
#: The line leaf of a key stored before line data (migration 0015). (0 is the root, the leaf of an empty stack.)
NO_LINES = -1
#: A sample-key segment's magic bytes, as :mod:`server.store.samplekeys` writes them.
MAGIC = b"SK"
#: Columns of a key segment written before migration 0022: hash, node, label set, line leaf.
COLUMNS = 4

#: A line-frame segment's magic bytes (kind 3), and its columns: function, line, inlined.
FRAME_MAGIC = b"LF"
FRAME_COLUMNS = 3
#: Rows a segment holds at most when a migration writes a whole kind at once.
SEGMENT_ROWS = 65_536

#: Line leaves of keys stored before line data, found when ingest saw them again (migrations 0018 to 0021).
sample_key_lines = sa.table(
    "sample_key_lines", sa.column("key_id", sa.BigInteger), sa.column("line_node_id", sa.BigInteger)
)


@dataclass(slots=True)
class LegacyKeyRows:
    """Sample keys in increasing id order as a segment before 0022 held them, a column each."""

    ids: IntArray
    hashes: IntArray
    nodes: IntArray
    labelsets: IntArray
    line_nodes: IntArray

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def take(self, which: npt.NDArray[Any]) -> LegacyKeyRows:
        """The rows ``which`` picks (a mask or positions, in order)."""
        return LegacyKeyRows(
            self.ids[which], self.hashes[which], self.nodes[which], self.labelsets[which], self.line_nodes[which]
        )


def encode(rows: LegacyKeyRows) -> bytes:
    return columncodec.encode(MAGIC, rows.ids, [rows.hashes, rows.nodes, rows.labelsets, rows.line_nodes])


def decode(data: bytes) -> LegacyKeyRows:
    ids, (hashes, nodes, labelsets, line_nodes) = columncodec.decode(MAGIC, COLUMNS, data)
    return LegacyKeyRows(ids, hashes, nodes, labelsets, line_nodes)


def is_legacy(data: bytes) -> bool:
    """Whether a key segment's bytes have the line-leaf column (written before migration 0022)."""
    return columncodec.columns_of(data) == COLUMNS


def concatenate(parts: Sequence[LegacyKeyRows]) -> LegacyKeyRows:
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return LegacyKeyRows(empty, empty, empty, empty, empty)
    names = ("ids", "hashes", "nodes", "labelsets", "line_nodes")
    return LegacyKeyRows(*(np.concatenate([getattr(p, name) for p in parts]) for name in names))


def read_line_fills(conn: Connection) -> IntArray:
    """``(key id, line node)`` of every key given its line leaf after it was stored."""
    rows = conn.execute(sa.select(sample_key_lines.c.key_id, sample_key_lines.c.line_node_id)).all()
    return np.array(rows, dtype=np.int64).reshape(-1, 2)


def with_line_fills(keys: LegacyKeyRows, fills: IntArray) -> LegacyKeyRows:
    """``keys`` with the line leaves found later put in (fills of keys not among them are ignored)."""
    if fills.size == 0 or len(keys) == 0:
        return keys
    at = np.minimum(np.searchsorted(keys.ids, fills[:, 0]), len(keys) - 1)
    hit = keys.ids[at] == fills[:, 0]
    line_nodes = keys.line_nodes.copy()
    line_nodes[at[hit]] = fills[hit, 1]
    return LegacyKeyRows(keys.ids, keys.hashes, keys.nodes, keys.labelsets, line_nodes)


@dataclass(slots=True)
class FrameRows:
    """Line frames in increasing id order: the frames of the line tree (kind 1)."""

    ids: IntArray
    functions: IntArray
    lines: IntArray
    inlined: IntArray  # 1: a location's line entry other than its last

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def take(self, which: npt.NDArray[Any]) -> FrameRows:
        return FrameRows(self.ids[which], self.functions[which], self.lines[which], self.inlined[which])


def encode_frames(rows: FrameRows) -> bytes:
    return columncodec.encode(FRAME_MAGIC, rows.ids, [rows.functions, rows.lines, rows.inlined])


def decode_frames(data: bytes) -> FrameRows:
    ids, (functions, lines, inlined) = columncodec.decode(FRAME_MAGIC, FRAME_COLUMNS, data)
    return FrameRows(ids, functions, lines, inlined)


def concatenate_frames(parts: Sequence[FrameRows]) -> FrameRows:
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return FrameRows(empty, empty, empty, empty)
    names = ("ids", "functions", "lines", "inlined")
    return FrameRows(*(np.concatenate([getattr(p, name) for p in parts]) for name in names))
