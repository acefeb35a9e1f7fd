"""``scrape_configs``: each job's boundary model, its auth, TLS and profile settings, and its targets.

A job's static targets are built and checked now; its ``file_sd_configs``
become :class:`~server.config.filesd.FileSDConfig` sources read later. Secret
files are read once, at load, and relative file names are relative to the
config file.
"""

from __future__ import annotations

import difflib
from typing import Literal

from pydantic import Field, field_validator

from server.config.fields import Interval, Timeout
from server.config.filesd import FileSDConfig, FileSDModel, sd_patterns
from server.config.problems import KeyPath, Source
from server.config.targetgroups import DEFAULT_PATH_PREFIX, JobDefaults, TargetGroupModel, add_group_targets
from server.config.validation import StrictModel
from server.network.policy import NetworkPolicy
from server.scrape.spec import (
    DEFAULT_INTERVAL_S,
    MAX_RESPONSE_BYTES_LIMIT,
    PROFILE_PATHS,
    TIMED_KINDS,
    Auth,
    ProfileSpec,
    TargetSpec,
)


class _ProfileModel(StrictModel):
    enabled: bool = True
    path: str | None = Field(default=None, min_length=1)
    seconds: float | None = Field(default=None, gt=0, le=3600)
    interval: Interval | None = None  # this kind's own interval (goroutine_dump defaults to 1m)


class _BasicAuthModel(StrictModel):
    username: str
    password: str | None = None
    password_file: str | None = None


class _TLSModel(StrictModel):
    ca_file: str | None = Field(default=None, min_length=1)
    cert_file: str | None = Field(default=None, min_length=1)
    key_file: str | None = Field(default=None, min_length=1)
    insecure_skip_verify: bool = False


class ScrapeConfigModel(StrictModel):
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
    static_configs: list[TargetGroupModel] = Field(default_factory=list)
    file_sd_configs: list[FileSDModel] = Field(default_factory=list)

    @field_validator("path_prefix")
    @classmethod
    def _absolute_prefix(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"{value!r} must start with /")
        return value


def _read_secret(src: Source, parts: KeyPath, name: str) -> str | None:
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


def _tls_file(src: Source, parts: KeyPath, name: str | None) -> str | None:
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


def _build_auth(job: ScrapeConfigModel, src: Source, at: KeyPath) -> Auth | None:
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


def _build_profiles(job: ScrapeConfigModel, src: Source, at: KeyPath) -> tuple[ProfileSpec, ...]:
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


def build_scrape_section(
    jobs: list[ScrapeConfigModel],
    src: Source,
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
            add_group_targets(group, job, "config", src, (*at, "static_configs", j), seen, targets, places)
        for j, sd in enumerate(model.file_sd_configs):
            patterns = sd_patterns(sd, src, (*at, "file_sd_configs", j))
            file_sd.append(FileSDConfig(job=job, patterns=patterns, refresh_interval_s=sd.refresh_interval))
    return targets, file_sd
