"""Profiles shaped like those of non-Go programs: C++, Rust and JavaScript.

They hold what Go's own profiles rarely do and what the server must keep:
locations with no lines in shared libraries, the vdso and anonymous memory
(pprof names them ``[libc.so.6]``, ``[[vdso]]``, ``<unknown>``), and several
functions of one name in different files (JavaScript's ``(anonymous)``,
a C++ name in two translation units), which pprof's function granularity
counts as one node. The shapes are written here; the numbers are fixed so
the committed files in ``tests/data/foreign/`` can be regenerated
byte for byte (``python -m tests.support.foreign``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from server.pprof import profile_pb2
from server.pprof.encode import encode
from server.pprof.model import Function, Line, Location, Mapping, Profile, Sample, ValueType

FOREIGN_DIR = Path(__file__).resolve().parents[1] / "data" / "foreign"
TIME_NANOS = 1_700_000_000 * 10**9


class _Builder:
    """Locations by name, so a stack reads as a list of frame names, leaf first."""

    def __init__(self) -> None:
        self.mappings: dict[str, Mapping] = {}
        self.functions: dict[tuple[str, str], Function] = {}
        self.locations: dict[str, Location] = {}
        self.next_address = 0x1000

    def mapping(self, filename: str, start: int) -> Mapping:
        return self.mappings.setdefault(filename, Mapping(filename, start, start + 0x100000))

    def symbol(self, key: str, name: str, filename: str, mapping: Mapping | None, line: int = 1) -> None:
        """A symbolized location ``key`` for function ``name`` of ``filename``."""
        function = self.functions.setdefault((name, filename), Function(name, name, filename))
        self.locations[key] = Location((Line(function, line),), self._address(mapping), mapping=mapping)

    def bare(self, key: str, mapping: Mapping | None) -> None:
        """A location with an address only (not symbolized)."""
        self.locations[key] = Location((), self._address(mapping), mapping=mapping)

    def _address(self, mapping: Mapping | None) -> int:
        self.next_address += 0x10
        return (mapping.memory_start if mapping else 0x7F0000000000) + self.next_address

    def stack(self, *keys: str) -> tuple[Location, ...]:
        return tuple(self.locations[key] for key in keys)


def cpp_cpu() -> Profile:
    """A C++ server: libc and libstdc++ frames unsymbolized, one name in two files, a stripped plugin."""
    b = _Builder()
    exe = b.mapping("/usr/local/bin/renderd", 0x400000)
    libc = b.mapping("/lib/x86_64-linux-gnu/libc.so.6", 0x7F1000000000)
    stdcxx = b.mapping("/usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30", 0x7F2000000000)
    plugin = b.mapping("/opt/renderd/plugins/libblur.so", 0x7F3000000000)
    b.symbol("main", "main", "src/main.cc", exe)
    b.symbol("serve", "Server::Serve", "src/server.cc", exe)
    b.symbol("render", "Renderer::Draw", "src/render.cc", exe)
    b.symbol("parse_a", "(anonymous namespace)::Parse", "src/scene.cc", exe)
    b.symbol("parse_b", "(anonymous namespace)::Parse", "src/mesh.cc", exe)
    b.bare("memcpy", libc)
    b.bare("malloc", libc)
    b.bare("new", stdcxx)
    b.bare("blur", plugin)
    b.bare("blur2", plugin)
    stacks = [
        (("memcpy", "render", "serve", "main"), 310),
        (("malloc", "new", "parse_a", "serve", "main"), 120),
        (("malloc", "parse_b", "parse_a", "serve", "main"), 75),
        (("parse_b", "render", "serve", "main"), 205),
        (("blur", "render", "serve", "main"), 40),
        (("blur2", "blur", "render", "serve", "main"), 22),
        (("render", "serve", "main"), 140),
    ]
    period = 10_000_000
    return Profile(
        sample_types=[ValueType("samples", "count"), ValueType("cpu", "nanoseconds")],
        samples=[Sample(b.stack(*keys), (count, count * period)) for keys, count in stacks],
        period_type=ValueType("cpu", "nanoseconds"),
        period=period,
        time_nanos=TIME_NANOS,
        duration_nanos=10 * 10**9,
    )


def rust_cpu() -> Profile:
    """A Rust program: a clock read that ends in the vdso, and frames in anonymous memory (no mapping file)."""
    b = _Builder()
    exe = b.mapping("/srv/ingestor/target/release/ingestor", 0x550000000000)
    vdso = b.mapping("[vdso]", 0x7FFF00000000)
    jit = b.mapping("", 0x7E0000000000)
    b.symbol("main", "ingestor::main", "src/main.rs", exe)
    b.symbol("poll", "tokio::runtime::park::CachedParkThread::block_on", "tokio/src/runtime/park.rs", exe)
    b.symbol("now", "std::time::Instant::now", "library/std/src/time.rs", exe)
    b.symbol("clock", "clock_gettime", "", exe)
    b.symbol("handle", "ingestor::handle", "src/handle.rs", exe)
    b.symbol("decode", "<T as serde::Deserialize>::deserialize", "src/wire.rs", exe)
    b.bare("vdso", vdso)
    b.bare("anon", jit)
    b.bare("nowhere", None)
    stacks = [
        (("vdso", "clock", "now", "poll", "main"), 61),
        (("clock", "now", "poll", "main"), 9),
        (("decode", "handle", "poll", "main"), 230),
        (("anon", "decode", "handle", "poll", "main"), 33),
        (("nowhere", "handle", "poll", "main"), 7),
        (("handle", "poll", "main"), 88),
    ]
    period = 1_000_000
    return Profile(
        sample_types=[ValueType("samples", "count"), ValueType("cpu", "nanoseconds")],
        samples=[Sample(b.stack(*keys), (count, count * period)) for keys, count in stacks],
        period_type=ValueType("cpu", "nanoseconds"),
        period=period,
        time_nanos=TIME_NANOS,
        duration_nanos=10 * 10**9,
    )


def js_cpu() -> Profile:
    """A Node.js program: ``(anonymous)`` in several files calling each other, and V8's unsymbolized frames."""
    b = _Builder()
    node = b.mapping("/usr/bin/node", 0x400000)
    b.symbol("root", "(root)", "", node)
    b.symbol("program", "(program)", "", node)
    b.symbol("anon_app", "(anonymous)", "file:///srv/app/index.js", node, 12)
    b.symbol("anon_router", "(anonymous)", "file:///srv/app/router.js", node, 40)
    b.symbol("anon_db", "(anonymous)", "file:///srv/app/db.js", node, 7)
    b.symbol("query", "runQuery", "file:///srv/app/db.js", node, 30)
    b.symbol("gc", "(garbage collector)", "", node)
    b.bare("v8", node)
    stacks = [
        (("program", "root"), 500),
        (("anon_db", "query", "anon_router", "anon_app", "root"), 180),
        (("anon_router", "anon_app", "root"), 95),
        (("anon_app", "anon_router", "anon_app", "root"), 60),
        (("v8", "anon_db", "anon_router", "anon_app", "root"), 45),
        (("gc", "root"), 30),
    ]
    period = 100_000
    return Profile(
        sample_types=[ValueType("samples", "count"), ValueType("cpu", "nanoseconds")],
        samples=[Sample(b.stack(*keys), (count, count * period)) for keys, count in stacks],
        period_type=ValueType("cpu", "nanoseconds"),
        period=period,
        time_nanos=TIME_NANOS,
        duration_nanos=10 * 10**9,
    )


def unsymbolized_message() -> profile_pb2.Profile:
    """The small case as a raw message: address-only locations in libc, the vdso, a mapping with no file
    and no mapping; same-name functions."""
    message = profile_pb2.Profile()
    strings = [""]

    def s(text: str) -> int:
        if text not in strings:
            strings.append(text)
        return strings.index(text)

    message.sample_type.add(type=s("samples"), unit=s("count"))
    message.sample_type.add(type=s("cpu"), unit=s("nanoseconds"))
    for mapping_id, filename, start in ((1, "/opt/app", 0x40000), (2, "/usr/lib/libc.so.6", 0x1000)):
        message.mapping.add(id=mapping_id, filename=s(filename), memory_start=start, memory_limit=start + 0x8000)
    message.mapping.add(id=3, filename=s("[vdso]"), memory_start=0x10000, memory_limit=0x11000)
    message.mapping.add(id=4, memory_start=0x20000, memory_limit=0x30000)
    for function_id, name, filename in ((1, "(anonymous)", "a.js"), (2, "(anonymous)", "b.js"), (3, "main", "m.c")):
        message.function.add(id=function_id, name=s(name), filename=s(filename))
    for location_id, function_id in ((1, 1), (2, 2), (3, 3)):
        location = message.location.add(id=location_id, mapping_id=1, address=0x40000 + 16 * location_id)
        location.line.add(function_id=function_id, line=location_id)
    bare = ((4, 2, 0x1100), (5, 2, 0x1200), (6, 3, 0x10010), (7, 4, 0x20010), (8, 0, 0x9))
    for location_id, mapping_id, address in bare:
        message.location.add(id=location_id, mapping_id=mapping_id, address=address)
    stacks = ([4, 3], [5, 3], [6, 1, 3], [7, 3], [8, 3], [1, 2, 1, 3], [2, 3], [4, 6, 4, 3])
    for weight, stack in enumerate(stacks):
        message.sample.add(location_id=stack, value=[weight + 1, (weight + 1) * 1000])
    message.string_table.extend(strings)
    return message


FOREIGN: dict[str, Callable[[], Profile]] = {
    "cpp_cpu.pb.gz": cpp_cpu,
    "rust_cpu.pb.gz": rust_cpu,
    "js_cpu.pb.gz": js_cpu,
}


def write_all(directory: Path = FOREIGN_DIR) -> list[Path]:
    """Encode every foreign profile into ``directory``; the bytes depend on nothing but this module."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, build in FOREIGN.items():
        path = directory / name
        path.write_bytes(encode(build()))
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_all(Path(sys.argv[1]) if len(sys.argv) > 1 else FOREIGN_DIR):
        print(written_path)
