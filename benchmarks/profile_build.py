"""``RouteTable.build`` time without pytest, and how much of it the matcher's constructor takes.

    .venv/bin/python benchmarks/profile_build.py [RULES] [ROUNDS]     # default 10000 rules, 9 rounds
    .venv/bin/python -m cProfile -s tottime benchmarks/profile_build.py 10000 1 | head -30

The table is bench_table.py's (seed 1, one Ingress per host, loaded through
``Resources.from_dicts``). Each round times a whole build, then the matcher's constructor alone
on the same host groups with the garbage collector paused, as the build runs it, so the
difference is the Python in ``_table.py``. Prints the median and the spread of each, after one
warm-up build, as the benchmark does.
"""

from __future__ import annotations

import gc
import os
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

from bench_table import manifests  # noqa: E402
from gen_rules import gen_table  # noqa: E402

from ingresslib import Resources  # noqa: E402
from ingresslib._matcher import MATCHER, Matcher  # noqa: E402
from ingresslib._table import RouteTable  # noqa: E402


def _ms(seconds: list[float]) -> str:
    ms = sorted(s * 1e3 for s in seconds)
    return f"median {statistics.median(ms):6.1f} ms  (min {ms[0]:.1f}, max {ms[-1]:.1f})"


def main(n: int = 10_000, rounds: int = 9) -> None:
    res = Resources.from_dicts(manifests(gen_table(n, seed=1)))
    captured: list[tuple[Any, Any]] = []

    def capturing_matcher(groups: Any, default: Any) -> Matcher:
        captured.append((groups, default))
        return Matcher(groups, default)

    # Warm-up, and the host groups the matcher is given (the same for every build).
    RouteTable.build(res, matcher_class=capturing_matcher)
    groups, default = captured[0]
    builds: list[float] = []
    matchers: list[float] = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        RouteTable.build(res)
        gc.disable()
        t1 = time.perf_counter()
        Matcher(groups, default)
        t2 = time.perf_counter()
        gc.enable()
        builds.append(t1 - t0)
        matchers.append(t2 - t1)
    share = statistics.median(matchers) / statistics.median(builds)
    print(f"RouteTable.build, {n} rules, {rounds} rounds, {MATCHER} matcher")
    print(f"  whole build          {_ms(builds)}")
    print(f"  matcher constructor  {_ms(matchers)}  ({share:.0%} of the build)")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
