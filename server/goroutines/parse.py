"""Parse Go's ``goroutine?debug=2`` text dump into goroutines with state, wait, frames and creator.

The format is what ``runtime.Stack(buf, true)`` prints, one block per goroutine,
blocks separated by a blank line::

    goroutine 42 [chan receive, 15 minutes, locked to thread]:
    main.leakyWorker(0x2a)
    \tstackyard/examples/demo/main.go:212 +0x45
    created by main.startWorkers in goroutine 7
    \tstackyard/examples/demo/main.go:226 +0x7e

Go before 1.21 writes ``created by main.startWorkers`` without the goroutine.
``pprof`` cannot read this text, and it is the only place Go reports how long a
goroutine has waited and whether it is locked to its thread, which is why the
collector scrapes it as its own kind.

The parser is one pass over the lines with no recursion or backtracking, so its
time and memory are linear in the input; anything it does not recognise is a
:class:`DumpError` naming the line, never another exception (the fuzz test
holds it to that). A NUL character becomes U+FFFD, as invalid UTF-8 does.
It works within limits checked as it goes: the size of the text first, then
the number of goroutines and of distinct stacks, counted as they are read, so
a dump of a million minimal goroutines with a stack each is refused after the
first 10,000 (:class:`DumpTooLarge`) instead of costing gigabytes and a
minute. A dump cut off mid-line or mid-goroutine is an error too: storing it
would silently undercount.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from server.errors import InvalidParameter, LimitExceeded

_HEADER = re.compile(r"goroutine (\d+)(?: [^\[\]]*)? \[([^\]]*)\]:\Z")
_WAIT = re.compile(r"(\d+) minutes?\Z")
_LOCATION = re.compile(r"\t(.+?):(\d+)(?: \+0x([0-9a-fA-F]+))?(?: .*)?\Z")
_CREATED_BY = re.compile(r"created by (.+?)(?: in goroutine (\d+))?\Z")
_ELIDED = "...additional frames elided..."
_NO_STACK = "\tgoroutine running on other thread; stack unavailable"
MAX_LINE = 64 * 1024
#: Defaults of the limits a dump is parsed within (the server passes its settings).
MAX_GOROUTINES = 100_000
MAX_STACKS = 10_000
MAX_DUMP_BYTES = 64 * 1024 * 1024


class DumpError(InvalidParameter):
    """The text is not a complete goroutine dump; the message names the line and what was wrong."""

    def __init__(self, message: str) -> None:
        super().__init__("body", f"not a goroutine dump: {message}")


@dataclass(frozen=True, slots=True)
class Frame:
    function: str
    file: str
    line: int
    offset: int | None = None  # pc offset in the function (``+0x45``); absent for inlined frames

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class Goroutine:
    id: int
    state: str  # "chan receive", "select", "IO wait", "chan receive (nil chan)", ...
    wait_minutes: int  # 0 when Go printed no wait (it only prints waits of a minute or more)
    locked: bool  # "locked to thread"
    frames: tuple[Frame, ...]  # innermost first
    created_by: Frame | None = None
    creator_id: int | None = None  # "in goroutine N" (Go 1.21+)
    elided: bool = False  # Go cut the stack at 100 frames
    flags: tuple[str, ...] = ()  # anything else in the brackets, kept verbatim


def parse_dump(
    data: bytes | str,
    max_goroutines: int = MAX_GOROUTINES,
    max_bytes: int = MAX_DUMP_BYTES,
    max_stacks: int = MAX_STACKS,
) -> list[Goroutine]:
    """Every goroutine in the dump, in order; :class:`DumpError` when it is not a whole dump.

    Past ``max_bytes`` of input, at the first goroutine past ``max_goroutines``,
    or at the first one whose stack (frames and creator, as printed) would be
    distinct stack number ``max_stacks + 1``, it stops with :class:`DumpTooLarge`:
    memory and time stay proportional to what the limits accept. Leaked
    goroutines share a few stacks, which the parser reads from its caches; a
    dump of distinct stacks is the expensive kind, so it is the one bounded
    tightest.
    """
    if len(data) > max_bytes:
        raise DumpTooLarge(
            "dump_bytes", f"body: the dump is {len(data)} bytes, over the limit of {max_bytes} (max_body_bytes)"
        )
    if isinstance(data, bytes):
        if data[:2] == b"\x1f\x8b":
            raise DumpError("the body is gzip-compressed (a pprof profile?); ask for goroutine?debug=2")
        text = data.decode("utf-8", "replace")
    else:
        text = data
    if "\0" in text:
        text = text.replace("\0", "\ufffd")  # as in pprof strings: PostgreSQL's text cannot hold NUL
    if not text.strip():
        raise DumpError("the body is empty")
    if not text.endswith("\n"):
        raise DumpError("it ends in the middle of a line (truncated)")
    return _Parser(text, max_goroutines, max_stacks).parse()


class DumpTooLarge(LimitExceeded):
    """A dump past a size or goroutine-count limit; ``limit`` names it for ``stackyard_limit_rejections_total``."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(limit, message, 413)


def _lines(text: str, block: int = 1 << 20) -> Iterator[str]:
    """The lines of ``text`` (which ends with a newline), without it, split a block at a time.

    Never all at once: a list of every line of a dump of empty lines would
    cost 8 bytes per byte of input.
    """
    start, size = 0, len(text)
    while start < size:
        end = text.find("\n", min(start + block, size - 1))
        yield from text[start:end].split("\n")
        start = end + 1


class _Parser:
    """One pass over the lines, read one at a time."""

    def __init__(self, text: str, max_goroutines: int, max_stacks: int) -> None:
        self.max_goroutines = max_goroutines
        self.max_stacks = max_stacks
        self.lines = _lines(text)
        self.at = -1  # number of the current line, from 0
        self.line: str | None = None  # the current line; None past the last one
        self.previous = ""
        self.advance()
        # Leaked goroutines repeat the same lines thousands of times: parse each distinct one once.
        # Both caches hold at most one entry per input line, so they stay bounded by the input.
        self.states: dict[str, tuple[str, int, bool, tuple[str, ...]]] = {}
        self.frames: dict[tuple[str, str], Frame | None] = {}

    def advance(self) -> None:
        self.previous = self.line or ""
        self.line = next(self.lines, None)
        self.at += 1

    def fail(self, message: str, line: str | None = None, number: int | None = None) -> DumpError:
        shown = (self.line or "") if line is None else line
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        return DumpError(f"line {(self.at if number is None else number) + 1}: {message} ({shown!r})")

    def parse(self) -> list[Goroutine]:
        result: list[Goroutine] = []
        stacks: set[tuple[tuple[Frame, ...], Frame | None]] = set()
        while self.line is not None:
            if not self.line.strip():
                self.advance()
                continue
            if len(result) >= self.max_goroutines:
                raise DumpTooLarge(
                    "dump_goroutines",
                    f"body: the dump has more than {self.max_goroutines} goroutines, the limit (max_dump_goroutines)",
                )
            goroutine = self.goroutine()
            stack = (goroutine.frames, goroutine.created_by)
            if stack not in stacks:
                if len(stacks) >= self.max_stacks:
                    raise DumpTooLarge(
                        "dump_stacks",
                        f"body: the dump has more than {self.max_stacks} distinct stacks, the limit (max_dump_stacks)",
                    )
                stacks.add(stack)
            result.append(goroutine)
        return result

    def goroutine(self) -> Goroutine:
        line = self.line or ""
        header = _HEADER.match(line) if len(line) <= MAX_LINE else None
        if header is None:
            expected = "expected 'goroutine N [state]:'"
            raise self.fail(expected if self.at else f"{expected} on the first line")
        goroutine_id = int(header.group(1)[:19])
        bracket = header.group(2)
        parsed_state = self.states.get(bracket)
        if parsed_state is None:
            parsed_state = self.states[bracket] = _state(bracket)
        state, wait, locked, flags = parsed_state
        if not state:
            raise self.fail("the goroutine has no state")
        self.advance()
        frames: list[Frame] = []
        created_by: Frame | None = None
        creator: int | None = None
        elided = False
        while self.line is not None and self.line.strip():
            line = self.line
            if len(line) > MAX_LINE:
                raise self.fail(f"line longer than {MAX_LINE} characters")
            if line == _ELIDED:
                elided = True
                self.advance()
                continue
            if line == _NO_STACK:
                self.advance()
                continue
            if created_by is not None:
                raise self.fail("nothing may follow 'created by'")
            made = _CREATED_BY.match(line)
            function = made.group(1) if made else _function(line)
            if function is None:
                raise self.fail("expected a function call")
            self.advance()
            if self.line is None or not self.line.startswith("\t"):
                raise self.fail(f"{function} has no file:line after it (truncated?)")
            frame = self.frame(function, self.line)
            self.advance()
            if made:
                created_by = frame
                creator = int(made.group(2)[:19]) if made.group(2) else None
            else:
                frames.append(frame)
        if not frames and created_by is None and state != "running":
            raise self.fail(f"goroutine {goroutine_id} has no frames (truncated?)", self.previous, self.at - 1)
        return Goroutine(goroutine_id, state, wait, locked, tuple(frames), created_by, creator, elided, flags)

    def frame(self, function: str, line: str) -> Frame:
        """The frame of ``function`` at the location ``line`` (``\\tfile:line +0xoffset``)."""
        key = (function, line)
        if key in self.frames:
            found = self.frames[key]
        else:
            location = _LOCATION.match(line) if len(line) <= MAX_LINE else None
            found = self.frames[key] = (
                None
                if location is None
                else Frame(
                    function,
                    location.group(1),
                    int(location.group(2)[:18]),
                    int(location.group(3)[:15], 16) if location.group(3) else None,
                )
            )
        if found is None:
            raise self.fail("expected '\\tfile:line +0xoffset'")
        return found


def _state(bracket: str) -> tuple[str, int, bool, tuple[str, ...]]:
    """``chan receive, 15 minutes, locked to thread`` → state, wait in minutes, locked, other flags."""
    parts = [p.strip() for p in bracket.split(",")]
    state = parts[0]
    wait = 0
    locked = False
    flags: list[str] = []
    for part in parts[1:]:
        minutes = _WAIT.match(part)
        if minutes:
            wait = int(minutes.group(1)[:12])
        elif part == "locked to thread":
            locked = True
        elif part:
            flags.append(part)
    return state, wait, locked, tuple(flags)


def _function(line: str) -> str | None:
    """``main.(*T).m[...](0x1, {0x2, 0x3})`` → ``main.(*T).m[...]``: drop the final argument list."""
    if line.startswith(("\t", " ")) or not line.endswith(")"):
        return None
    opening = line.rfind("(")
    if line.find(")", opening, len(line) - 1) == -1:
        # The usual case: no parenthesis inside the arguments, so the last "(" opens them.
        name = line[:opening]
        return name if name and not name.isspace() else None
    depth = 0
    for position in range(len(line) - 1, -1, -1):
        char = line[position]
        if char == ")":
            depth += 1
        elif char == "(":
            depth -= 1
            if depth == 0:
                name = line[:position]
                return name if name and not name.isspace() else None
    return None
