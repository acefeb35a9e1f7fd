"""What is wrong with a config file, and where: ``file:line: key.path: message``, every problem at once.

A :class:`Source` is one file being checked: where each key sits (from
:mod:`server.config.yamllines`) and the problems found so far, so each step of
the load adds what it finds and the user fixes every typo in one round.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

KeyPath = tuple[str | int, ...]
#: Line of every key and list item of a file, by key path (list indexes as strings).
Lines = dict[tuple[str, ...], int]


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One mistake; ``line`` is None only when the file could not be read or parsed at all."""

    file: str
    line: int | None
    key_path: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.key_path}: {self.message}" if self.key_path else f"{where}: {self.message}"


class ConfigError(Exception):
    """Every problem of one file, sorted by line; ``str()`` is one ``file:line: key.path: message`` per line.

    ``file``, ``line`` and ``key_path`` are those of the first problem, which is
    what a caller showing a single sentence wants.
    """

    def __init__(self, problems: Iterable[ConfigProblem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line is not None, p.line or 0))
        if not self.problems:
            raise ValueError("a ConfigError needs at least one problem")
        super().__init__("\n".join(str(p) for p in self.problems))
        first = self.problems[0]
        self.file = first.file
        self.line = first.line
        self.key_path = first.key_path

    @classmethod
    def single(cls, file: str, line: int | None, message: str, key_path: str = "") -> ConfigError:
        return cls([ConfigProblem(file, line, key_path, message)])


def format_key_path(parts: Iterable[str | int]) -> str:
    """``("scrape_configs", 0, "job_name")`` → ``scrape_configs[0].job_name``, the way users read YAML."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


class Source:
    """One parsed file: its name, where each key sits, and the problems found so far."""

    def __init__(self, file: str, lines: Lines, base_dir: Path) -> None:
        self.file = file
        self.lines = lines
        self.base_dir = base_dir
        self.problems: list[ConfigProblem] = []

    def line(self, parts: KeyPath) -> int | None:
        """The line of the deepest key of ``parts`` that exists in the file (a missing key: its parent's)."""
        key = tuple(str(p) for p in parts)
        for n in range(len(key), -1, -1):
            line = self.lines.get(key[:n])
            if line is not None:
                return line
        return None

    def add(self, parts: KeyPath, message: str) -> None:
        self.problems.append(ConfigProblem(self.file, self.line(parts), format_key_path(parts), message))

    def raise_if_any(self) -> None:
        if self.problems:
            raise ConfigError(self.problems)

    def resolve(self, name: str) -> Path:
        """Relative file names in a config are relative to the config's directory, not the working directory."""
        path = Path(name)
        return path if path.is_absolute() else self.base_dir / path
