"""Group a dump's goroutines by (state, stack): thousands of leaked goroutines become one line.

A stack is identified by its frames' functions, files and lines plus its
``created by`` frame, never by pc offsets, argument values or goroutine ids,
which differ between goroutines parked at the same place. The hash of that key
is what the store deduplicates stacks by, and what lets leak detection follow
one stack from dump to dump.
"""

from __future__ import annotations

import hashlib
import statistics
from dataclasses import dataclass

from server.goroutines.parse import Frame, Goroutine

#: Frames of the runtime itself: a goroutine "blocks at" the first frame outside them.
RUNTIME_PREFIXES = ("runtime.", "runtime/internal/", "internal/runtime/")


@dataclass(frozen=True, slots=True)
class Stack:
    frames: tuple[Frame, ...]
    created_by: Frame | None

    @property
    def hash(self) -> int:
        """A signed 64-bit content hash (fits a BIGINT column), stable across processes."""
        parts = [f"{f.function}\x00{f.file}\x00{f.line}" for f in self.frames]
        if self.created_by is not None:
            c = self.created_by
            parts.append(f"created by\x00{c.function}\x00{c.file}\x00{c.line}")
        digest = hashlib.blake2b("\x01".join(parts).encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big", signed=True)

    @property
    def blocking_frame(self) -> Frame | None:
        """Where the goroutines wait: the first frame that is not the runtime's (else the innermost)."""
        for frame in self.frames:
            if not frame.function.startswith(RUNTIME_PREFIXES):
                return frame
        return self.frames[0] if self.frames else None


@dataclass(frozen=True, slots=True)
class Group:
    state: str
    stack: Stack
    count: int
    max_wait_minutes: int
    median_wait_minutes: float
    locked: int


def group_goroutines(goroutines: list[Goroutine]) -> list[Group]:
    """One group per (state, stack), largest first."""
    members: dict[tuple[str, Stack], list[Goroutine]] = {}
    for goroutine in goroutines:
        key = (goroutine.state, Stack(tuple(_plain(f) for f in goroutine.frames), _plain_or_none(goroutine.created_by)))
        members.setdefault(key, []).append(goroutine)
    groups = [
        Group(
            state,
            stack,
            len(found),
            max(g.wait_minutes for g in found),
            float(statistics.median(g.wait_minutes for g in found)),
            sum(1 for g in found if g.locked),
        )
        for (state, stack), found in members.items()
    ]
    groups.sort(key=lambda g: (-g.count, g.state, g.stack.hash))
    return groups


def _plain(frame: Frame) -> Frame:
    return Frame(frame.function, frame.file, frame.line)


def _plain_or_none(frame: Frame | None) -> Frame | None:
    return None if frame is None else _plain(frame)
