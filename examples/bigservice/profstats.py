#!/usr/bin/env python3
"""Print size and shape statistics of pprof profiles (.pb.gz or .pb).

Python 3.11 standard library only: the profile.proto wire format is decoded
by hand (only the fields needed for the statistics).

    python3 examples/bigservice/profstats.py tests/data/big_cpu.pb.gz [...]
    python3 examples/bigservice/profstats.py --json tests/data/*.pb.gz

Depth is counted in frames, i.e. the number of Line entries over all of a
sample's locations (inlined frames count), as `go tool pprof -traces`
prints them.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7


def _fields(buf: bytes):
    """Yield (field_number, wire_type, value) for one message."""
    i, n = 0, len(buf)
    while i < n:
        key, i = _varint(buf, i)
        fn, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(buf, i)
        elif wt == 2:
            ln, i = _varint(buf, i)
            v = buf[i:i + ln]
            i += ln
        elif wt == 1:
            v = int.from_bytes(buf[i:i + 8], "little")
            i += 8
        elif wt == 5:
            v = int.from_bytes(buf[i:i + 4], "little")
            i += 4
        else:
            raise ValueError(f"unsupported wire type {wt}")
        yield fn, wt, v


def _uints(wt: int, v) -> list[int]:
    """A repeated uint64 field element: packed (wt 2) or not (wt 0)."""
    if wt == 0:
        return [v]
    out, i = [], 0
    while i < len(v):
        x, i = _varint(v, i)
        out.append(x)
    return out


def _signed(x: int) -> int:
    return x - (1 << 64) if x >= 1 << 63 else x


def _percentiles(values: list[int], ps: tuple[int, ...]) -> list[int]:
    if not values:
        return [0 for _ in ps]
    v = sorted(values)
    return [v[min(len(v) - 1, len(v) * p // 100)] for p in ps]


def stats(path: str) -> dict:
    raw = open(path, "rb").read()
    data = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw

    samples = []          # (location ids, values, label keys)
    locations = {}        # id -> number of lines
    loc_funcs = {}        # id -> [function ids] (leaf first)
    functions = {}        # id -> name string index
    strings = []
    n_mappings = 0
    sample_types = []
    duration = 0
    for fn, wt, v in _fields(data):
        if fn == 1:
            st = dict((f, x) for f, _, x in _fields(v))
            sample_types.append((st.get(1, 0), st.get(2, 0)))
        elif fn == 2:
            locs, vals, labels = [], [], []
            for f, w, x in _fields(v):
                if f == 1:
                    locs.extend(_uints(w, x))
                elif f == 2:
                    vals.extend(_signed(y) for y in _uints(w, x))
                elif f == 3:
                    lab = dict((lf, lx) for lf, _, lx in _fields(x))
                    labels.append(lab.get(1, 0))
            samples.append((locs, vals, labels))
        elif fn == 3:
            n_mappings += 1
        elif fn == 4:
            lid, lines = 0, []
            for f, w, x in _fields(v):
                if f == 1:
                    lid = x
                elif f == 4:
                    line = dict((lf, lx) for lf, _, lx in _fields(x))
                    lines.append(line.get(1, 0))
            locations[lid] = max(1, len(lines))
            loc_funcs[lid] = lines
        elif fn == 5:
            fid, name = 0, 0
            for f, w, x in _fields(v):
                if f == 1:
                    fid = x
                elif f == 2:
                    name = x
            functions[fid] = name
        elif fn == 6:
            strings.append(v.decode("utf-8", "replace"))
        elif fn == 10:
            duration = v

    depths = [sum(locations.get(l, 1) for l in locs) for locs, _, _ in samples]
    stacks = set()
    used_funcs = set()
    for locs, _, _ in samples:
        frames = []
        for l in locs:
            frames.extend(loc_funcs.get(l, []))
        used_funcs.update(frames)
        stacks.add(tuple(frames))
    label_keys = sorted({strings[k] for _, _, ls in samples for k in ls if k < len(strings)})
    multi_line = sum(1 for n in locations.values() if n > 1)
    types = [f"{strings[t]}/{strings[u]}" for t, u in sample_types if t < len(strings) and u < len(strings)]
    total0 = sum(v[0] for _, v, _ in samples if v)
    return {
        "file": path,
        "compressed_bytes": len(raw),
        "uncompressed_bytes": len(data),
        "sample_types": types,
        "duration_s": round(duration / 1e9, 2),
        "samples": len(samples),
        "sample_value0_total": total0,
        "distinct_function_stacks": len(stacks),
        "functions": len(functions),
        "functions_in_samples": len(used_funcs),
        "locations": len(locations),
        "locations_with_inlined_lines": multi_line,
        "mappings": n_mappings,
        "strings": len(strings),
        "label_keys": label_keys,
        "max_depth": max(depths, default=0),
        "min_depth": min(depths, default=0),
        "avg_depth": round(sum(depths) / len(depths), 1) if depths else 0.0,
        "depth_p5_p50_p95": _percentiles(depths, (5, 50, 95)),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="pprof profile statistics (stdlib only)")
    ap.add_argument("files", nargs="+")
    ap.add_argument("--json", action="store_true", help="print one JSON object per file")
    args = ap.parse_args(argv)
    for path in args.files:
        s = stats(path)
        if args.json:
            print(json.dumps(s))
            continue
        print(f"{os.path.basename(path)}:")
        for k, v in s.items():
            if k != "file":
                print(f"  {k:30} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
