"""YAML with line numbers: the file's text read, composed with PyYAML's safe loader, and every key's line kept.

The text is *composed* (not just loaded) and the node tree walked once to
remember the line of every key and list item, so a mistake found later, by
validation or a domain check, is reported at its line. Duplicate keys (which
PyYAML silently drops), aliases that contain themselves and alias bombs are
refused here, as are bytes that are not UTF-8 and characters YAML forbids.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from server.config.problems import ConfigError, KeyPath, Lines, format_key_path

#: A YAML file of this many nodes (counting alias expansions) is refused: it is an alias bomb, not a config.
MAX_NODES = 200_000

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Loader(yaml.SafeLoader):
    def construct_object(self, node: Node, deep: bool = False) -> Any:
        """PyYAML raises bare ValueErrors for impossible dates and huge ints; give them the node's line."""
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:
            raise yaml.constructor.ConstructorError(None, None, f"invalid value ({exc})", node.start_mark) from None


def _mapping_pairs(node: MappingNode, visiting: frozenset[int] = frozenset()) -> list[tuple[Node, Node]]:
    """Explicit pairs first, then those from ``<<`` merges in precedence order, as PyYAML resolves them."""
    explicit: list[tuple[Node, Node]] = []
    merged: list[tuple[Node, Node]] = []
    visiting = visiting | {id(node)}
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE_TAG:
            sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
            for source in sources:
                if isinstance(source, MappingNode) and id(source) not in visiting:
                    merged.extend(_mapping_pairs(source, visiting))
        else:
            explicit.append((key_node, value_node))
    return explicit + merged


def record_lines(root: Node, file: str) -> Lines:
    """Line of every key and list item by key path; also refuses duplicate keys, which PyYAML silently drops.

    Aliases are followed (a key inside an anchored block is reported at the
    anchor), but an alias to one of its own ancestors or a "billion laughs"
    expansion stops with an error instead of hanging.
    """
    lines: Lines = {(): root.start_mark.line + 1}
    budget = [MAX_NODES]

    def walk(node: Node, path: KeyPath, ancestors: frozenset[int]) -> None:
        budget[0] -= 1
        if budget[0] < 0:
            raise ConfigError.single(file, node.start_mark.line + 1, f"more than {MAX_NODES} YAML nodes (alias bomb?)")
        if id(node) in ancestors:
            raise ConfigError.single(file, node.start_mark.line + 1, "an alias contains itself", format_key_path(path))
        ancestors = ancestors | {id(node)}
        if isinstance(node, MappingNode):
            seen: set[str] = set()
            explicit = {id(k) for k, _ in node.value}
            for key_node, value_node in _mapping_pairs(node):
                if not isinstance(key_node, ScalarNode):
                    continue
                key = key_node.value
                line = key_node.start_mark.line + 1
                if key in seen:
                    if id(key_node) in explicit:
                        raise ConfigError.single(file, line, "duplicate key", format_key_path((*path, key)))
                    continue  # overridden by an explicit key or an earlier merge
                seen.add(key)
                lines[tuple(str(p) for p in (*path, key))] = line
                walk(value_node, (*path, key), ancestors)
        elif isinstance(node, SequenceNode):
            for index, item in enumerate(node.value):
                lines[tuple(str(p) for p in (*path, index))] = item.start_mark.line + 1
                walk(item, (*path, index), ancestors)

    walk(root, (), frozenset())
    return lines


def _yaml_error(file: str, exc: yaml.YAMLError) -> ConfigError:
    line: int | None = None
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        message = ": ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
    else:
        message = str(exc)
    kind = "YAML error" if isinstance(exc, yaml.constructor.ConstructorError) else "YAML syntax error"
    return ConfigError.single(file, line, f"{kind}: {message}")


def parse_yaml(text: str, file: str) -> tuple[Any, Lines]:
    """``(None, {})`` for a file that holds no document (empty, or only comments)."""
    try:
        loader = _Loader(text)  # checks for unprintable characters already
        try:
            node = loader.get_single_node()
            if node is None:
                return None, {}
            lines = record_lines(node, file)
            return loader.construct_document(node), lines
        finally:
            loader.dispose()
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        character = f"U+{exc.character:04X}" if isinstance(exc.character, int) else repr(exc.character)
        message = f"YAML syntax error: character {character} is not allowed ({exc.reason})"
        raise ConfigError.single(file, line, message) from None
    except yaml.YAMLError as exc:
        raise _yaml_error(file, exc) from None
    except RecursionError:
        raise ConfigError.single(file, None, "YAML syntax error: nested too deeply") from None


def read_text(path: Path, file: str) -> str:
    try:
        raw = path.read_bytes()
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError.single(file, None, f"cannot read the file: {reason}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError.single(file, line, "the file is not valid UTF-8") from None
