"""File-based service discovery: ``file_sd_configs`` read when asked, and re-read as the files change.

At load time a ``file_sd_configs`` block only becomes a :class:`FileSDConfig`
(its job's defaults and resolved glob patterns); :func:`read_file_sd` reads the
files once and :class:`FileSDWatcher` re-reads them as they change. A file
contributes all its targets or none, and a broken file keeps the targets it
last had while the watcher says why.
"""

from __future__ import annotations

import glob
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import Field, TypeAdapter

from server.config.fields import RefreshInterval
from server.config.problems import ConfigError, ConfigProblem, KeyPath, Lines, Source
from server.config.targetgroups import JobDefaults, TargetGroupModel, add_group_targets, merge_targets
from server.config.validation import StrictModel, validate
from server.config.yamllines import parse_yaml, read_text, record_lines
from server.scrape.spec import TargetSpec

DEFAULT_REFRESH_INTERVAL_S = 30.0
#: File-SD files are parsed by extension, as Prometheus does; anything else is refused at load time.
SD_EXTENSIONS = (".json", ".yml", ".yaml")


class FileSDModel(StrictModel):
    files: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    refresh_interval: RefreshInterval = DEFAULT_REFRESH_INTERVAL_S


_SD_FILE = TypeAdapter(list[TargetGroupModel])


@dataclass(frozen=True, slots=True)
class FileSDConfig:
    """One ``file_sd_configs`` entry; ``patterns`` are absolute globs (relative ones resolved against the config)."""

    job: JobDefaults
    patterns: tuple[str, ...]
    refresh_interval_s: float = DEFAULT_REFRESH_INTERVAL_S


def sd_patterns(model: FileSDModel, src: Source, at: KeyPath) -> tuple[str, ...]:
    patterns: list[str] = []
    for index, name in enumerate(model.files):
        if "\x00" in name:
            src.add((*at, "files", index), "file names cannot contain NUL characters")
        elif not name.lower().endswith(SD_EXTENSIONS):
            src.add((*at, "files", index), f"{name!r}: file names must end in {', '.join(SD_EXTENSIONS)}")
        else:
            patterns.append(str(src.resolve(name)))
    return tuple(patterns)


def _sd_lines(text: str) -> Lines:
    """Lines for a JSON file, best effort: JSON is nearly always valid YAML, and a failure only costs line numbers."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        return record_lines(node, "") if node is not None else {}
    except (yaml.YAMLError, ConfigError, RecursionError):
        return {}


def _read_sd_file(path: str, job: JobDefaults) -> list[TargetSpec]:
    """Targets of one file-SD file, all or nothing: a file with one bad target contributes no targets."""
    text = read_text(Path(path), path)
    if path.lower().endswith(".json"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError.single(path, exc.lineno, f"invalid JSON: {exc.msg}") from None
        except (ValueError, RecursionError) as exc:
            raise ConfigError.single(path, None, f"invalid JSON: {exc}") from None
        lines = _sd_lines(text)
    else:
        data, lines = parse_yaml(text, path)
    if data is None:  # an empty file is an empty list, as in Prometheus
        return []
    src = Source(path, lines, Path(path).parent)
    groups: list[TargetGroupModel] = validate(_SD_FILE.validate_python, list[TargetGroupModel], data, src)
    targets: list[TargetSpec] = []
    for index, group in enumerate(groups):
        add_group_targets(group, job, "file_sd", src, (index,), None, targets)
    src.raise_if_any()
    return merge_targets([targets])


def _matching_files(config: FileSDConfig) -> dict[str, tuple[int, int, int]]:
    """Regular files matching any pattern, with what tells a change: inode (atomic renames), mtime and size."""
    found: dict[str, tuple[int, int, int]] = {}
    for pattern in config.patterns:
        for name in glob.glob(pattern, recursive=True):
            try:
                st = os.stat(name)
            except OSError:
                continue  # removed between glob and stat
            if stat.S_ISREG(st.st_mode):
                found[name] = (st.st_ino, st.st_mtime_ns, st.st_size)
    return dict(sorted(found.items()))


def read_file_sd(config: FileSDConfig) -> list[TargetSpec]:
    """Read every file matching the patterns now; raises :class:`ConfigError` with the problems of all bad files."""
    per_file: list[list[TargetSpec]] = []
    problems: list[ConfigProblem] = []
    for path in _matching_files(config):
        try:
            per_file.append(_read_sd_file(path, config.job))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return merge_targets(per_file)


class FileSDWatcher:
    """Re-reads file-SD files when they change, so generated target files take effect without a restart.

    Call :meth:`poll` every ``config.refresh_interval_s``. A broken file never
    takes its targets away: a half-written or mistyped file keeps the targets
    it last had, and the reason is in :attr:`errors` (path → message) until
    the file is fixed or removed. Broken files are retried on every poll, so a
    fix that changes neither mtime nor size (``chmod``) is noticed too.
    """

    def __init__(self, config: FileSDConfig) -> None:
        self.config = config
        self.errors: dict[str, str] = {}
        self._stats: dict[str, tuple[int, int, int]] = {}
        self._targets: dict[str, list[TargetSpec]] = {}
        self._polled = False

    def poll(self) -> list[TargetSpec] | None:
        """The full target list if anything changed since the last poll (always on the first), else None."""
        found = _matching_files(self.config)
        changed = not self._polled
        for path in self._stats.keys() - found.keys():
            self._targets.pop(path, None)
            self.errors.pop(path, None)
            changed = True
        for path, signature in found.items():
            modified = self._stats.get(path) != signature
            if not modified and path not in self.errors:
                continue
            try:
                targets = _read_sd_file(path, self.config.job)
            except ConfigError as exc:
                changed = changed or modified
                self.errors[path] = str(exc)
                continue
            changed = changed or modified or self._targets.get(path) != targets
            self._targets[path] = targets
            self.errors.pop(path, None)
        self._stats = found
        self._polled = True
        if not changed:
            return None
        return merge_targets(self._targets[path] for path in sorted(self._targets))

    def targets(self) -> list[TargetSpec]:
        """The current list without touching the files (last good targets of broken ones included)."""
        return merge_targets(self._targets[path] for path in sorted(self._targets))
