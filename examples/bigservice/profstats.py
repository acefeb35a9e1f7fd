#!/usr/bin/env python3
"""Print size and shape statistics of pprof profiles (.pb.gz or .pb).

Python 3.11 standard library only: the profile.proto wire format is decoded
by hand (only the fields needed for the statistics).

    python3 examples/bigservice/profstats.py tests/data/big_cpu.pb.gz [...]
    python3 examples/bigservice/profstats.py --json tests/data/*.pb.gz
    python3 examples/bigservice/profstats.py --sharing capture-*.pb.gz

With more than one file (in capture order), each file after the first also
reports what it shares with the one before: distinct stacks in both, and
nodes of the stack prefix tree (a node is a stack prefix, root first, of
function names) in both. "New nodes" are the prefix nodes no earlier file
had: what a store that keeps every distinct stack prefix once must add for
that file. ``--sharing`` prints only that table.

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
    # Root first, by function name: ids differ between profiles, names do not.
    named = {
        tuple(strings[functions.get(f, 0)] if functions.get(f, 0) < len(strings) else "?" for f in reversed(st))
        for st in stacks
    }
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
        "_named_stacks": named,
    }


class PrefixTree:
    """Stack prefixes of every file seen, each with a number: root-first stacks become sets of node ids."""

    def __init__(self) -> None:
        self.ids: dict[tuple[int, str], int] = {}

    def nodes(self, stacks: set[tuple[str, ...]]) -> tuple[set[int], set[int]]:
        """(every prefix node of these stacks, their leaf nodes), numbering new prefixes."""
        nodes: set[int] = set()
        leaves: set[int] = set()
        ids = self.ids
        for stack in stacks:
            node = 0
            for name in stack:
                key = (node, name)
                found = ids.get(key)
                if found is None:
                    found = ids[key] = len(ids) + 1
                node = found
                nodes.add(node)
            leaves.add(node)
        return nodes, leaves


def sharing(named_stacks: list[set[tuple[str, ...]]]) -> list[dict]:
    """Per file (in order): distinct stacks and prefix nodes, and what it shares with the file before."""
    tree = PrefixTree()
    out: list[dict] = []
    previous: tuple[set[int], set[int]] | None = None
    for stacks in named_stacks:
        known = len(tree.ids)
        nodes, leaves = tree.nodes(stacks)
        row = {
            "distinct_stacks": len(leaves),
            "prefix_nodes": len(nodes),
            "new_nodes": len(tree.ids) - known,
        }
        if previous is not None:
            row["shared_stacks"] = len(leaves & previous[1])
            row["shared_nodes"] = len(nodes & previous[0])
        out.append(row)
        previous = nodes, leaves
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="pprof profile statistics (stdlib only)")
    ap.add_argument("files", nargs="+")
    ap.add_argument("--json", action="store_true", help="print one JSON object per file")
    ap.add_argument("--sharing", action="store_true", help="print only what consecutive files share")
    args = ap.parse_args(argv)
    all_stats = [stats(path) for path in args.files]
    shared = sharing([s.pop("_named_stacks") for s in all_stats])
    for s, share in zip(all_stats, shared):
        if len(all_stats) > 1:
            s["sharing_with_previous"] = share
        if args.json:
            print(json.dumps(s))
        elif not args.sharing:
            print(f"{os.path.basename(path_of(s))}:")
            for k, v in s.items():
                if k not in ("file", "sharing_with_previous"):
                    print(f"  {k:30} {v}")
    if len(all_stats) > 1 and not args.json:
        print_sharing(all_stats, shared)
    return 0


def path_of(s: dict) -> str:
    return s["file"]


def print_sharing(all_stats: list[dict], shared: list[dict]) -> None:
    print(f"{'file':<28} {'KB':>6} {'samples':>7} {'stacks':>7} {'shared':>13} {'nodes':>7} {'shared':>14} {'new':>7}")
    for s, share in zip(all_stats, shared):
        stacks, nodes = share["distinct_stacks"], share["prefix_nodes"]
        if "shared_stacks" in share:
            st = f"{share['shared_stacks']} ({share['shared_stacks'] / max(1, stacks):.1%})"
            nd = f"{share['shared_nodes']} ({share['shared_nodes'] / max(1, nodes):.1%})"
        else:
            st = nd = "-"
        print(
            f"{os.path.basename(s['file'])[:28]:<28} {s['compressed_bytes'] / 1024:>6.0f} {s['samples']:>7} "
            f"{stacks:>7} {st:>13} {nodes:>7} {nd:>14} {share['new_nodes']:>7}"
        )
    later = shared[1:]
    if later:
        mean = lambda key: sum(r[key] for r in later) / len(later)  # noqa: E731
        print(
            f"mean over the {len(later)} files after the first: {mean('distinct_stacks'):.0f} stacks, "
            f"{mean('shared_stacks'):.0f} shared with the previous file "
            f"({mean('shared_stacks') / max(1, mean('distinct_stacks')):.1%}); {mean('prefix_nodes'):.0f} prefix nodes, "
            f"{mean('shared_nodes'):.0f} shared ({mean('shared_nodes') / max(1, mean('prefix_nodes')):.1%}), "
            f"{mean('new_nodes'):.0f} new"
        )


if __name__ == "__main__":
    sys.exit(main())
