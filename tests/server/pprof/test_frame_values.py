"""A value per frame of chosen samples, packed narrow: the extension's kernel equals the numpy reference.

Line vectors are made of a value per line entry spread over the frames of the new keys' samples
(:func:`server.pprof.frames.frame_values`), packed as the segment stores them. Held here: the kernel
(:func:`server.pprof.kernels.pack_frame_values`) and :func:`frame_values_numpy` give the same values in the same
type on every capture and for samples chosen in any order or twice; every width (1, 2 and 4 bytes unsigned, 8
signed), including when only entries no chosen frame uses would need a wider one; nothing chosen; and arguments
that do not fit are refused, not read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from server.pprof import _wire
from server.pprof.decode import decode_columns
from server.pprof.frames import Frames, expand, frame_values, frame_values_numpy, narrowest
from server.pprof.kernels import NATIVE, pack_frame_values
from tests.support.tools import DATA

needs_native = pytest.mark.skipif(not NATIVE, reason="server.pprof._wire is not built (`make install` builds it)")

CAPTURES = sorted([*DATA.glob("*.pb.gz"), *(DATA / "foreign").glob("*.pb.gz")])


def _frames(entries: list[list[int]], n_entries: int) -> Frames:
    """Frames of samples given as lists of entry numbers (functions and lines of no interest here)."""
    offsets = np.zeros(len(entries) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in entries], out=offsets[1:])
    flat = np.array([k for e in entries for k in e], dtype=np.int64)
    zeros = np.zeros(n_entries, dtype=np.int64)
    return Frames(flat, offsets, (), zeros, zeros, zeros)


def _same(frames: Frames, entry_values: np.ndarray, which: np.ndarray) -> np.ndarray:
    reference = frame_values_numpy(frames, entry_values, which)
    found = frame_values(frames, entry_values, which)
    assert found.dtype == reference.dtype
    assert np.array_equal(found, reference)
    return found


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_line_values_of_chosen_samples_on_every_capture(path: Path) -> None:
    frames = expand(decode_columns(path.read_bytes()))
    entry_values = (frames.entry_lines << 1) | (frames.entry_inlined != 0)
    n_samples = frames.offsets.shape[0] - 1
    rng = np.random.default_rng(n_samples)
    for which in (
        np.arange(n_samples, dtype=np.int64),
        np.flatnonzero(rng.random(n_samples) < 0.3).astype(np.int64),
        rng.permutation(n_samples).astype(np.int64),
        rng.integers(0, max(n_samples, 1), size=7 if n_samples else 0).astype(np.int64),  # repeats
    ):
        found = _same(frames, entry_values, which)
        lengths = np.diff(frames.offsets)[which]
        expected = [entry_values[frames.entries[frames.offsets[s] : frames.offsets[s + 1]]] for s in which.tolist()]
        assert found.shape[0] == int(lengths.sum())
        if expected:
            assert np.array_equal(found, np.concatenate(expected))


@pytest.mark.parametrize(
    ("top", "dtype"),
    [(0, "<u1"), (255, "<u1"), (256, "<u2"), (65535, "<u2"), (65536, "<u4"), (2**32 - 1, "<u4"), (2**32, "<i8")],
)
def test_every_width(top: int, dtype: str) -> None:
    frames = _frames([[0, 1], [], [1, 1, 0]], 2)
    values = np.array([7, top], dtype=np.int64)
    found = _same(frames, values, np.array([2, 0, 1], dtype=np.int64))
    assert found.dtype == np.dtype(dtype)
    assert found.tolist() == [top, top, 7, 7, top]
    assert narrowest(values).dtype == np.dtype(dtype)


@pytest.mark.parametrize("value", [-1, -(2**63), 2**63 - 1])
def test_negative_and_largest_values_take_eight_signed_bytes(value: int) -> None:
    frames = _frames([[0], [1, 0]], 2)
    found = _same(frames, np.array([3, value], dtype=np.int64), np.array([1, 0], dtype=np.int64))
    assert found.dtype == np.dtype("<i8")
    assert found.tolist() == [value, 3, 3]


@pytest.mark.parametrize("unused", [300, 70000, 2**40, -5])
def test_width_is_that_of_the_chosen_frames_only(unused: int) -> None:
    """An entry only unchosen samples use does not widen the values (the kernel packs at every entry's width,
    then narrows)."""
    frames = _frames([[0, 1], [2], [1]], 3)
    found = _same(frames, np.array([1, 200, unused], dtype=np.int64), np.array([2, 0], dtype=np.int64))
    assert found.dtype == np.dtype("<u1")
    assert found.tolist() == [200, 1, 200]


def test_nothing_chosen_is_one_byte_wide() -> None:
    for frames, which in (
        (_frames([[0, 1]], 2), np.zeros(0, dtype=np.int64)),
        (_frames([[], []], 2), np.array([1, 0], dtype=np.int64)),
        (_frames([], 0), np.zeros(0, dtype=np.int64)),
    ):
        found = _same(frames, np.array([-1, 2**40][: frames.entry_lines.shape[0]], dtype=np.int64), which)
        assert found.dtype == np.dtype("<u1")
        assert found.shape == (0,)


@needs_native
def test_the_bytes_are_little_endian() -> None:
    width, packed = _wire.pack_frame_values(
        *(np.array(a, dtype=np.int64).tobytes() for a in ([0x102, 0x304], [1, 0], [0, 2], [0]))
    )
    assert (width, packed) == (2, b"\x04\x03\x02\x01")


@needs_native
def test_arguments_that_do_not_fit_are_refused_not_read() -> None:
    values = np.array([5, 6], dtype=np.int64)
    entries = np.array([0, 1, 1], dtype=np.int64)
    offsets = np.array([0, 2, 3], dtype=np.int64)
    which = np.array([1, 0], dtype=np.int64)
    assert pack_frame_values(values, entries, offsets, which) is not None
    for bad_offsets in ([], [1, 2, 3], [0, 2, 1], [0, 2, 4]):
        with pytest.raises(ValueError, match="offsets"):
            pack_frame_values(values, entries, np.array(bad_offsets, dtype=np.int64), which)
    for bad_which in ([2], [-1], [0, 2**62]):
        with pytest.raises(ValueError, match="out of range"):
            pack_frame_values(values, entries, offsets, np.array(bad_which, dtype=np.int64))
    for bad_entries in ([0, 1, 2], [0, -1, 1], [0, 1, 2**62]):
        with pytest.raises(ValueError, match="no entry"):
            pack_frame_values(values, np.array(bad_entries, dtype=np.int64), offsets, which)
    with pytest.raises(ValueError, match="no entry"):
        pack_frame_values(values[:0], entries, offsets, which)
    words = [values.tobytes(), entries.tobytes(), offsets.tobytes()]
    with pytest.raises(ValueError, match="64-bit words"):
        _wire.pack_frame_values(words[0], words[1], words[2], b"\x00\x01\x02")
    with pytest.raises(TypeError, match="4 arrays"):
        _wire.pack_frame_values(words[0], words[1], words[2])  # type: ignore[call-arg]
