"""The key and frame layouts of stores before migration 0022: written as they were, and key segments of either
width read by the store (a column count is told apart from a row count of the same value)."""

from __future__ import annotations

import numpy as np
import pytest

from server.store import columncodec, legacylines, samplekeys


def _legacy(count: int) -> legacylines.LegacyKeyRows:
    rng = np.random.default_rng(count)
    ids = np.arange(1, count + 1, dtype=np.int64) * 2
    hashes = rng.integers(-(2**63), 2**63 - 1, count, dtype=np.int64)
    nodes = rng.integers(0, 2**40, count)
    labelsets = rng.integers(0, 50, count)
    line_nodes = np.where(rng.random(count) < 0.5, legacylines.NO_LINES, rng.integers(0, 2**40, count))
    return legacylines.LegacyKeyRows(ids, hashes, nodes, labelsets, line_nodes)


@pytest.mark.parametrize("count", [1, 3, 4, 5, 500])
def test_key_segments_of_either_width_are_read(count: int) -> None:
    legacy = _legacy(count)
    data = legacylines.encode(legacy)
    assert data == columncodec.encode(
        b"SK", legacy.ids, [legacy.hashes, legacy.nodes, legacy.labelsets, legacy.line_nodes]
    )
    assert legacylines.is_legacy(data)
    back = legacylines.decode(data)
    assert [c.tolist() for c in (back.ids, back.hashes, back.nodes, back.labelsets, back.line_nodes)] == [
        c.tolist() for c in (legacy.ids, legacy.hashes, legacy.nodes, legacy.labelsets, legacy.line_nodes)
    ]
    # The store reads past the leaf column; its own segments (3 columns) are not taken for old ones.
    keys = samplekeys.decode(data)
    assert [c.tolist() for c in (keys.ids, keys.hashes, keys.nodes, keys.labelsets)] == [
        c.tolist() for c in (legacy.ids, legacy.hashes, legacy.nodes, legacy.labelsets)
    ]
    now = samplekeys.encode(keys)
    assert columncodec.columns_of(now) == 3 and not legacylines.is_legacy(now)
    again = samplekeys.decode(now)
    assert again.ids.tolist() == keys.ids.tolist() and again.labelsets.tolist() == keys.labelsets.tolist()


def test_line_fills_replace_the_leaves_of_their_keys_only() -> None:
    legacy = _legacy(6)
    given = legacy.line_nodes.tolist()
    fills = np.array([[legacy.ids[1], 77], [999, 5]], dtype=np.int64)  # the second names no key here
    filled = legacylines.with_line_fills(legacy, fills)
    expected = legacy.line_nodes.copy()
    expected[1] = 77
    assert filled.line_nodes.tolist() == expected.tolist()
    assert legacy.line_nodes.tolist() == given  # the rows given are left as they were


def test_frames_are_written_as_they_were() -> None:
    ids = np.array([1, 2, 5], dtype=np.int64)
    frames = legacylines.FrameRows(ids, np.array([3, 3, 9]), np.array([10, 10, 0]), np.array([0, 1, 0]))
    data = legacylines.encode_frames(frames)
    assert data == columncodec.encode(b"LF", ids, [frames.functions, frames.lines, frames.inlined])
    back = legacylines.decode_frames(data)
    assert back.lines.tolist() == [10, 10, 0] and back.inlined.tolist() == [0, 1, 0]
