"""Target groups turned into checked targets: a ``static_configs`` entry, or one group of a file-SD file.

Prometheus uses one shape for both, and so does the loader: a group's
addresses get what their job gives (:class:`JobDefaults`: scheme, interval,
profiles, auth...), and each target is checked as the API checks one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pydantic import Field

from server.config.fields import LabelName, LabelValue
from server.config.problems import KeyPath, Source
from server.config.validation import StrictModel
from server.errors import InvalidParameter
from server.network.policy import NetworkPolicy
from server.scrape.spec import DEFAULT_INTERVAL_S, Auth, ProfileSpec, TargetSpec, check_target, default_profiles

DEFAULT_PATH_PREFIX = "/debug/pprof"


class TargetGroupModel(StrictModel):
    """A ``static_configs`` entry, and also one group of a file-SD file: Prometheus uses one shape for both."""

    targets: list[str] = Field(default_factory=list)
    labels: dict[LabelName, LabelValue] = Field(default_factory=dict)


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


def add_group_targets(
    group: TargetGroupModel,
    job: JobDefaults,
    source: str,
    src: Source,
    at: KeyPath,
    seen: dict[str, int | None] | None,
    out: list[TargetSpec],
    places: dict[str, tuple[KeyPath, str]] | None = None,
) -> None:
    """Targets of one group, each checked.

    With ``seen``, a target listed twice (same URL and service) is reported:
    in a hand-written config that is a mistake. Generated file-SD files pass
    None, and duplicates are dropped later by :func:`merge_targets`, as Prometheus does.
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


def merge_targets(per_file: Iterable[list[TargetSpec]]) -> list[TargetSpec]:
    """One list in file-name order; a target in two files is kept once (the first), as the scheduler keys on it."""
    seen: set[str] = set()
    out: list[TargetSpec] = []
    for targets in per_file:
        for target in targets:
            if target.key not in seen:
                seen.add(target.key)
                out.append(target)
    return out
