"""What a profile from a Pyroscope client becomes in Stackyard: which kinds, with which sample types.

Pyroscope names a profile (its ``__name__``): Alloy sends the name as a
label; for an SDK upload Pyroscope derives it from the sample types, read
through the display names of ``sample_type_config`` (``cpu`` →
``process_cpu``; ``alloc_*``/``inuse_*`` → ``memory``; ``mutex_*`` →
``mutex``; ``block_*`` → ``block``; ``goroutines``). Stackyard derives it the
same way, and stores:

======================  =========================================================
Pyroscope name          Stackyard
======================  =========================================================
``process_cpu``         ``cpu``
``memory``              ``heap`` with ``inuse_space``/``inuse_objects`` (a snapshot),
                        and ``allocs`` with ``alloc_space``/``alloc_objects`` (a delta)
``goroutine``           ``goroutine``
``goroutines``          ``goroutine``, labelled ``__name__="goroutines"`` (the SDK's name,
                        which Pyroscope's query API keeps apart from scraped ``goroutine``)
``mutex``, ``block``    ``mutex``, ``block`` (deltas)
a kind's own name       that kind
anything else           the kind Stackyard infers from the sample types, as for
                        ``/api/v1/ingest`` (mutex and block told apart by their leaf frames)
======================  =========================================================

Why memory is split: Stackyard's ``heap`` kind is a snapshot that is averaged
over time, and its ``allocs`` kind holds deltas that are summed. The SDK's
heap profile (godeltaprof) already holds ``alloc_*`` as deltas over the
upload interval and ``inuse_*`` as a snapshot, so each half is stored as the
kind that means it, and Stackyard's own queries and the Pyroscope query API
(``memory:inuse_*`` from ``heap``, ``memory:alloc_*`` from ``allocs``) read
both correctly. A memory profile whose ``alloc_*`` still count since the
process started (Alloy without ``__delta__="false"``, an SDK's
``prev_profile``) is marked :attr:`Part.cumulative`: its previous profile is
subtracted first (:mod:`server.pyroscope.cumulative`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from server.pprof.kinds import KINDS
from server.pprof.select import SampleView
from server.pyroscope.uploadparams import SampleTypeConfig

HEAP = SampleView(("inuse_objects", "inuse_space"), "inuse_space")
ALLOCS = SampleView(("alloc_objects", "alloc_space"), "alloc_space")
#: Pyroscope's names for Stackyard kinds, where they differ from the kind.
NAMES = {"process_cpu": "cpu", "goroutines": "goroutine"}
#: Names Alloy gives the godeltaprof endpoints' profiles (it renames them before sending, but a
#: relabelled or older configuration may not): always deltas.
DELTA_NAMES = {"godeltaprof_memory": "memory", "godeltaprof_mutex": "mutex", "godeltaprof_block": "block"}
#: Names Stackyard keeps as the series label ``__name__`` because Pyroscope's query API tells them apart.
KEPT_NAMES = frozenset({"goroutines"})
#: Kinds whose values count since the process started when the client did not subtract.
CUMULATIVE_KINDS = frozenset({"allocs", "mutex", "block"})


@dataclass(frozen=True, slots=True)
class Part:
    """One stored profile made from an upload: its kind (``None``: inferred), sample types and extra labels."""

    kind: str | None
    view: SampleView | None = None
    labels: dict[str, str] = field(default_factory=dict)
    cumulative: bool = False


def sdk_name(sample_types: Sequence[str], config: Mapping[str, SampleTypeConfig]) -> str | None:
    """The profile name Pyroscope gives an SDK upload, from its sample types as the config displays them."""
    if "wall" in sample_types:
        return "wall"
    for sample_type in sample_types:
        entry = config.get(sample_type)
        shown = entry.display_name if entry is not None and entry.display_name else sample_type
        if "cpu" in shown:
            return "process_cpu"
        if "alloc_" in shown or "inuse_" in shown or shown in ("space", "objects"):
            return "memory"
        if "mutex_" in shown:
            return "mutex"
        if "block_" in shown:
            return "block"
        if "goroutines" in shown:
            return "goroutines"
    return None


def parts_of(name: str | None, sample_types: Sequence[str], already_delta: bool) -> list[Part]:
    """The profiles to store for one upload named ``name`` (``None``: unnamed) with these sample types.

    ``already_delta``: the client sent counters as deltas (the SDK always does; Alloy says so with
    ``__delta__="false"``). Otherwise a memory profile's ``alloc_*`` are cumulative.
    """
    if name in DELTA_NAMES:
        name, already_delta = DELTA_NAMES[name], True
    if name == "memory":
        parts = []
        if all(t in sample_types for t in HEAP.names):
            parts.append(Part("heap", HEAP))
        if all(t in sample_types for t in ALLOCS.names):
            parts.append(Part("allocs", ALLOCS, cumulative=not already_delta))
        if parts:
            return parts
        return [Part(None)]
    if name is None:
        return [Part(None)]
    kind = NAMES.get(name, name)
    if kind not in KINDS or kind in ("heap", "allocs"):
        return [Part(None)]  # a name Stackyard has no kind for: the sample types decide, or the upload is refused
    labels = {"__name__": name} if name in KEPT_NAMES else {}
    return [Part(kind, None, labels)]
