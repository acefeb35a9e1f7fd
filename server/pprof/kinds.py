"""The profile kinds Go serves, and how to recognise one from its sample types."""

from __future__ import annotations

from collections.abc import Callable

from server.pprof.model import Profile

KINDS = ("cpu", "heap", "allocs", "goroutine", "mutex", "block", "threadcreate", "goroutineleak")

#: Kinds whose values are snapshots (gauges): over a time range they are averaged per profile.
GAUGE_SAMPLES = {
    "heap": {"inuse_objects", "inuse_space"},
    "goroutine": {"goroutine"},
    "goroutineleak": {"goroutine"},  # Go's experimental leak profile: goroutine format, leaked ones only
    "threadcreate": {"threadcreate"},
}


def is_gauge(kind: str, sample_type: str) -> bool:
    return sample_type in GAUGE_SAMPLES.get(kind, set())


def infer_kind(profile: Profile) -> str | None:
    """Guess the kind of a resolved profile; see :func:`infer_kind_from`."""
    return infer_kind_from(
        [vt.type for vt in profile.sample_types],
        profile.default_sample_type,
        lambda: {
            s.locations[0].lines[0].function.name for s in profile.samples if s.locations and s.locations[0].lines
        },
    )


def infer_kind_from(names: list[str], default_sample_type: str, leaf_functions: Callable[[], set[str]]) -> str | None:
    """Guess the kind from the sample types, or ``None`` when they do not tell.

    mutex and block profiles share their sample types (contentions/count,
    delay/nanoseconds); Go's mutex profile records the stack at unlock, so its
    leaf frames are ``Unlock`` methods, and a block profile's are not.
    ``leaf_functions`` is only called for that case.
    """
    if names == ["samples", "cpu"]:
        return "cpu"
    if names == ["goroutine"]:
        return "goroutine"
    if names == ["threadcreate"]:
        return "threadcreate"
    if names == ["alloc_objects", "alloc_space", "inuse_objects", "inuse_space"]:
        return "allocs" if default_sample_type == "alloc_space" else "heap"
    if names == ["contentions", "delay"]:
        leaves = leaf_functions()
        if not leaves:
            return None
        if all("unlock" in name.lower() for name in leaves):
            return "mutex"
        if not any("unlock" in name.lower() for name in leaves):
            return "block"
    return None
