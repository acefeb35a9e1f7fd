"""Function-level queries of this code against an earlier revision's, on one store, in alternating processes.

    .venv/bin/python bench/versions.py --base a0c389a                 # the commit before line data was kept
    .venv/bin/python bench/versions.py --base a0c389a --pairs 9 --repeat 9 --profiles 120

``bench/lines.py`` compares two stores under this code; what it cannot see is
a change of the query code itself. Here one SQLite store (varied copies of
``tests/data/big_cpu.pb.gz``, ingested by this code) is read by two code trees:
this one and ``--base``, exported with ``git archive`` (the C decoder copied
over when its source is the same). Each pair runs a process of each tree in
turn, so load from other processes falls on both alike; a process times the
first function ``top`` (cold caches) and the medians of ``--repeat`` warm
``top`` and ``flame`` queries, in CPU time (``time.process_time``: other
processes' load does not count) and wall time. Printed: the medians over the
pairs and the median of the per-pair ratios. The older code must be able to
read the store's schema (extra columns and tables are ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

START_NS = 1_764_000_000_000_000_000
WIRE = "server/pprof/_wire.c"


def child(url: str, repeat: int) -> None:
    """In the process of one code tree: time the queries and print them as JSON."""
    from server.query import service
    from server.query.request import ProfileQuery
    from server.settings import Settings
    from server.store.repository import Store

    query = ProfileQuery.parse("cpu", '{service="big"}', str(START_NS // 10**9 - 1), str(START_NS // 10**9 + 10**6))
    settings = Settings(database_url=url, retention_raw="36500d")
    store = Store.from_url(url)

    def clocks(run: object) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        run()  # type: ignore[operator]
        return time.perf_counter() - wall, time.process_time() - cpu

    out: dict[str, tuple[float, float]] = {"cold top": clocks(lambda: service.top(store, settings, query))}
    for name, run in (
        ("top", lambda: service.top(store, settings, query)),
        ("flame", lambda: service.flame(store, settings, query, 2048)),
    ):
        run()
        run()
        runs = [clocks(run) for _ in range(repeat)]
        out[name] = (statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs))
    print(json.dumps(out))


def export(revision: str, into: Path) -> None:
    """``revision``'s tree in ``into``, with this tree's built C decoder when its source is unchanged."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    if (into / WIRE).read_bytes() != (ROOT / WIRE).read_bytes():
        raise SystemExit(f"{WIRE} differs at {revision}: build that tree's decoder first")
    for built in (ROOT / "server/pprof").glob("_wire*.so"):
        shutil.copy(built, into / "server/pprof" / built.name)


def build_store(path: Path, profiles: int) -> str:
    from bench.common import DATA, varied_scrapes
    from server.ingest.profile import ingest
    from server.migrate import upgrade
    from server.settings import Settings
    from server.store.repository import Store

    url = f"sqlite:///{path}"
    upgrade(url)
    settings = Settings(database_url=url, retention_raw="36500d")
    store = Store.from_url(url)
    for index, data in enumerate(varied_scrapes(DATA / "big_cpu.pb.gz", profiles)):
        ingest(store, settings, data, {"service": "big"}, kind="cpu", time_ns=START_NS + index * 10_000_000_000)
    store.close()
    return url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", help="the earlier revision (a commit, branch or tag)")
    parser.add_argument("--profiles", type=int, default=60)
    parser.add_argument("--pairs", type=int, default=9)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--child", nargs=2, metavar=("URL", "REPEAT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return 0
    if not args.base:
        parser.error("--base REVISION is required")
    workdir = Path(tempfile.mkdtemp(prefix="stackyard-versions-"))
    base_tree = workdir / "base"
    base_tree.mkdir()
    export(args.base, base_tree)
    url = build_store(workdir / "store.db", args.profiles)
    print(
        f"{args.profiles} CPU profiles; {args.pairs} pairs of processes, {args.repeat} warm runs each; "
        f"load {os.getloadavg()[0]:.1f}"
    )
    results: dict[str, list[dict[str, list[float]]]] = {"base": [], "this": []}
    for _ in range(args.pairs):
        for label, tree in (("base", base_tree), ("this", ROOT)):
            env = {**os.environ, "PYTHONPATH": str(tree)}
            command = [sys.executable, str(Path(__file__).resolve()), "--child", url, str(args.repeat)]
            done = subprocess.run(command, env=env, cwd=tree, check=True, capture_output=True, text=True)
            results[label].append(json.loads(done.stdout.splitlines()[-1]))
    for name in ("cold top", "top", "flame"):
        parts = []
        for index, clock in ((1, "CPU"), (0, "wall")):
            base = [r[name][index] for r in results["base"]]
            this = [r[name][index] for r in results["this"]]
            pairs = statistics.median(t / b for t, b in zip(this, base, strict=True))
            parts.append(
                f"{clock} {statistics.median(this) * 1e3:.1f} ms vs {statistics.median(base) * 1e3:.1f} ms "
                f"({statistics.median(this) / statistics.median(base):.2f}x, per pair {pairs:.2f}x)"
            )
        print(f"function {name}: " + "; ".join(parts))
    shutil.rmtree(workdir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
