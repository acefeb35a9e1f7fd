"""Every link between the project's Markdown documents leads somewhere: to a file that exists, and a heading.

Sections move (docs/benchmarks.md keeps the current results, its notebook the history), and
a link into a section that moved still opens the page, at the top, without a word. So each
relative link of every document is resolved against the document's folder, and an anchor
into a Markdown file must be the anchor GitHub gives one of its headings: lower case, the
punctuation dropped, spaces as dashes, ``-1``, ``-2``... for a repeated heading. Links to
other sites are not followed (the tests run offline).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.tools import ROOT


def _ours(path: Path) -> bool:
    """Not in a hidden folder (``.venv``, ``.git``, or a tool's cache such as ``.pytest_cache``, whose README
    appears after the first run) or ``node_modules``: the project's documents are the same on every run, so
    every pytest-xdist worker collects the same tests."""
    folders = path.relative_to(ROOT).parts[:-1]
    return not any(part.startswith(".") or part == "node_modules" for part in folders)


DOCUMENTS = sorted(path for path in ROOT.rglob("*.md") if _ours(path))
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*$", re.MULTILINE)


def prose(path: Path) -> str:
    """The document without its code blocks, whose brackets and hashes are code, not links or headings."""
    return FENCE.sub("", path.read_text())


def anchor(heading: str) -> str:
    text = heading.replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for match in HEADING.finditer(prose(path)):
        name = anchor(match.group(1))
        repeat = seen.get(name, 0)
        seen[name] = repeat + 1
        found.add(f"{name}-{repeat}" if repeat else name)
    return found


def test_anchors_are_githubs() -> None:
    heading = "Dashboard: the fleet overview at 1,000 instances"
    assert anchor(heading) == "dashboard-the-fleet-overview-at-1000-instances"
    assert anchor("Pyroscope's `SelectMergeStacktraces` (issue 13)") == "pyroscopes-selectmergestacktraces-issue-13"


def test_documents_are_found() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in DOCUMENTS}
    assert {"README.md", "docs/benchmarks.md", "docs/benchmarks-history.md", "web/README.md"} <= names


@pytest.mark.parametrize("document", DOCUMENTS, ids=[p.relative_to(ROOT).as_posix() for p in DOCUMENTS])
def test_every_relative_link_resolves(document: Path) -> None:
    broken = []
    for match in LINK.finditer(prose(document)):
        target = match.group(1)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        path, _, section = target.partition("#")
        file = (document.parent / path).resolve() if path else document
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif section and file.suffix == ".md" and section not in anchors(file):
            broken.append(f"{target}: no heading with that anchor in {file.relative_to(ROOT).as_posix()}")
    assert not broken, broken
