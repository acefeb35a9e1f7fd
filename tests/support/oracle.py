"""``go tool pprof`` as the correctness oracle: run it and read its numbers back exactly.

``-unit`` is set to the sample type's base unit so values print as exact
integers (``400000000ns``), and node trimming is off so every function shows.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.tools import go_binary

_UNIT_FLAG = {"nanoseconds": "ns", "bytes": "B"}
_TOTAL = re.compile(r"of (-?[\d.]+)\S* total")
_SHOWN = re.compile(r"accounting for (-?[\d.]+)\S*,")
_ROW = re.compile(r"^\s*(-?\d+)\S*\s+\S+\s+\S+\s+(-?\d+)\S*\s+\S+\s+(.+?)\s*$")


@dataclass(frozen=True)
class PprofTop:
    total: int
    rows: dict[str, tuple[int, int]]  # function name -> (flat, cum)
    shown: int = 0  # "accounting for": the sum of what survived filters such as -tagfocus
    # name -> "inline" or "partial-inline", where printed; not compared: a mark depends on how frames sit in
    # locations, which exports (one location per frame) do not keep
    marks: dict[str, str] = field(default_factory=dict, compare=False)


def run_pprof(args: list[str], cwd: Path | None = None) -> str:
    result = subprocess.run(
        [go_binary(), "tool", "pprof", *args], capture_output=True, text=True, timeout=120, cwd=cwd, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"go tool pprof {' '.join(args)} failed: {result.stderr}")
    return result.stdout


def merged_file(files: list[Path]) -> Path:
    """One file for several: pprof's own merge (``-proto``), since ``-diff_base`` takes a single profile."""
    if len(files) == 1:
        return files[0]
    out = Path(tempfile.mkdtemp(prefix="stackyard-merge-")) / "merged.pb.gz"
    out.write_bytes(run_pprof_bytes(["-proto", *[str(f) for f in files]]))
    return out


def run_pprof_bytes(args: list[str]) -> bytes:
    result = subprocess.run([go_binary(), "tool", "pprof", *args], capture_output=True, timeout=120, check=False)
    if result.returncode != 0:
        raise AssertionError(f"go tool pprof {' '.join(args)} failed: {result.stderr.decode()}")
    return result.stdout


def pprof_top(
    files: list[Path],
    sample: str,
    unit: str,
    diff_base: list[Path] | None = None,
    normalize: bool = False,
    extra: tuple[str, ...] = (),
) -> PprofTop:
    args = ["-top", "-nodecount=100000", "-nodefraction=0", "-edgefraction=0", f"-sample_index={sample}", *extra]
    if unit in _UNIT_FLAG:
        args.append(f"-unit={_UNIT_FLAG[unit]}")
    if diff_base:
        args.append(f"-diff_base={merged_file(diff_base)}")
    if normalize:
        args.append("-normalize")
    output = run_pprof([*args, *[str(f) for f in files]])
    total_match = _TOTAL.search(output)
    assert total_match, f"no total in pprof output:\n{output}"
    total = int(float(total_match.group(1)))
    shown_match = _SHOWN.search(output)
    shown = int(float(shown_match.group(1))) if shown_match else total
    rows: dict[str, tuple[int, int]] = {}
    marks: dict[str, str] = {}
    in_table = False
    for line in output.splitlines():
        if line.strip().startswith("flat") and "flat%" in line:
            in_table = True
            continue
        if not in_table:
            continue
        match = _ROW.match(line)
        assert match, f"unparsed pprof row: {line!r}"
        marked = re.search(r" \(((?:partial-)?inline)\)$", match.group(3))
        name = match.group(3)[: marked.start()] if marked else match.group(3)
        flat, cum = int(match.group(1)), int(match.group(2))
        assert name not in rows, f"pprof printed {name} twice:\n{output}"
        rows[name] = (flat, cum)
        if marked:
            marks[name] = marked.group(1)
    return PprofTop(total, rows, shown, marks)


@dataclass(frozen=True)
class PprofListing:
    """One ``ROUTINE`` of ``go tool pprof -list``: header flat and cum, and flat and cum per line with values."""

    function: str
    flat: int
    cum: int
    lines: dict[int, tuple[int, int]]


_ROUTINE = re.compile(r"^ROUTINE =+ (.+) in (.+)$")
_HEADER = re.compile(r"^\s*(-?\d+)\S*\s+(-?\d+)\S*\s+\(flat, cum\)")
_LISTED = re.compile(r"^\s*(\.|-?\d+\S*)\s+(\.|-?\d+\S*)\s+(\d+):")


def _listed_value(text: str) -> int:
    return 0 if text == "." else int(re.sub(r"[^\d-]", "", text))


def pprof_list(
    files: list[Path], sample: str, unit: str, function: str, source_path: Path, trim_path: str
) -> list[PprofListing]:
    """``-list '^function$'`` with the source found under ``source_path`` (pprof prints no line without it)."""
    args = ["-list", f"^{re.escape(function)}$", f"-sample_index={sample}"]
    args += [f"-source_path={source_path}", f"-trim_path={trim_path}"]
    if unit in _UNIT_FLAG:
        args.append(f"-unit={_UNIT_FLAG[unit]}")
    output = run_pprof([*args, *[str(f) for f in files]])
    routines: list[PprofListing] = []
    for line in output.splitlines():
        if _ROUTINE.match(line):
            routines.append(PprofListing(_ROUTINE.match(line).group(1), 0, 0, {}))  # type: ignore[union-attr]
            continue
        if not routines:
            continue
        header = _HEADER.match(line)
        if header and not routines[-1].lines and routines[-1].flat == routines[-1].cum == 0:
            routines[-1] = PprofListing(routines[-1].function, int(header.group(1)), int(header.group(2)), {})
            continue
        listed = _LISTED.match(line)
        if listed:
            flat, cum = _listed_value(listed.group(1)), _listed_value(listed.group(2))
            if flat or cum:
                routines[-1].lines[int(listed.group(3))] = (flat, cum)
    assert routines, f"no routine in pprof -list output:\n{output}"
    return routines


@dataclass(frozen=True)
class PprofPeek:
    """One function of ``go tool pprof -peek``: its flat and cum, and the edges into and out of it."""

    flat: int
    cum: int
    callers: dict[str, int]
    callees: dict[str, int]


_PEEK_EDGE = re.compile(r"^\s+(-?\d+)\S*\s+\S+%\s+\|\s+(.+?)\s*$")
_PEEK_NODE = re.compile(r"^\s*(-?\d+)\S*\s+\S+%\s+\S+%\s+(-?\d+)\S*\s+\S+%\s+\|\s+(.+?)\s*$")


def pprof_peek(
    files: list[Path], sample: str, unit: str, regex: str, extra: tuple[str, ...] = ()
) -> dict[str, PprofPeek]:
    """``go tool pprof -peek REGEX``, every function it matched, with exact values (no trimming)."""
    args = ["-peek", regex, "-nodecount=100000", "-nodefraction=0", "-edgefraction=0", f"-sample_index={sample}"]
    if unit in _UNIT_FLAG:
        args.append(f"-unit={_UNIT_FLAG[unit]}")
    output = run_pprof([*args, *extra, *[str(f) for f in files]])
    found: dict[str, PprofPeek] = {}
    block: list[str] = []
    for line in [*output.splitlines(), "-----+-----"]:
        if not line.startswith("-----"):
            block.append(line)
            continue
        edges: dict[str, int] = {}
        callers: dict[str, int] = {}
        node: tuple[str, int, int] | None = None
        for entry in block:
            if (match := _PEEK_NODE.match(entry)) is not None:
                node = (_strip_inline(match.group(3)), int(match.group(1)), int(match.group(2)))
                callers, edges = edges, {}
            elif (match := _PEEK_EDGE.match(entry)) is not None:
                edges[_strip_inline(match.group(2))] = int(match.group(1))
        if node is not None:
            found[node[0]] = PprofPeek(node[1], node[2], callers, edges)
        block = []
    return found


def _strip_inline(name: str) -> str:
    return re.sub(r" \((partial-)?inline\)$", "", name)
