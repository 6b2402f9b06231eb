"""``Matcher.lookup`` (the tree walk) against ``Matcher.lookup_hash`` (hash_lookup.patch),
timed alternately in one process on the same fresh chunks, as ``../ab_matcher.py`` does.

    PYTHONPATH=/tmp/hash python benchmarks/experiments/ab_hash_lookup.py 100,10000,100000

(/tmp/hash: a ``git archive`` of main with hash_lookup.patch applied and built; see README.md.)
Both methods share one matcher, so each evicts the other's lines: a caveat the README states.
"""

from __future__ import annotations

import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _routers import host_groups  # noqa: E402
from ab_matcher import alternate  # noqa: E402
from bench_match import table  # noqa: E402

from ingresslib._match import Matcher  # noqa: E402


def main(sizes: list[int], rounds: int) -> None:
    for n in sizes:
        runs: tuple[list[float], list[float], list[float]] = ([], [], [])
        for seed in (1, 2, 3):
            rules, stream = table(n, seed)
            m = Matcher(host_groups(rules))
            alternate(m.lookup, m.lookup_hash, stream, rounds, runs)
        a_all, b_all, d_all = runs
        print(f"{n:>7} rules: tree {statistics.median(a_all):6.1f}  hash {statistics.median(b_all):6.1f}"
              f"  hash-tree {statistics.median(d_all):+6.1f} ns", flush=True)


if __name__ == "__main__":
    main([int(s) for s in sys.argv[1].split(",")], int(sys.argv[2]) if len(sys.argv) > 2 else 100)
