"""The churn benchmark's derived profiles are what bench/churn_sets.py says they are.

The benchmark builds days of CPU profiles from a few real captures; these
tests pin what a derived copy keeps (samples, values, depths, the function
set, pprof's own reading of it) and what it changes (which stacks), on the
real production-sized capture ``tests/data/big_cpu.pb.gz``, which came from
the same generated service with the generator's default seed and sizes.
"""

from __future__ import annotations

import gzip
import importlib.util
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from bench.churn_sets import Relabeller, derive, perturb, slots
from server.pprof import profile_pb2
from tests.support.oracle import pprof_top
from tests.support.tools import DATA, ROOT

BIGSERVICE = ROOT / "examples" / "bigservice"
CAPTURE = DATA / "big_cpu.pb.gz"


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bigservice")
    subprocess.run([sys.executable, str(BIGSERVICE / "generate.py"), "--quiet", "--out", str(out)], check=True)
    return out / "functions.json"


@pytest.fixture(scope="module")
def profstats() -> ModuleType:
    spec = importlib.util.spec_from_file_location("profstats", BIGSERVICE / "profstats.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse(payload: bytes) -> profile_pb2.Profile:
    message = profile_pb2.Profile()
    message.ParseFromString(gzip.decompress(payload) if payload[:2] == b"\x1f\x8b" else payload)
    return message


def stacks(message: profile_pb2.Profile) -> list[tuple[str, ...]]:
    """Every sample's stack, root first, by function name (inlined frames included)."""
    strings = message.string_table
    names = {f.id: strings[f.name] for f in message.function}
    lines = {loc.id: [names[line.function_id] for line in loc.line] for loc in message.location}
    out = []
    for sample in message.sample:
        frames = [name for location in sample.location_id for name in lines[location]]
        out.append(tuple(reversed(frames)))
    return out


def test_the_manifest_names_every_generated_function_as_go_does(manifest: Path) -> None:
    relabeller = Relabeller(manifest)
    captured = {name for stack in stacks(parse(CAPTURE.read_bytes())) for name in stack}
    generated = {name for name in captured if "/internal/" in name and "/internal/work." not in name}
    stems = {name.removesuffix(".func1") for name in generated}
    assert len(stems) > 2000
    assert stems <= set(relabeller.files), sorted(stems - set(relabeller.files))[:5]


def test_a_relabelled_copy_keeps_samples_depths_and_names_but_not_stacks(manifest: Path) -> None:
    relabeller = Relabeller(manifest)
    original = parse(CAPTURE.read_bytes())
    copy = parse(CAPTURE.read_bytes())
    mapping = relabeller.mapping(7)
    relabeller.apply(copy, mapping)

    before, after = stacks(original), stacks(copy)
    assert [len(s) for s in before] == [len(s) for s in after]
    assert [list(s.value) for s in original.sample] == [list(s.value) for s in copy.sample]
    # Runtime and main frames stay; generated ones move within their kind, so a stack's shape is kept.
    assert all(a[0] == b[0] for a, b in zip(before, after, strict=True))
    shared = set(before) & set(after)
    assert len(shared) < 0.05 * len(set(before)), f"{len(shared)} of {len(set(before))} stacks unchanged"
    # The renaming is one bijection: undoing it gives back every stack exactly.
    inverse = {target: name for name, target in mapping.items()}

    def undo(frame: str) -> str:
        stem, dot, suffix = frame.rpartition(".")
        if frame in inverse:
            return inverse[frame]
        if suffix.startswith("func") and stem in inverse:
            return inverse[stem] + dot + suffix
        return frame

    assert [tuple(undo(f) for f in s) for s in after] == before


@pytest.mark.go
def test_go_tool_pprof_reads_a_derived_copy_with_the_same_total(manifest: Path, tmp_path: Path) -> None:
    real = [CAPTURE.read_bytes()]
    relabeller = Relabeller(manifest)
    plan = slots(3, 2, 240 * 10**9)  # stack sets 0 (the capture) and 1 (relabelled), then set 0 again
    payloads = [derive("churn", real, slot, relabeller, base_time_ns=10**18) for slot in plan]
    assert [p.real for p in payloads] == [True, False, False]
    copies = [p.data for p in payloads]
    assert copies[0] == real[0]  # the first slot is the real capture, byte for byte
    files = []
    for slot, payload in zip(plan, payloads, strict=True):
        path = tmp_path / f"{slot.index}.pb{'.gz' if payload.real else ''}"  # copies are left uncompressed
        path.write_bytes(payload.data)
        files.append(path)
    original = pprof_top([files[0]], "cpu", "nanoseconds")
    relabelled = pprof_top([files[1]], "cpu", "nanoseconds")
    # Copies drop about a tenth of the samples and double about a fifth of the rest.
    assert 0.95 * original.total < relabelled.total < 1.2 * original.total
    assert parse(copies[1]).time_nanos == 10**18 + plan[1].offset_ns
    real_stacks = set(stacks(parse(real[0])))
    assert len(set(stacks(parse(copies[1]))) & real_stacks) < 0.05 * len(real_stacks)
    # Stack set 0 again (repeat 1): the capture's own stacks, values perturbed afresh.
    assert set(stacks(parse(copies[2]))) <= real_stacks
    assert copies[2] != real[0]


def test_perturbation_is_seeded_and_keeps_every_stack_it_keeps() -> None:
    a, b = parse(CAPTURE.read_bytes()), parse(CAPTURE.read_bytes())
    perturb(a, random.Random(3))
    perturb(b, random.Random(3))
    assert a.SerializeToString() == b.SerializeToString()
    original = parse(CAPTURE.read_bytes())
    assert 0.8 * len(original.sample) < len(a.sample) < 0.97 * len(original.sample)
    kept = Counter(tuple(s.location_id) for s in a.sample)
    assert set(kept) <= {tuple(s.location_id) for s in original.sample}
    factors = Counter(s.value[0] for s in a.sample)
    assert set(factors) <= {1, 2} and factors[2] > 0


def test_profstats_counts_what_consecutive_profiles_share(profstats: ModuleType) -> None:
    stats = profstats.stats(str(CAPTURE))
    named = stats.pop("_named_stacks")
    rows = profstats.sharing([named, named, {("runtime.main", "main.main")}])
    assert rows[0]["distinct_stacks"] == len(named) and rows[0]["new_nodes"] == rows[0]["prefix_nodes"]
    assert rows[1]["shared_stacks"] == len(named) and rows[1]["new_nodes"] == 0
    assert rows[1]["shared_nodes"] == rows[0]["prefix_nodes"]
    assert (rows[2]["distinct_stacks"], rows[2]["prefix_nodes"], rows[2]["shared_stacks"]) == (1, 2, 0)
