"""The profile sets ``bench/churn.py`` stores and queries, made from the real captures: what is real, what is derived.

The real part: R consecutive CPU captures of the running service per mode
(``bench/churn_captures.py``), kept byte for byte as Go wrote them.

A set is one CPU profile every 4 minutes: 360 a day, for 7 days (2,520).
Each day cycles through D *stack sets* (default D = R = 36): slot ``i``
holds stack set ``i mod D``; it is repeat ``i div D`` of it. Stack set ``j``
is capture ``j mod R``, relabelled by variant ``j div R`` (variant 0: as
captured). So:

- the first D slots are the real captures themselves, in capture order (when
  D <= R): consecutive slots share as few stacks as real consecutive
  captures do, because they are real consecutive captures;
- every later slot is a *derived* copy: values perturbed (about a tenth of
  the samples dropped, as real consecutive captures differ in their rarely
  hit stacks, and one sample in five counted twice; seeded per slot, so no two
  slots hold the same profile), ``time_nanos`` set to its slot (counted
  from the first capture's time), compressed as Go's runtime compresses CPU
  profiles (gzip at BestSpeed, ``bench/gogzip``: a real capture re-compressed
  so comes out byte-identical in size), so raw sizes are what a service
  would serve. With the defaults each capture appears ten times a day (as in
  the measurement that opened this work: ten scrapes of each capture), and
  each day the same 36 stack sets: a 7 d tree is no larger than one day's.
- D > R makes a day churn more: stack sets past the R real ones are copies
  with *functions relabelled* (churn mode only): variant ``v`` renames the
  generated functions by a permutation within their own kind (same layer of
  the call graph, same closure shape; ``F.func1`` follows ``F``; file names
  follow the function) drawn from seed ``v``; runtime and ``main`` frames
  keep their names. A relabelled copy keeps the capture's samples, depths,
  values and function set, with stacks another run of the service could have
  produced; two relabelled copies share about as few stacks as two real
  captures. ``D = 360`` makes every profile of a day bring new stacks, as a
  day of live captures of this service would; that costs today's store far
  more time and memory (see docs/churn.md).

Steady stack sets are never relabelled: a steady service runs the same hot
paths all day (D > R then only repeats captures). Ingest is given every
slot's time explicitly.
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from server.pprof import profile_pb2

DROP = 0.1  # share of samples a derived copy drops
DOUBLE = 0.2  # share of the rest counted twice


@dataclass(frozen=True)
class Slot:
    """One profile of a set: its position and time, its stack set and which repeat of it this is."""

    index: int
    offset_ns: int  # from the set's start
    stack_set: int
    repeat: int


def slots(count: int, distinct: int, step_ns: int) -> list[Slot]:
    return [Slot(i, i * step_ns, i % distinct, i // distinct) for i in range(count)]


class Relabeller:
    """Permutations of the generated functions within their kind (layer, closure shape), from generate.py's manifest."""

    def __init__(self, manifest: Path) -> None:
        rows = json.loads(manifest.read_text())["functions"]
        self.files: dict[str, str] = {row["name"]: row["file"] for row in rows}
        groups: dict[tuple[int, bool], list[str]] = {}
        for row in rows:
            groups.setdefault((int(row["layer"]), bool(row["closure"])), []).append(row["name"])
        self._groups = [sorted(names) for _, names in sorted(groups.items())]

    def mapping(self, seed: int) -> dict[str, str]:
        """One bijection of the generated function names, drawn from ``seed``."""
        rng = random.Random(seed)
        mapping: dict[str, str] = {}
        for names in self._groups:
            shuffled = names[:]
            rng.shuffle(shuffled)
            mapping.update(zip(names, shuffled, strict=True))
        return mapping

    def apply(self, message: profile_pb2.Profile, mapping: dict[str, str]) -> None:
        """Rename every generated function of ``message`` (and its closures) by ``mapping``, in place."""
        strings = message.string_table
        index = {text: i for i, text in enumerate(strings)}

        def intern(text: str) -> int:
            found = index.get(text)
            if found is None:
                found = index[text] = len(strings)
                strings.append(text)
            return found

        for function in message.function:
            name = strings[function.name]
            stem, suffix = name, ""
            if name not in mapping:
                head, _, last = name.rpartition(".")
                if not (last.startswith("func") and head in mapping):
                    continue  # runtime, main and the shared helpers keep their names
                stem, suffix = head, "." + last
            target = mapping[stem]
            old_file = strings[function.filename]
            root = old_file[: -len(self.files[stem])] if old_file.endswith(self.files[stem]) else ""
            function.name = function.system_name = intern(target + suffix)
            function.filename = intern(root + self.files[target])


def perturb(message: profile_pb2.Profile, rng: random.Random) -> None:
    """Drop about a tenth of the samples and count about a fifth of the rest twice, in place."""
    dropped = []
    for i, sample in enumerate(message.sample):
        if rng.random() < DROP:
            dropped.append(i)
        elif rng.random() < DOUBLE:
            sample.value[:] = [2 * v for v in sample.value]
    for i in reversed(dropped):
        del message.sample[i]


@dataclass(frozen=True)
class Payload:
    """A slot's profile: a real capture's ``.pb.gz`` bytes, or a derived copy, serialised but not yet compressed."""

    data: bytes
    real: bool


def derive(
    mode: str,
    real: Sequence[bytes],
    slot: Slot,
    relabeller: Relabeller | None,
    base_time_ns: int,
    seed: int = 1,
) -> Payload:
    """The profile of ``slot``: a real capture as it is, or a derived copy as the module docstring says.

    A derived copy is left uncompressed: the caller compresses it as Go's
    runtime does (``bench/gogzip``), so it weighs what a service would serve.
    """
    capture, variant = slot.stack_set % len(real), slot.stack_set // len(real)
    if slot.repeat == 0 and variant == 0:
        return Payload(real[capture], real=True)
    message = profile_pb2.Profile()
    message.ParseFromString(gzip.decompress(real[capture]))
    if variant and mode == "churn":
        assert relabeller is not None
        relabeller.apply(message, relabeller.mapping(seed * 1_000_003 + variant))
    perturb(message, random.Random(seed * 1_000_003 + slot.index))
    message.time_nanos = base_time_ns + slot.offset_ns
    return Payload(message.SerializeToString(), real=False)


def first_time(real: Sequence[bytes]) -> int:
    """When the first real capture was taken: derived copies are timed from it, at their slot's offset."""
    message = profile_pb2.Profile()
    message.ParseFromString(gzip.decompress(real[0]))
    return int(message.time_nanos)
