"""Scrape targets: what to scrape, how often, and how a target's profiles are labelled.

This is the domain model shared by the API (which validates and stores
targets), the config file loader and the collector (which scrapes them). It
lives in ``server`` because the collector may import the server's pure parts
but the server never imports the collector.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from server.errors import InvalidTarget
from server.network.policy import NetworkPolicy
from server.network.redact import redact_credentials
from server.syntax.labels import LABEL_NAME, pasted_labels


@dataclass(frozen=True, slots=True)
class ProfileKind:
    """One kind of endpoint a target can be scraped for: the one list the API, the CLI and the pages share."""

    name: str
    path: str  # under the target's pprof prefix
    description: str
    default: bool = True  # scraped when a target names no profiles


#: The kind a target is scraped for its goroutine dump (text, not pprof), and the series kind dumps are stored under.
DUMP_KIND = "goroutine_dump"

#: Every kind, in the order forms and help texts list them. ``GET /api/v1/profile-kinds`` serves this list,
#: the dashboard's target forms are built from it, and ``stackyard targets add`` derives its help from it.
KINDS: tuple[ProfileKind, ...] = (
    ProfileKind("cpu", "profile", "CPU time, sampled over most of each interval"),
    ProfileKind("heap", "heap", "memory in use and allocated, sampled"),
    ProfileKind("allocs", "allocs", "allocations during each interval (a delta)"),
    ProfileKind("goroutine", "goroutine", "goroutine stacks and their count"),
    ProfileKind("mutex", "mutex", "lock contention during each interval (a delta)"),
    ProfileKind("block", "block", "time blocked on channels and locks during each interval (a delta)"),
    ProfileKind("threadcreate", "threadcreate", "stacks that created OS threads"),
    # Text, not pprof: states, waits and creators of every goroutine (server/goroutines/).
    ProfileKind(DUMP_KIND, "goroutine?debug=2", "every goroutine's state, wait and creator: what leak detection reads"),
    # Go's experimental leak profile (GOEXPERIMENT=goroutineleakprofile); dropped quietly where it 404s.
    ProfileKind("goroutineleak", "goroutineleak", "Go's own leak profile, where the Go version serves it"),
)
#: Path of each profile kind under the target's pprof prefix.
PROFILE_PATHS = {kind.name: kind.path for kind in KINDS}
#: Kinds whose counters are cumulative since process start: scraped as deltas.
DELTA_KINDS = frozenset({"allocs", "mutex", "block"})
#: Kinds that need ``?seconds=`` of wall time to produce a profile.
TIMED_KINDS = frozenset({"cpu"}) | DELTA_KINDS
#: Kinds many targets do not serve: a 404 stops their scraping for that target without an error.
OPTIONAL_KINDS = frozenset({"goroutineleak"})
#: Kinds with their own default interval, whatever the target's: a full dump is large.
KIND_INTERVALS_S = {DUMP_KIND: 60.0}
DEFAULT_INTERVAL_S = 15.0
MIN_INTERVAL_S = 1.0
MAX_SNAPSHOT_TIMEOUT_S = 10.0
#: A per-target response limit may raise the global one, up to this.
MAX_RESPONSE_BYTES_LIMIT = 1024**3


@dataclass(frozen=True, slots=True)
class ProfileSpec:
    """One endpoint of a target. ``path`` and ``seconds`` default from the kind and the interval."""

    kind: str
    enabled: bool = True
    path: str | None = None
    seconds: float | None = None
    interval_s: float | None = None  # None: the kind's default (KIND_INTERVALS_S), else the target's


@dataclass(frozen=True, slots=True)
class Auth:
    username: str | None = None
    password: str | None = None
    bearer_token: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure_skip_verify: bool = False

    def tls_key(self) -> tuple[str | None, str | None, str | None, bool]:
        """Targets with equal TLS settings can share one HTTP client."""
        return (self.ca_file, self.cert_file, self.key_file, self.insecure_skip_verify)


def default_kinds() -> list[str]:
    """The kinds a target gets when it names none."""
    return [kind.name for kind in KINDS if kind.default]


def default_profiles() -> tuple[ProfileSpec, ...]:
    return tuple(ProfileSpec(kind) for kind in default_kinds())


@dataclass(frozen=True, slots=True)
class TargetSpec:
    url: str
    service: str
    labels: dict[str, str] = field(default_factory=dict)
    interval_s: float = DEFAULT_INTERVAL_S
    timeout_s: float | None = None
    profiles: tuple[ProfileSpec, ...] = field(default_factory=default_profiles)
    path_prefix: str = "/debug/pprof"
    auth: Auth | None = None
    paused: bool = False
    id: int | None = None
    source: str = "api"
    max_response_bytes: int | None = None  # None: the global scrape_max_response_bytes

    @property
    def key(self) -> str:
        """Identity of a target across restarts and sources: its URL (credentials redacted) and service.

        The key travels: into logs, job ids and the idempotency key a pushing
        collector sends, so it must not carry a password from the URL.
        """
        return f"{self.shown_url}|{self.service}"

    @property
    def shown_url(self) -> str:
        """The URL as logs, errors and read-only readers see it: ``http://user:xxxxx@host/``."""
        return redact_credentials(self.url)

    @property
    def instance(self) -> str:
        """``host:port``, as Prometheus names an instance."""
        parts = urlsplit(self.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = parts.hostname or ""
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def series_labels(self) -> dict[str, str]:
        # The URL is parsed only when no instance label names it (a thousand targets' overview asks often).
        instance = self.labels.get("instance")
        if instance is None:
            instance = self.instance
        return {**self.labels, "service": self.service, "instance": instance}

    def interval_for(self, spec: ProfileSpec) -> float:
        """How often ``spec`` is scraped: its own interval, its kind's default, or the target's."""
        if spec.interval_s is not None:
            return spec.interval_s
        return KIND_INTERVALS_S.get(spec.kind, self.interval_s)

    def enabled_profiles(self) -> list[ProfileSpec]:
        return [p for p in self.profiles if p.enabled]

    def seconds_for(self, spec: ProfileSpec) -> int:
        """Wall time asked of a CPU or delta profile (Go accepts whole seconds only).

        Delta kinds ask for the whole interval: their requests may overlap by
        a few milliseconds (the collector allows two in flight), so consecutive
        deltas tile time and add up to the cumulative difference. Go allows one
        CPU profile at a time per process, so CPU asks for one second less than
        the interval to finish before the next tick.
        """
        if spec.seconds is not None:
            return max(1, round(spec.seconds))
        whole = max(1, math.ceil(self.interval_s))
        return whole if spec.kind in DELTA_KINDS else max(1, whole - 1)

    def timeout_for(self, spec: ProfileSpec) -> float:
        """Snapshots get the target's timeout (default: the interval, at most 10 s); timed kinds add their seconds."""
        base = self.timeout_s if self.timeout_s is not None else min(self.interval_s, MAX_SNAPSHOT_TIMEOUT_S)
        return base + (self.seconds_for(spec) if spec.kind in TIMED_KINDS else 0.0)

    def url_for(self, spec: ProfileSpec, seconds: float | None) -> str:
        path = spec.path or f"{self.path_prefix.rstrip('/')}/{PROFILE_PATHS[spec.kind]}"
        url = self.url.rstrip("/") + "/" + path.lstrip("/")
        if seconds is not None:
            url += ("&" if "?" in url else "?") + f"seconds={round(seconds)}"
        return url

    def with_id(self, target_id: int) -> TargetSpec:
        return replace(self, id=target_id)


def stable_hash(text: str) -> int:
    """A hash that is the same in every process and across restarts (unlike ``hash()``)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def offset_s(key: str, interval_s: float) -> float:
    """Where in each interval a job runs: spreads targets evenly and survives restarts."""
    return (stable_hash(key) % 1_000_000) / 1_000_000 * interval_s


def in_shard(target: TargetSpec, shard: int, shards: int) -> bool:
    """Prometheus-style hashmod: N collectors each take the targets whose URL hashes to their shard."""
    return stable_hash(target.url) % shards == shard


def check_target(target: TargetSpec, policy: NetworkPolicy | None = None) -> TargetSpec:
    """Reject what cannot be scraped, naming the field; returns the target, its URL made a base URL.

    With a ``policy``, a URL whose host is an address the policy refuses is
    rejected here; host names are checked when the scraper resolves them.
    A URL pasted with the pprof path (``http://host:6060/debug/pprof/``) has
    that path taken off, since ``path_prefix`` adds it to every scrape; a
    profile's own URL (``.../debug/pprof/heap``) is refused, saying what to give.
    """
    if any(c.isspace() or ord(c) < 32 for c in target.url):
        raise InvalidTarget("url", "must not contain spaces or control characters")
    try:
        parts = urlsplit(target.url)
        port = parts.port
    except ValueError as exc:
        raise InvalidTarget("url", f"{target.shown_url!r} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidTarget("url", f"scheme {parts.scheme or '(none)'!r} is not allowed; use http or https")
    if not parts.hostname:
        raise InvalidTarget("url", f"{target.shown_url!r} has no host")
    if port == 0:
        raise InvalidTarget("url", "port 0 is not a valid target port")
    if policy is not None:
        refusal = policy.literal_refusal(parts.hostname)
        if refusal is not None:
            raise InvalidTarget("url", f"refused: {refusal}")
    if parts.query or parts.fragment:
        raise InvalidTarget("url", "give the base URL only (no query or fragment); set path_prefix for the pprof path")
    if not target.service or len(target.service) > 256:
        raise InvalidTarget("service", "a non-empty service name of at most 256 characters is required")
    for name in target.labels:
        if not LABEL_NAME.fullmatch(name) or name.startswith("__"):
            raise InvalidTarget("labels", f"{name!r} is not a valid label name")
        if name == "service":
            raise InvalidTarget("labels", "set the service with the service field, not a label")
        pasted = pasted_labels(name, target.labels[name])
        if pasted:
            raise InvalidTarget("labels", pasted)
    if not MIN_INTERVAL_S <= target.interval_s <= 86_400:
        raise InvalidTarget("interval", f"must be between {MIN_INTERVAL_S:g}s and 24h")
    if target.timeout_s is not None and not 0 < target.timeout_s <= 3600:
        raise InvalidTarget("timeout", "must be positive and at most 1h")
    if target.max_response_bytes is not None and not 0 < target.max_response_bytes <= MAX_RESPONSE_BYTES_LIMIT:
        raise InvalidTarget("max_response_bytes", f"must be positive and at most {MAX_RESPONSE_BYTES_LIMIT}")
    seen: set[str] = set()
    for spec in target.profiles:
        if spec.kind not in PROFILE_PATHS:
            raise InvalidTarget(
                "profiles", f"unknown profile type {spec.kind!r}; expected one of {', '.join(PROFILE_PATHS)}"
            )
        if spec.kind in seen:
            raise InvalidTarget("profiles", f"{spec.kind!r} is listed twice")
        seen.add(spec.kind)
        if spec.seconds is not None and not 0 < spec.seconds <= 3600:
            raise InvalidTarget("profiles", f"{spec.kind}: seconds must be positive and at most 3600")
        if spec.interval_s is not None and not MIN_INTERVAL_S <= spec.interval_s <= 86_400:
            raise InvalidTarget("profiles", f"{spec.kind}: interval must be between {MIN_INTERVAL_S:g}s and 24h")
    if not target.path_prefix.startswith("/"):
        raise InvalidTarget("path_prefix", "must start with /")
    return _without_pprof_path(target)


def _without_pprof_path(target: TargetSpec) -> TargetSpec:
    """``http://host:6060/debug/pprof/`` scraped at ``/debug/pprof/debug/pprof/heap`` answers 404: take it off.

    A path before the prefix stays (a service behind a proxy at ``/app`` is
    scraped at ``/app/debug/pprof/heap``); a path reaching past the prefix
    names one profile, which no target URL should.
    """
    parts = urlsplit(target.url.strip())
    prefix = target.path_prefix.rstrip("/")
    path = parts.path.rstrip("/")
    if not prefix or not path:
        return target
    if path.endswith(prefix):
        base = f"{parts.scheme}://{parts.netloc}{path[: -len(prefix)]}"
        return replace(target, url=base)
    inside = (path + "/").find(prefix + "/")
    if inside >= 0:
        base = f"{parts.scheme}://{parts.netloc}{path[:inside]}"
        raise InvalidTarget(
            "url",
            f"{target.url} is the URL of one profile; give the service's base URL ({base}): "
            f"every profile kind is scraped under it, at path_prefix {prefix}/",
        )
    return target
