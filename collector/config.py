"""The YAML config file (``stackyard serve|collect --config``): Prometheus-shaped scrape jobs.

Loading happens in three steps, so that every mistake can be reported as
``file:line: key.path: what is wrong``:

1. the text is *composed* (not just loaded) with PyYAML's safe loader, and the
   node tree is walked once to remember the line of every key and list item;
2. the loaded data is validated by strict pydantic models (``extra="forbid"``),
   whose error ``loc`` is looked up in that line map;
3. the validated models are turned into the domain model of
   :mod:`server.scrape.spec` (``TargetSpec``, ``Auth``, ``ProfileSpec``), reading
   secret files and checking every target with :func:`server.scrape.spec.check_target`;
   given a network policy, target addresses are checked against it, and the
   static targets' names are resolved and checked too (:mod:`collector.preflight`).

All problems found in one step are reported together, so a user fixes every
typo in one round rather than one per restart.

``file_sd_configs`` are not read at load time: :class:`Config` only carries
their resolved glob patterns. :func:`read_file_sd` reads them once and
:class:`FileSDWatcher` re-reads them as they change.

``rules:`` and ``receivers:`` (alerting) are checked by the parsers the API
uses (:mod:`server.alerts`), whose errors name the field they reject.

Adding a top-level section: add a field to
``_ConfigModel``, a builder next to ``_build_scrape_section`` and a field to
:class:`Config`; unknown keys and line numbers then work without more code.
"""

from __future__ import annotations

import difflib
import glob
import json
import os
import stat
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from server.alerts.receivers import Receiver, parse_receiver
from server.alerts.rules import Rule, parse_rule
from server.auth.tokens import TokenEntry
from server.errors import InvalidParameter, StackyardError
from server.network.policy import NetworkPolicy
from server.scrape.spec import (
    DEFAULT_INTERVAL_S,
    MAX_RESPONSE_BYTES_LIMIT,
    MIN_INTERVAL_S,
    PROFILE_PATHS,
    TIMED_KINDS,
    Auth,
    ProfileSpec,
    TargetSpec,
    check_target,
    default_profiles,
)
from server.syntax.labels import LABEL_NAME, MAX_LABEL_VALUE, pasted_hint
from server.syntax.times import parse_duration_ns

__all__ = [
    "Config",
    "ConfigError",
    "ConfigProblem",
    "FileSDConfig",
    "FileSDWatcher",
    "JobDefaults",
    "format_key_path",
    "load_config",
    "read_file_sd",
]

DEFAULT_PATH_PREFIX = "/debug/pprof"
DEFAULT_REFRESH_INTERVAL_S = 30.0
MAX_INTERVAL_S = 86_400.0
MAX_TIMEOUT_S = 3_600.0
#: File-SD files are parsed by extension, as Prometheus does; anything else is refused at load time.
SD_EXTENSIONS = (".json", ".yml", ".yaml")
#: A YAML file of this many nodes (counting alias expansions) is refused: it is an alias bomb, not a config.
MAX_NODES = 200_000

_MERGE_TAG = "tag:yaml.org,2002:merge"

KeyPath = tuple[str | int, ...]
_Lines = dict[tuple[str, ...], int]


# --------------------------------------------------------------------------- errors


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


class _Source:
    """One parsed file: its name, where each key sits, and the problems found so far."""

    def __init__(self, file: str, lines: _Lines, base_dir: Path) -> None:
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


# --------------------------------------------------------------------------- YAML with line numbers


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


def _record_lines(root: Node, file: str) -> _Lines:
    """Line of every key and list item by key path; also refuses duplicate keys, which PyYAML silently drops.

    Aliases are followed (a key inside an anchored block is reported at the
    anchor), but an alias to one of its own ancestors or a "billion laughs"
    expansion stops with an error instead of hanging.
    """
    lines: _Lines = {(): root.start_mark.line + 1}
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


def _parse_yaml(text: str, file: str) -> tuple[Any, _Lines]:
    """``(None, {})`` for a file that holds no document (empty, or only comments)."""
    try:
        loader = _Loader(text)  # checks for unprintable characters already
        try:
            node = loader.get_single_node()
            if node is None:
                return None, {}
            lines = _record_lines(node, file)
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


def _read_text(path: Path, file: str) -> str:
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


# --------------------------------------------------------------------------- boundary models


def _duration(low: float, high: float, low_inclusive: bool = True) -> Callable[[Any], float]:
    """A validator for Prometheus-style durations; bare numbers are refused because their unit is a guess."""

    def parse(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError(f"expected a duration like 15s, got {_describe(value)}")
        if not isinstance(value, str):
            raise ValueError(f"{value!r} has no unit; write it like {value}s or {value}m")
        try:
            seconds = parse_duration_ns(value) / 1e9
        except StackyardError:
            raise ValueError(f"{value!r} is not a duration (like 30s, 15m, 1h30m)") from None
        too_low = seconds < low if low_inclusive else seconds <= low
        if too_low or seconds > high:
            lowest = f"{low:g}s" if low_inclusive else "more than 0s"
            raise ValueError(f"{value!r} is out of range: must be {lowest} to {_format_seconds(high)}")
        return seconds

    return parse


def _format_seconds(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _check_label_name(name: Any) -> Any:
    if not isinstance(name, str):
        return name  # the strict str check names the type
    if not LABEL_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a valid label name (letters, digits and _; not starting with a digit)")
    if name.startswith("__"):
        raise ValueError(f"label names starting with __ are reserved: {name!r}")
    return name


def _check_label_value(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_LABEL_VALUE:
        raise ValueError(f"label values are at most {MAX_LABEL_VALUE} characters")
    hint = pasted_hint(value) if isinstance(value, str) else None
    if hint:
        raise ValueError(f"{value!r} {hint}")
    return value


Interval = Annotated[float, BeforeValidator(_duration(MIN_INTERVAL_S, MAX_INTERVAL_S))]
Timeout = Annotated[float, BeforeValidator(_duration(0.0, MAX_TIMEOUT_S, low_inclusive=False))]
RefreshInterval = Annotated[float, BeforeValidator(_duration(0.0, MAX_INTERVAL_S, low_inclusive=False))]
LabelName = Annotated[str, BeforeValidator(_check_label_name)]
LabelValue = Annotated[str, BeforeValidator(_check_label_value)]


class _Model(BaseModel):
    """Strict because YAML already typed the values: ``enabled: "no"`` is a mistake, not a string to coerce."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, data: Any) -> Any:
        """``key:`` with nothing after it is YAML null; Prometheus reads it as "not set", and so do we."""
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data


class _ProfileModel(_Model):
    enabled: bool = True
    path: str | None = Field(default=None, min_length=1)
    seconds: float | None = Field(default=None, gt=0, le=3600)
    interval: Interval | None = None  # this kind's own interval (goroutine_dump defaults to 1m)


class _BasicAuthModel(_Model):
    username: str
    password: str | None = None
    password_file: str | None = None


class _TLSModel(_Model):
    ca_file: str | None = Field(default=None, min_length=1)
    cert_file: str | None = Field(default=None, min_length=1)
    key_file: str | None = Field(default=None, min_length=1)
    insecure_skip_verify: bool = False


class _TargetGroupModel(_Model):
    """A ``static_configs`` entry, and also one group of a file-SD file: Prometheus uses one shape for both."""

    targets: list[str] = Field(default_factory=list)
    labels: dict[LabelName, LabelValue] = Field(default_factory=dict)


class _FileSDModel(_Model):
    files: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    refresh_interval: RefreshInterval = DEFAULT_REFRESH_INTERVAL_S


class _ScrapeConfigModel(_Model):
    job_name: str = Field(min_length=1, max_length=256)
    scrape_interval: Interval = DEFAULT_INTERVAL_S
    scrape_timeout: Timeout | None = None
    max_response_bytes: int | None = Field(default=None, gt=0, le=MAX_RESPONSE_BYTES_LIMIT)
    scheme: Literal["http", "https"] = "http"
    path_prefix: str = DEFAULT_PATH_PREFIX
    profiles: dict[str, _ProfileModel] = Field(default_factory=dict)
    basic_auth: _BasicAuthModel | None = None
    bearer_token: str | None = None
    bearer_token_file: str | None = Field(default=None, min_length=1)
    tls_config: _TLSModel | None = None
    static_configs: list[_TargetGroupModel] = Field(default_factory=list)
    file_sd_configs: list[_FileSDModel] = Field(default_factory=list)

    @field_validator("path_prefix")
    @classmethod
    def _absolute_prefix(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"{value!r} must start with /")
        return value


class _TokenModel(_Model):
    name: str = Field(min_length=1, max_length=128)
    scopes: list[Literal["read", "ingest", "admin"]] = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")


class _AuthModel(_Model):
    tokens: list[_TokenModel] = Field(default_factory=list)


class _ConfigModel(_Model):
    """One field per top-level section."""

    scrape_configs: list[_ScrapeConfigModel] = Field(default_factory=list)
    auth: _AuthModel | None = None
    # Checked by the same parsers as the API (server.alerts), so both report the same mistakes.
    rules: list[dict[str, Any]] = Field(default_factory=list)
    receivers: list[dict[str, Any]] = Field(default_factory=list)


_SD_FILE = TypeAdapter(list[_TargetGroupModel])


def _describe(value: Any) -> str:
    """Values as a YAML user would name them, not Python's type names."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"string {shown!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, date):
        return f"date {value.isoformat()} (quote it to make it a string)"
    return type(value).__name__


def _unwrap(tp: Any) -> Any:
    """Strip ``Annotated`` and ``| None`` so the model class underneath can be found."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin is Union or origin is types.UnionType:
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _known_keys(root: Any, loc: KeyPath) -> list[str]:
    """The keys allowed where ``loc`` points, to suggest the one a typo meant."""
    tp = _unwrap(root)
    for part in loc:
        origin = get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            info = tp.model_fields.get(str(part))
            if info is None:
                return []
            tp = _unwrap(info.annotation)
        elif origin is list:
            tp = _unwrap(get_args(tp)[0])
        elif origin is dict:
            tp = _unwrap(get_args(tp)[1])
        else:
            return []
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return list(tp.model_fields)
    return []


def _error_message(error: ErrorDetails, root: Any) -> str:
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        loc = error["loc"]
        close = difflib.get_close_matches(str(loc[-1]), _known_keys(root, loc[:-1]), n=1)
        return "unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")
    if kind == "missing":
        return "required, but missing"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping, got {_describe(value)}"
    if kind == "list_type":
        return f"expected a list, got {_describe(value)}"
    if kind == "string_type":
        return f"expected a string, got {_describe(value)}"
    if kind == "bool_type":
        return f"expected true or false, got {_describe(value)}"
    if kind in ("float_type", "int_type"):
        return f"expected a number, got {_describe(value)}"
    if kind == "invalid_key":
        return f"keys must be strings, got {_describe(value)}"
    if kind == "literal_error":
        return f"expected {error.get('ctx', {}).get('expected', 'one of the allowed values')}, got {_describe(value)}"
    if kind == "value_error":
        return str(error.get("ctx", {}).get("error", error["msg"]))
    return error["msg"]


def _validate(adapter: Callable[[Any], Any], root: Any, data: Any, src: _Source) -> Any:
    try:
        return adapter(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            loc = tuple(p for p in error["loc"] if p != "[key]")
            src.add(loc, _error_message(error, root))
        src.raise_if_any()
        raise  # unreachable: a ValidationError always has errors


# --------------------------------------------------------------------------- domain


@dataclass(frozen=True, slots=True)
class JobDefaults:
    """What a scrape job gives each of its targets: file-SD targets are built from this long after loading."""

    job_name: str
    scheme: str = "http"
    interval_s: float = DEFAULT_INTERVAL_S
    timeout_s: float | None = None
    path_prefix: str = DEFAULT_PATH_PREFIX
    profiles: tuple[ProfileSpec, ...] = field(default_factory=default_profiles)
    auth: Auth | None = None
    max_response_bytes: int | None = None
    #: Refuses targets written as denied addresses, file-SD ones included (names: at connect time).
    policy: NetworkPolicy | None = field(default=None, compare=False, repr=False)

    def target(self, address: str, labels: Mapping[str, str], source: str) -> TargetSpec:
        """Build and check one target; raises :class:`InvalidParameter` naming what is wrong.

        ``address`` is ``host:port`` (the job's scheme is added) or a full
        ``http(s)://`` URL; a ``service`` label overrides the job name.
        """
        if not address:
            raise InvalidParameter("target", "empty target")
        if any(ch.isspace() or not ch.isprintable() for ch in address):
            raise InvalidParameter("target", f"{address!r} contains whitespace or control characters")
        if "://" in address:
            url = address
        elif any(ch in address for ch in "/?#@"):
            raise InvalidParameter("target", f"{address!r} is neither host:port nor an http:// or https:// URL")
        else:
            url = f"{self.scheme}://{address}"
        extra = dict(labels)
        service = extra.pop("service", self.job_name)
        return check_target(
            TargetSpec(
                url=url,
                service=service,
                labels=extra,
                interval_s=self.interval_s,
                timeout_s=self.timeout_s,
                profiles=self.profiles,
                path_prefix=self.path_prefix,
                auth=self.auth,
                source=source,
                max_response_bytes=self.max_response_bytes,
            ),
            self.policy,
        )


@dataclass(frozen=True, slots=True)
class FileSDConfig:
    """One ``file_sd_configs`` entry; ``patterns`` are absolute globs (relative ones resolved against the config)."""

    job: JobDefaults
    patterns: tuple[str, ...]
    refresh_interval_s: float = DEFAULT_REFRESH_INTERVAL_S


@dataclass(frozen=True, slots=True)
class Config:
    """A loaded config: static targets now, file-SD sources to read (and watch) later."""

    targets: list[TargetSpec] = field(default_factory=list)
    file_sd: list[FileSDConfig] = field(default_factory=list)
    auth_tokens: list[TokenEntry] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    receivers: list[Receiver] = field(default_factory=list)


def _read_secret(src: _Source, parts: KeyPath, name: str) -> str | None:
    """Secret files are read once at load (as Prometheus does), trimmed of the newline editors add."""
    path = src.resolve(name)
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, ValueError) as exc:  # ValueError: not UTF-8, or a NUL in the name
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        src.add(parts, f"cannot read {str(path)!r}: {reason}")
        return None
    if not text:
        src.add(parts, f"{str(path)!r} is empty")
        return None
    return text


def _tls_file(src: _Source, parts: KeyPath, name: str | None) -> str | None:
    if name is None:
        return None
    path = src.resolve(name)
    try:
        exists = path.is_file()
    except (OSError, ValueError):
        exists = False
    if not exists:
        src.add(parts, f"no such file: {str(path)!r}")
    return str(path)


def _build_auth(job: _ScrapeConfigModel, src: _Source, at: KeyPath) -> Auth | None:
    given = [key for key in ("basic_auth", "bearer_token", "bearer_token_file") if getattr(job, key) is not None]
    for extra in given[1:]:
        src.add((*at, extra), f"cannot be combined with {given[0]}; use one way to authenticate")
    username = password = token = None
    if job.basic_auth is not None:
        basic = job.basic_auth
        username, password = basic.username, basic.password
        if basic.password_file is not None:
            if basic.password is not None:
                src.add((*at, "basic_auth", "password_file"), "cannot be combined with password")
            password = _read_secret(src, (*at, "basic_auth", "password_file"), basic.password_file)
    if job.bearer_token is not None:
        token = job.bearer_token
        if not token:
            src.add((*at, "bearer_token"), "empty token")
    if job.bearer_token_file is not None:
        token = _read_secret(src, (*at, "bearer_token_file"), job.bearer_token_file)
    tls = job.tls_config or _TLSModel()
    tls_at = (*at, "tls_config")
    if (tls.cert_file is None) != (tls.key_file is None):
        missing = "key_file" if tls.key_file is None else "cert_file"
        src.add((*tls_at, "cert_file" if missing == "key_file" else "key_file"), f"needs {missing} too")
    auth = Auth(
        username=username,
        password=password,
        bearer_token=token,
        ca_file=_tls_file(src, (*tls_at, "ca_file"), tls.ca_file),
        cert_file=_tls_file(src, (*tls_at, "cert_file"), tls.cert_file),
        key_file=_tls_file(src, (*tls_at, "key_file"), tls.key_file),
        insecure_skip_verify=tls.insecure_skip_verify,
    )
    return None if auth == Auth() else auth


def _build_profiles(job: _ScrapeConfigModel, src: _Source, at: KeyPath) -> tuple[ProfileSpec, ...]:
    for kind, spec in job.profiles.items():
        if kind not in PROFILE_PATHS:
            close = difflib.get_close_matches(kind, PROFILE_PATHS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"expected one of {', '.join(PROFILE_PATHS)}"
            src.add((*at, "profiles", kind), f"unknown profile type ({hint})")
        elif spec.seconds is not None and kind not in TIMED_KINDS:
            timed = ", ".join(k for k in PROFILE_PATHS if k in TIMED_KINDS)
            src.add((*at, "profiles", kind, "seconds"), f"only {timed} take seconds; {kind} is a snapshot")
    specs: list[ProfileSpec] = []
    for kind in PROFILE_PATHS:
        given = job.profiles.get(kind)
        specs.append(
            ProfileSpec(kind)
            if given is None
            else ProfileSpec(kind, given.enabled, given.path, given.seconds, given.interval)
        )
    return tuple(specs)


def _add_group_targets(
    group: _TargetGroupModel,
    job: JobDefaults,
    source: str,
    src: _Source,
    at: KeyPath,
    seen: dict[str, int | None] | None,
    out: list[TargetSpec],
    places: dict[str, tuple[KeyPath, str]] | None = None,
) -> None:
    """Targets of one group, each checked.

    With ``seen``, a target listed twice (same URL and service) is reported:
    in a hand-written config that is a mistake. Generated file-SD files pass
    None, and duplicates are dropped later by :func:`_merge`, as Prometheus does.
    """
    for index, address in enumerate(group.targets):
        try:
            target = job.target(address, group.labels, source)
        except InvalidParameter as exc:
            detail = exc.message.removeprefix("url: ").removeprefix("target: ")
            subject = "" if repr(address) in detail else f" {address!r}"
            src.add((*at, "targets", index), f"invalid target{subject}: {detail}")
            continue
        if seen is not None:
            if target.key in seen:
                first = seen[target.key]
                where = f" (first at line {first})" if first is not None else ""
                src.add((*at, "targets", index), f"{target.url} of service {target.service!r} is listed twice{where}")
                continue
            seen[target.key] = src.line((*at, "targets", index))
        if places is not None:
            places[target.key] = ((*at, "targets", index), address)
        out.append(target)


def _sd_patterns(model: _FileSDModel, src: _Source, at: KeyPath) -> tuple[str, ...]:
    patterns: list[str] = []
    for index, name in enumerate(model.files):
        if "\x00" in name:
            src.add((*at, "files", index), "file names cannot contain NUL characters")
        elif not name.lower().endswith(SD_EXTENSIONS):
            src.add((*at, "files", index), f"{name!r}: file names must end in {', '.join(SD_EXTENSIONS)}")
        else:
            patterns.append(str(src.resolve(name)))
    return tuple(patterns)


def _build_scrape_section(
    jobs: list[_ScrapeConfigModel],
    src: _Source,
    policy: NetworkPolicy | None = None,
    places: dict[str, tuple[KeyPath, str]] | None = None,
) -> tuple[list[TargetSpec], list[FileSDConfig]]:
    targets: list[TargetSpec] = []
    file_sd: list[FileSDConfig] = []
    names: dict[str, int | None] = {}
    seen: dict[str, int | None] = {}
    for i, model in enumerate(jobs):
        at: KeyPath = ("scrape_configs", i)
        if model.job_name in names:
            first = names[model.job_name]
            where = f" (first at line {first})" if first is not None else ""
            src.add((*at, "job_name"), f"duplicate job_name {model.job_name!r}{where}")
        else:
            names[model.job_name] = src.line((*at, "job_name"))
        job = JobDefaults(
            job_name=model.job_name,
            scheme=model.scheme,
            interval_s=model.scrape_interval,
            timeout_s=model.scrape_timeout,
            path_prefix=model.path_prefix,
            profiles=_build_profiles(model, src, at),
            auth=_build_auth(model, src, at),
            max_response_bytes=model.max_response_bytes,
            policy=policy,
        )
        for j, group in enumerate(model.static_configs):
            _add_group_targets(group, job, "config", src, (*at, "static_configs", j), seen, targets, places)
        for j, sd in enumerate(model.file_sd_configs):
            patterns = _sd_patterns(sd, src, (*at, "file_sd_configs", j))
            file_sd.append(FileSDConfig(job=job, patterns=patterns, refresh_interval_s=sd.refresh_interval))
    return targets, file_sd


def _alert_problem(src: _Source, at: KeyPath, exc: InvalidParameter) -> None:
    """``labels.severity`` from the parser becomes the key path ``rules[0].labels.severity``."""
    parts = tuple(p for p in exc.parameter.split(".") if p) if exc.parameter not in ("rule", "receiver") else ()
    src.add((*at, *parts), exc.message.removeprefix(f"{exc.parameter}: "))


def _build_alert_sections(
    model: _ConfigModel, src: _Source, policy: NetworkPolicy | None = None
) -> tuple[list[Rule], list[Receiver]]:
    receivers: list[Receiver] = []
    seen: dict[str, int | None] = {}
    for i, data in enumerate(model.receivers):
        at: KeyPath = ("receivers", i)
        try:
            receiver = parse_receiver(data, source="config", policy=policy)
        except InvalidParameter as exc:
            _alert_problem(src, at, exc)
            continue
        if receiver.name in seen:
            src.add((*at, "name"), f"duplicate receiver {receiver.name!r} (first at line {seen[receiver.name]})")
            continue
        seen[receiver.name] = src.line((*at, "name"))
        receivers.append(receiver)
    rules: list[Rule] = []
    names: dict[str, int | None] = {}
    for i, data in enumerate(model.rules):
        at = ("rules", i)
        try:
            rule = parse_rule(data, source="config")
        except InvalidParameter as exc:
            _alert_problem(src, at, exc)
            continue
        if rule.name in names:
            src.add((*at, "name"), f"duplicate rule {rule.name!r} (first at line {names[rule.name]})")
            continue
        if rule.receiver is not None and rule.receiver not in seen:
            known = ", ".join(seen) or "none are defined"
            src.add((*at, "receiver"), f"no receiver named {rule.receiver!r} under receivers: ({known})")
            continue
        names[rule.name] = src.line((*at, "name"))
        rules.append(rule)
    return rules, receivers


def load_config(path: Path, policy: NetworkPolicy | None = None) -> Config:
    """Read and check the whole config; raises :class:`ConfigError` listing every problem found.

    With ``policy`` (``stackyard serve`` and ``collect`` pass the configured
    one), a static target the scraper would refuse, or a receiver's webhook
    the dispatcher would refuse, is a problem of the file, reported before
    anything starts: written as a denied address, or a name resolving only
    into denied networks. Names that do not resolve now pass (see
    :mod:`collector.preflight`).
    """
    file = str(path)
    text = _read_text(path, file)
    data, lines = _parse_yaml(text, file)
    if data is None:
        raise ConfigError.single(file, 1, "the file is empty; expected a mapping with scrape_configs")
    if not isinstance(data, dict):
        raise ConfigError.single(file, lines.get(()), f"expected a mapping at the top level, got {_describe(data)}")
    src = _Source(file, lines, path.parent)
    model: _ConfigModel = _validate(_ConfigModel.model_validate, _ConfigModel, data, src)
    places: dict[str, tuple[KeyPath, str]] = {}  # target key -> where it is written, and how
    targets, file_sd = _build_scrape_section(model.scrape_configs, src, policy, places)
    rules, receivers = _build_alert_sections(model, src, policy)
    if policy is not None:
        from collector.preflight import refused_urls  # resolves names: only callers with a policy pay for it

        # Targets and webhooks together, so all names resolve in one parallel round.
        refused = refused_urls([*(t.url for t in targets), *(r.webhook_url for r in receivers)], policy)
        for target in targets:
            if target.url in refused:
                at, address = places[target.key]
                src.add(at, f"invalid target {address!r}: {refused[target.url]}")
        accepted = {r.webhook_url for r in receivers}
        for i, data in enumerate(model.receivers):
            url = data.get("webhook_url") if isinstance(data, dict) else None
            if isinstance(url, str) and url.strip() in accepted and url.strip() in refused:
                src.add(("receivers", i, "webhook_url"), refused[url.strip()])
    src.raise_if_any()
    tokens = [TokenEntry.model_validate(t.model_dump()) for t in (model.auth.tokens if model.auth else [])]
    return Config(targets=targets, file_sd=file_sd, auth_tokens=tokens, rules=rules, receivers=receivers)


# --------------------------------------------------------------------------- file-based service discovery


def _sd_lines(text: str) -> _Lines:
    """Lines for a JSON file, best effort: JSON is nearly always valid YAML, and a failure only costs line numbers."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        return _record_lines(node, "") if node is not None else {}
    except (yaml.YAMLError, ConfigError, RecursionError):
        return {}


def _read_sd_file(path: str, job: JobDefaults) -> list[TargetSpec]:
    """Targets of one file-SD file, all or nothing: a file with one bad target contributes no targets."""
    text = _read_text(Path(path), path)
    if path.lower().endswith(".json"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError.single(path, exc.lineno, f"invalid JSON: {exc.msg}") from None
        except (ValueError, RecursionError) as exc:
            raise ConfigError.single(path, None, f"invalid JSON: {exc}") from None
        lines = _sd_lines(text)
    else:
        data, lines = _parse_yaml(text, path)
    if data is None:  # an empty file is an empty list, as in Prometheus
        return []
    src = _Source(path, lines, Path(path).parent)
    groups: list[_TargetGroupModel] = _validate(_SD_FILE.validate_python, list[_TargetGroupModel], data, src)
    targets: list[TargetSpec] = []
    for index, group in enumerate(groups):
        _add_group_targets(group, job, "file_sd", src, (index,), None, targets)
    src.raise_if_any()
    return _merge([targets])


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


def _merge(per_file: Iterable[list[TargetSpec]]) -> list[TargetSpec]:
    """One list in file-name order; a target in two files is kept once (the first), as the scheduler keys on it."""
    seen: set[str] = set()
    out: list[TargetSpec] = []
    for targets in per_file:
        for target in targets:
            if target.key not in seen:
                seen.add(target.key)
                out.append(target)
    return out


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
    return _merge(per_file)


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
        return _merge(self._targets[path] for path in sorted(self._targets))

    def targets(self) -> list[TargetSpec]:
        """The current list without touching the files (last good targets of broken ones included)."""
        return _merge(self._targets[path] for path in sorted(self._targets))
