"""Frames of locations without lines, named as ``go tool pprof`` names them at function granularity."""

from __future__ import annotations

import gzip
from pathlib import Path

from server.pprof import profile_pb2
from server.pprof.columns import parse_columns
from server.pprof.frames import expand, unsymbolized_name
from tests.support.oracle import pprof_top


def _unsymbolized_profile() -> profile_pb2.Profile:
    """Address-only locations in libc, the vdso, a mapping with no file and no mapping; same-name functions."""
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


def test_names_follow_pprof() -> None:
    assert unsymbolized_name("/usr/lib/x86_64-linux-gnu/libc.so.6") == "[libc.so.6]"
    assert unsymbolized_name("[vdso]") == "[[vdso]]"
    assert unsymbolized_name("") == "<unknown>"


def test_expanded_frames_equal_pprof_top(tmp_path: Path) -> None:
    message = _unsymbolized_profile()
    path = tmp_path / "unsymbolized.pb.gz"
    path.write_bytes(gzip.compress(message.SerializeToString()))
    columns = parse_columns(message.SerializeToString())
    frames = expand(columns)
    strings = columns.strings
    names = [strings[i] for i in columns.function_name.tolist()] + list(frames.extra_names)
    values = [list(sample.value) for sample in message.sample]
    for column, (sample_type, unit) in enumerate((("samples", "count"), ("cpu", "nanoseconds"))):
        flat: dict[str, int] = {}
        cum: dict[str, int] = {}
        for i, sample_values in enumerate(values):
            stack = [names[f] for f in frames.functions[frames.offsets[i] : frames.offsets[i + 1]].tolist()]
            flat[stack[0]] = flat.get(stack[0], 0) + sample_values[column]
            for name in set(stack):  # once per sample: recursion, and same-name functions, as pprof
                cum[name] = cum.get(name, 0) + sample_values[column]
        oracle = pprof_top([path], sample_type, unit, extra=("-symbolize=none",))
        assert oracle.total == sum(v[column] for v in values)
        assert oracle.rows == {name: (flat.get(name, 0), cum[name]) for name in cum}
        assert {"[libc.so.6]", "[[vdso]]", "<unknown>", "(anonymous)"} <= set(oracle.rows)
