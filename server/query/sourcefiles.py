"""Source text for line-level views, read only from directories the operator mapped, never outside them.

A profile's file names are whatever the profiled binary recorded (and a
pushed profile can claim any name), so a path is taken as untrusted: it is
mapped through ``STACKYARD_SOURCE_ROOTS`` (profile path prefix = local
directory), and a path that would leave its directory (``..``, an absolute
remainder, a symlink pointing out) is refused, as is a file past a size
budget. What could not be shown says why, in words, beside the numbers.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

#: Largest source file read, in bytes: a generated file of megabytes is not source to show.
MAX_SOURCE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SourceRoot:
    prefix: str  # a profile path prefix ("" matches every path)
    directory: Path


@dataclass(frozen=True, slots=True)
class SourceText:
    """The file's lines (``lines[0]`` is line 1) or, when None, ``reason`` says why there is no text."""

    lines: list[str] | None
    reason: str


def parse_roots(text: str) -> list[SourceRoot]:
    """``prefix=dir,prefix=dir`` (checked when settings load), longest prefix first."""
    roots = []
    for entry in filter(None, (part.strip() for part in text.split(","))):
        prefix, _, directory = entry.partition("=")
        roots.append(SourceRoot(prefix.strip().rstrip("/"), Path(directory.strip())))
    return sorted(roots, key=lambda r: -len(r.prefix))


def _remainder(path: str, prefix: str) -> str | None:
    if not prefix:
        return path
    if path == prefix:
        return ""
    if path.startswith(prefix + "/"):
        return path[len(prefix) + 1 :]
    return None


def read_source(file: str, roots: list[SourceRoot]) -> SourceText:
    """The text of the profile path ``file`` under the first root whose prefix it starts with."""
    if not roots:
        return SourceText(None, "no source roots are configured (STACKYARD_SOURCE_ROOTS)")
    if not file:
        return SourceText(None, "the profile names no file for this function")
    for root in roots:
        rest = _remainder(file, root.prefix)
        if rest is None:
            continue
        parts = PurePosixPath(rest).parts
        if not rest or PurePosixPath(rest).is_absolute() or ".." in parts or "\0" in rest:
            return SourceText(None, f"refused: {file} leaves the source root {root.directory}")
        base = root.directory.resolve()
        candidate = (base / posixpath.normpath(rest)).resolve()
        if not candidate.is_relative_to(base):
            return SourceText(None, f"refused: {file} leaves the source root {root.directory}")
        if not candidate.is_file():
            return SourceText(None, f"{file} is not found under {root.directory}")
        if candidate.stat().st_size > MAX_SOURCE_BYTES:
            return SourceText(None, f"{file} is larger than {MAX_SOURCE_BYTES} bytes")
        with candidate.open("rb") as handle:
            data = handle.read(MAX_SOURCE_BYTES + 1)
        if len(data) > MAX_SOURCE_BYTES:
            return SourceText(None, f"{file} is larger than {MAX_SOURCE_BYTES} bytes")
        return SourceText(data.decode("utf-8", errors="replace").splitlines(), "")
    return SourceText(None, f"no source root maps {file}")
