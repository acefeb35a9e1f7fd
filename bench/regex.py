"""Selector regex matching: RE2 (what selectors use) against Python's backtracking ``re``, in one process.

    .venv/bin/python bench/regex.py            # the reported attack, and a pattern users really write
    .venv/bin/python bench/regex.py --max-re-length 24   # let the backtracking baseline run longer

The attack is ``(.|.)*x`` fully matched against ``a`` * n: Python's ``re``
tries 2^n ways to split the text before saying no, RE2 reads the text once.
The baseline is ``re.fullmatch`` on the same pattern and text, timed in this
run (only up to ``--max-re-length`` characters: every further character
doubles its time). The ratio printed is re's time over RE2's; RE2 is then
timed alone at lengths ``re`` cannot reach. An ordinary pattern
(``prod|staging|dev-.*``) shows what a selector that is not an attack costs
with each engine.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable

from server.query.regex import compile_regex

ATTACK = "(.|.)*x"
ORDINARY = "prod|staging|dev-.*"


def best_of(function: Callable[[], object], runs: int) -> float:
    """The fastest of ``runs`` calls, in seconds (the least disturbed by other work on the machine)."""
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-re-length", type=int, default=22, help="longest text given to the re baseline")
    args = parser.parse_args()

    attack_re = re.compile(ATTACK)
    attack_re2 = compile_regex(ATTACK)
    print(f"attack {ATTACK!r}, fullmatch against 'a' * n")
    print(f"{'n':>6} {'re (s)':>12} {'RE2 (s)':>12} {'re / RE2':>10}")
    for n in range(16, args.max_re_length + 1, 2):
        text = "a" * n
        slow = best_of(lambda text=text: attack_re.fullmatch(text), 1 if n > 20 else 3)  # type: ignore[misc]
        fast = best_of(lambda text=text: attack_re2.fullmatch(text), 50)  # type: ignore[misc]
        print(f"{n:>6} {slow:>12.6f} {fast:>12.8f} {slow / fast:>10.0f}")
    for n in (25, 1_000, 100_000):
        text = "a" * n
        fast = best_of(lambda text=text: attack_re2.fullmatch(text), 20)  # type: ignore[misc]
        print(f"{n:>6} {'(not run)':>12} {fast:>12.8f}")

    ordinary_re = re.compile(ORDINARY)
    ordinary_re2 = compile_regex(ORDINARY)
    values = [f"dev-{i}" if i % 3 else "prod" for i in range(10_000)]
    slow = best_of(lambda: [ordinary_re.fullmatch(v) for v in values], 5)
    fast = best_of(lambda: [ordinary_re2.fullmatch(v) for v in values], 5)
    print(f"\nordinary {ORDINARY!r} over 10,000 label values: re {slow * 1e3:.2f} ms, RE2 {fast * 1e3:.2f} ms,")
    print(f"RE2 / re = {fast / slow:.2f} (the price of the wrapper per call; a query matches each distinct value once)")


if __name__ == "__main__":
    main()
