"""A function's flat and cum per source line, as ``go tool pprof -list`` prints them.

Each line's numbers are that (function, file, line) node's at line
granularity (:mod:`server.query.lines`). pprof's routine header adds the
lines up: its flat is the function's flat, but its cum is the *sum of the
lines' cums*, so a recursive call counted on two lines is counted twice there
(verified: main.fib, cum 310 ms at function level, 550 ms in its ``-list``
header). Functions of one name in several files are one routine per file,
as pprof lists them. Source text comes from :mod:`server.query.sourcefiles`
and never changes a number.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from server.errors import NotFound
from server.query.lines import LineRow
from server.query.sourcefiles import SourceRoot, read_source

#: Lines of context shown around the lines with values, as pprof's listing does.
MARGIN = 5


@dataclass(frozen=True, slots=True)
class ListedLine:
    line: int
    flat: int
    cum: int
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Routine:
    """One function in one file: its lines with values (and context lines when the source is shown)."""

    function: str
    file: str
    flat: int
    cum: int
    lines: list[ListedLine]
    source: str  # "" when the text is included, else why not


def routines(rows: list[LineRow], function: str, roots: list[SourceRoot]) -> list[Routine]:
    """The routines of ``function`` (exact name) among the line rows; 404 if it has no samples."""
    by_file: dict[str, list[LineRow]] = defaultdict(list)
    for row in rows:
        if row.name == function:
            by_file[row.file].append(row)
    if not by_file:
        raise NotFound(f"no samples of function {function!r} in the selected profiles")
    result = []
    for file in sorted(by_file):
        lines = sorted(by_file[file], key=lambda r: r.line)
        flat, cum = sum(r.flat for r in lines), sum(r.cum for r in lines)
        numbers = {r.line: (r.flat, r.cum) for r in lines}
        text = read_source(file, roots)
        if text.lines is None:
            listed = [ListedLine(r.line, r.flat, r.cum) for r in lines]
        else:
            listed = _with_text(numbers, text.lines)
        result.append(Routine(function, file, flat, cum, listed, text.reason))
    return result


def _with_text(numbers: dict[int, tuple[int, int]], source: list[str]) -> list[ListedLine]:
    """Every line within ``MARGIN`` of a line with values, with its text (lines past the file's end have none)."""
    wanted: set[int] = set()
    for number in numbers:
        wanted.update(range(max(1, number - MARGIN), number + MARGIN + 1))
    listed = []
    for number in sorted(wanted):
        flat, cum = numbers.get(number, (0, 0))
        if number > len(source) and number not in numbers:
            continue
        text = source[number - 1] if number <= len(source) else None
        listed.append(ListedLine(number, flat, cum, text))
    return listed
