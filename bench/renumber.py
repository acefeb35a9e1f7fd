"""What renumbering the stack tree costs: the collection that renumbers against the same collection without it.

    .venv/bin/python bench/renumber.py                                  # builds /tmp/sy-churn360 first if absent
    .venv/bin/python bench/renumber.py --store /tmp/sy-churn360/churn.db

The store is a day in which every profile brings new stacks: ``bench/churn.py --mode churn --captures 12
--distinct 360 --days 1 --no-postgres --workdir /tmp/sy-churn360 --keep`` makes it (run for you when the
default store is missing; a few minutes once its captures are cached).

The store is copied twice. On each copy, retention expires the first half of the day (raw profiles, their
hourly rollups and the day's rollup, so the collection frees their nodes) and collects: on one copy with the
rule that renumbers made to hold (the id limit lowered to just past the highest id, which the gaps then
exceed a quarter of), on the other as today's limit leaves it (no renumbering). Both copies are then asked
for the remaining half day's top table by a fresh process's store: the answers must be equal. Printed: each
collection's wall and CPU time, their ratio, the nodes, key segments and rollups rewritten, and the first
query after each (the tree loaded from the rewritten segments).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select

from server.query import service
from server.query.request import ProfileQuery
from server.query.selector import parse_selector
from server.settings import Settings
from server.store import stacks
from server.store.idspace import id_use
from server.store.models import ProfileRow
from server.store.repository import Store
from server.store.rollups import HOUR_S, NS
from server.upkeep.retention import apply_retention

DEFAULT_STORE = Path("/tmp/sy-churn360/churn.db")


def _span(store: Store) -> tuple[int, int]:
    with store.engine.connect() as conn:
        first, last = conn.execute(select(func.min(ProfileRow.time_ns), func.max(ProfileRow.time_ns))).one()
    return int(first), int(last)


def collect(path: Path, renumbering: bool) -> dict[str, float]:
    """Expire the first half of the store's day and collect; with ``renumbering``, under a limit that makes the
    collection renumber. The limit is the rule's input only: no id is handed out while it is lowered."""
    url = f"sqlite:///{path}"
    store = Store.from_url(url)
    first, last = _span(store)
    before = id_use(store.engine)[0]
    # Cut-offs fall on partition edges (1 h here): "13h" before an hour past the last profile is its day's half.
    now = last - last % (HOUR_S * NS) + 2 * HOUR_S * NS
    settings = Settings(
        database_url=url, retention_raw="13h", retention_hourly="13h", retention_daily="1h", partition_interval="1h"
    )
    saved = stacks.NODE_LIMIT
    stacks.NODE_LIMIT = before.highest + 1 if renumbering else saved
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        deleted = apply_retention(store, settings, now_ns=now)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        stacks.NODE_LIMIT = saved
    after = id_use(store.engine)[0]
    store.close()
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "raw_deleted": deleted["raw"],
        "nodes_before": before.highest,
        "nodes_stored_after": after.stored,
        "highest_after": after.highest,
        "renumbered": deleted.get("renumbered_nodes", 0),
        "first_ns": first,
        "last_ns": last,
    }


def answer(path: Path, start_ns: int, end_ns: int) -> tuple[float, tuple[object, ...]]:
    """The remaining half day's top table from a fresh store (a new server process's caches), and its time."""
    url = f"sqlite:///{path}"
    store = Store.from_url(url)
    settings = Settings(database_url=url)
    query = ProfileQuery("cpu", parse_selector("{}"), start_ns, end_ns, "cpu")
    began = time.perf_counter()
    table = service.top(store.pinned(), settings, query)
    took = time.perf_counter() - began
    store.close()
    return took, (table.total, tuple((row.name, row.flat, row.cum) for row in table.rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, default=DEFAULT_STORE, help="a SQLite store from bench/churn.py --keep")
    args = parser.parse_args()
    if not args.store.exists():
        if args.store != DEFAULT_STORE:
            parser.error(f"--store {args.store}: no such file (bench/churn.py --keep makes one)")
        workdir = str(DEFAULT_STORE.parent)
        churn = [sys.executable, str(Path(__file__).with_name("churn.py")), "--mode", "churn", "--captures", "12"]
        churn += ["--distinct", "360", "--days", "1", "--no-postgres", "--workdir", workdir, "--keep"]
        subprocess.run(churn, check=True)
    with tempfile.TemporaryDirectory(prefix="sy-renumber-") as work:
        plain, renumbered = Path(work) / "plain.db", Path(work) / "renumbered.db"
        shutil.copyfile(args.store, plain)
        shutil.copyfile(args.store, renumbered)
        results = {"without renumbering": collect(plain, False), "renumbering": collect(renumbered, True)}
        last = results["renumbering"]["last_ns"]
        start = int(last - last % (HOUR_S * NS) - 10 * HOUR_S * NS)
        queries = {
            name: answer(path, start, int(last) + 1) for name, path in (("without", plain), ("with", renumbered))
        }
    if queries["without"][1] != queries["with"][1]:
        print("FAIL: the renumbered store answers differently", file=sys.stderr)
        sys.exit(1)
    print(f"renumbering benchmark: {args.store} ({args.store.stat().st_size / 1e6:.0f} MB)")
    print(f"{'collection':<22}{'wall s':>9}{'cpu s':>9}{'nodes before':>14}{'stored after':>14}{'highest after':>15}")
    for name, r in results.items():
        print(
            f"{name:<22}{r['wall_s']:>9.2f}{r['cpu_s']:>9.2f}{r['nodes_before']:>14,.0f}"
            f"{r['nodes_stored_after']:>14,.0f}{r['highest_after']:>15,.0f}"
        )
    plain_r, renum_r = results["without renumbering"], results["renumbering"]
    print(
        f"renumbering / plain collection: wall {renum_r['wall_s'] / plain_r['wall_s']:.2f}x, "
        f"cpu {renum_r['cpu_s'] / plain_r['cpu_s']:.2f}x; per live node renumbered "
        f"{(renum_r['cpu_s'] - plain_r['cpu_s']) / max(renum_r['renumbered'], 1) * 1e6:.2f} us of CPU"
    )
    print(
        f"first query after, the last 10 h (a fresh store loads the tree): without {queries['without'][0]:.2f} s, "
        f"renumbered {queries['with'][0]:.2f} s; answers equal: yes"
    )


if __name__ == "__main__":
    main()
