"""The goroutine?debug=2 parser on real dumps captured from the Go demo, and on broken ones."""

from __future__ import annotations

import random
import tracemalloc
from pathlib import Path

import pytest

from server.goroutines.groups import group_goroutines
from server.goroutines.parse import DumpError, DumpTooLarge, Frame, parse_dump
from tests.support.hostile import goroutine_bomb

DEMO = "stackyard/examples/demo/main.go"


@pytest.fixture(scope="module")
def long_dump(data_dir: Path) -> bytes:
    """Captured 75 s after start with -leak-rate 5 -leak-max 200 -threads 2 (scripts/capture_goroutine_dumps.sh)."""
    return (data_dir / "goroutine_dump_long.txt").read_bytes()


def headers(data: bytes) -> list[str]:
    return [line for line in data.decode().splitlines() if line.startswith("goroutine ")]


def test_every_goroutine_of_a_real_dump_is_parsed(long_dump: bytes) -> None:
    goroutines = parse_dump(long_dump)
    assert len(goroutines) == len(headers(long_dump))
    assert [g.id for g in goroutines] == [int(h.split()[1]) for h in headers(long_dump)]
    states = {g.state for g in goroutines}
    assert {"chan receive", "select", "sleep", "IO wait", "running", "syscall"} <= states


def test_waits_and_locked_threads(long_dump: bytes) -> None:
    goroutines = parse_dump(long_dump)
    expected_minutes = sum(1 for h in headers(long_dump) if " minutes" in h)
    assert sum(1 for g in goroutines if g.wait_minutes >= 1) == expected_minutes > 0
    locked = [g for g in goroutines if g.locked]
    assert len(locked) == 2  # -threads 2
    assert all(g.state == "chan receive" and g.wait_minutes == 1 for g in locked)
    assert all(any(f.function == "main.lockThread" for f in g.frames) for g in locked)
    assert all(g.created_by is not None and g.created_by.function == "main.startThreads" for g in locked)


def test_frames_and_created_by_of_a_leaked_worker(long_dump: bytes) -> None:
    workers = [g for g in parse_dump(long_dump) if any(f.function == "main.leakyWorker" for f in g.frames)]
    assert len(workers) == 200  # -leak-max 200, all started by 40 s
    first = workers[0]
    assert first.state == "chan receive"
    # Go hides the runtime's own frames (gopark, chanrecv) from debug=2 dumps of user goroutines.
    leaky = first.frames[0]
    assert (leaky.function, leaky.file) == ("main.leakyWorker", DEMO)
    assert leaky.line > 0 and leaky.offset is not None
    assert first.created_by is not None
    assert (first.created_by.function, first.created_by.file) == ("main.startWorkers", DEMO)
    assert first.creator_id is None  # Go 1.19 prints no "in goroutine N"


def test_groups_of_a_real_dump(long_dump: bytes) -> None:
    groups = group_goroutines(parse_dump(long_dump))
    assert sum(g.count for g in groups) == len(headers(long_dump))
    leak = groups[0]
    assert leak.count == 200 - sum(
        g.count for g in groups[1:] if g.stack.blocking_frame and g.stack.blocking_frame.function == "main.leakyWorker"
    )
    assert leak.stack.blocking_frame is not None and leak.stack.blocking_frame.function == "main.leakyWorker"
    assert leak.stack.created_by is not None and leak.stack.created_by.function == "main.startWorkers"
    # Leaked for 40 s then 35 s of silence: the oldest waited a minute, the youngest less.
    assert leak.max_wait_minutes == 1 and 0 <= leak.median_wait_minutes <= 1
    locked = [g for g in groups if g.locked]
    assert len(locked) == 1 and locked[0].locked == locked[0].count == 2


def test_an_early_dump_has_no_minutes(data_dir: Path) -> None:
    goroutines = parse_dump((data_dir / "goroutine_dump_early.txt").read_bytes())
    assert goroutines and all(g.wait_minutes == 0 for g in goroutines)
    assert any(f.function == "main.leakyWorker" for g in goroutines for f in g.frames)


GO121 = b"""goroutine 1 gp=0xc000002380 m=nil [chan receive (nil chan), 15 minutes, locked to thread]:
main.(*Server).wait[...](0xc000010000, {0x1, 0x2})
\t/src/app/server.go:42 +0x1d
main.inlined(...)
\t/src/app/server.go:50
...additional frames elided...
created by main.startWorkers in goroutine 7
\t/src/app/workers.go:12 +0x3f

goroutine 9 [running]:
\tgoroutine running on other thread; stack unavailable
created by main.main in goroutine 1
\t/src/app/main.go:3 +0x10
"""


def test_go_1_21_forms() -> None:
    first, second = parse_dump(GO121)
    assert (first.id, first.state, first.wait_minutes, first.locked) == (1, "chan receive (nil chan)", 15, True)
    assert first.frames == (
        Frame("main.(*Server).wait[...]", "/src/app/server.go", 42, 0x1D),
        Frame("main.inlined", "/src/app/server.go", 50, None),
    )
    assert first.elided
    assert first.created_by == Frame("main.startWorkers", "/src/app/workers.go", 12, 0x3F)
    assert first.creator_id == 7
    assert second.state == "running" and second.frames == () and second.creator_id == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"   \n\n", "empty"),
        (b"\x1f\x8b\x08\x00rest", "gzip"),
        (b"<html>not found</html>\n", "line 1: expected 'goroutine N [state]:' on the first line"),
        (b"goroutine 1 [select]:\nmain.main()\n\tmain.go:3 +0x1", "truncated"),
        (b"goroutine 1 [select]:\nmain.main()\n", "main.main has no file:line"),
        (b"goroutine 1 [select]:\n", "no frames"),
        (b"goroutine 1 []:\nmain.main()\n\tmain.go:3\n", "no state"),
        (b"goroutine 1 [select]:\nmain.main()\n\tmain.go\n", "expected '\\tfile:line"),
        (b"goroutine 1 [select]:\nnot a call\n\tmain.go:1\n", "expected a function call"),
        (b"goroutine 1 [select]:\nmain.main()\n\tmain.go:3\ngarbage\n", "line 4"),
        (b"goroutine 1 [select]:\nmain.main()\n\tmain.go:3\n\nhello\n", "line 5"),
    ],
)
def test_malformed_dumps_are_errors_that_say_why(data: bytes, message: str) -> None:
    with pytest.raises(DumpError) as caught:
        parse_dump(data)
    assert "not a goroutine dump" in str(caught.value) and message in str(caught.value)


def test_a_real_dump_cut_anywhere_is_an_error_or_a_prefix(long_dump: bytes) -> None:
    """Cut mid-line or mid-frame: an error. Cut at a line between frames: the goroutines before the cut.

    A cut right after a whole frame cannot be told from a goroutine that ends
    there (Go writes no end marker), so the last goroutine may lack its outer
    frames; everything before it must be exactly what the whole dump holds.
    """
    complete = parse_dump(long_dump)
    rng = random.Random(6)
    errors = 0
    for cut in [rng.randrange(1, len(long_dump)) for _ in range(300)]:
        try:
            partial = parse_dump(long_dump[:cut])
        except DumpError:
            errors += 1
            continue
        assert partial[:-1] == complete[: len(partial) - 1]
        last, whole = partial[-1], complete[len(partial) - 1]
        assert (last.id, last.state) == (whole.id, whole.state)
        assert whole.frames[: len(last.frames)] == last.frames
        assert last.created_by in (None, whole.created_by)
    assert errors > 250  # nearly every cut lands inside a line


def test_fuzzed_bytes_never_crash(long_dump: bytes) -> None:
    rng = random.Random(61)
    outcomes = {"error": 0, "parsed": 0}
    alphabet = b"goroutine []:()\t\n+0x, minuteslocked to thread created by in main.go:123 \xff"
    for _ in range(2000):
        if rng.random() < 0.5:
            data = bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 200)))
        else:
            # Whole lines of a real dump with a few bytes changed: often still a dump, often not.
            cut = long_dump.rfind(b"\n", 0, rng.randrange(100, 3000)) + 1
            mutated = bytearray(long_dump[:cut])
            for _ in range(rng.randrange(1, 3)):
                mutated[rng.randrange(len(mutated))] = rng.choice(alphabet)
            data = bytes(mutated)
        try:
            parsed = parse_dump(data)
        except DumpError as exc:
            outcomes["error"] += 1
            assert str(exc).startswith("body: not a goroutine dump: ")
            continue
        outcomes["parsed"] += 1
        assert all(g.state and (g.frames or g.created_by or g.state == "running") for g in parsed)
    assert outcomes["error"] > 100 and outcomes["parsed"] > 100


def test_the_goroutine_limit_is_counted_while_parsing(long_dump: bytes) -> None:
    count = len(headers(long_dump))
    assert len(parse_dump(long_dump, max_goroutines=count)) == count
    with pytest.raises(DumpTooLarge) as caught:
        parse_dump(long_dump, max_goroutines=count - 1)
    assert caught.value.limit == "dump_goroutines" and caught.value.status_code == 413
    assert caught.value.message == (
        f"body: the dump has more than {count - 1} goroutines, the limit (max_dump_goroutines)"
    )


def test_the_size_limit_comes_before_any_parsing(long_dump: bytes) -> None:
    with pytest.raises(DumpTooLarge) as caught:
        parse_dump(long_dump + b"\x00" * 10, max_bytes=len(long_dump))
    assert caught.value.limit == "dump_bytes"
    assert caught.value.message == (
        f"body: the dump is {len(long_dump) + 10} bytes, over the limit of {len(long_dump)} (max_body_bytes)"
    )


def test_the_distinct_stack_limit_is_counted_while_parsing(long_dump: bytes) -> None:
    stacks = len({(g.frames, g.created_by) for g in parse_dump(long_dump)})
    assert len(parse_dump(long_dump, max_stacks=stacks)) == len(headers(long_dump))
    with pytest.raises(DumpTooLarge) as caught:
        parse_dump(long_dump, max_stacks=stacks - 1)
    assert caught.value.limit == "dump_stacks"
    assert caught.value.message == (
        f"body: the dump has more than {stacks - 1} distinct stacks, the limit (max_dump_stacks)"
    )


def test_a_dump_of_minimal_goroutines_is_refused_holding_little() -> None:
    """32 MiB of 750,000 minimal goroutines, each with a frame of its own: refused at the 10,001st stack.

    Before the limits, parsing it held 650 MB (a list of every line, then a
    goroutine and a frame per block) and took 20 s; grouping took 27 s more.
    """
    bomb = goroutine_bomb()
    assert bomb.count(b"goroutine ") > 700_000
    tracemalloc.start()
    try:
        with pytest.raises(DumpTooLarge, match="more than 10000 distinct stacks"):
            parse_dump(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # The text (32 MiB as str) and 10,000 goroutines, never a list of the 3 million lines.
    assert peak < 64 * 1024 * 1024


def test_many_goroutines_of_few_stacks_stop_at_the_goroutine_limit() -> None:
    """What a leak looks like, 100,001 times over: the goroutine count is the limit that holds."""
    block = b"goroutine %d [chan receive, 5 minutes]:\nmain.leak(0x%x)\n\tmain.go:7 +0x1d\n\n"
    dump = b"".join(block % (n, n) for n in range(1, 100_002))
    with pytest.raises(DumpTooLarge, match="more than 100000 goroutines"):
        parse_dump(dump)
