"""Frames of locations without lines, named as ``go tool pprof`` names them at function granularity."""

from __future__ import annotations

import gzip
from pathlib import Path

from server.pprof.columns import parse_columns
from server.pprof.frames import expand, unsymbolized_name
from tests.support.foreign import unsymbolized_message
from tests.support.oracle import pprof_top


def test_names_follow_pprof() -> None:
    assert unsymbolized_name("/usr/lib/x86_64-linux-gnu/libc.so.6") == "[libc.so.6]"
    assert unsymbolized_name("[vdso]") == "[[vdso]]"
    assert unsymbolized_name("") == "<unknown>"


def test_expanded_frames_equal_pprof_top(tmp_path: Path) -> None:
    message = unsymbolized_message()
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
