"""``Router.route`` on one repeated request without pytest, for valgrind's instruction counts.

    valgrind --tool=callgrind --collect-atstart=no --toggle-collect=starmap_next \\
        .venv/bin/python benchmarks/profile_route.py "canary by weight" route
    # "Collected" / 5,000 = instructions per request; WHAT = match for RouteTable.match alone

The case names are bench_router.py's; the table has 100 rules (BENCH_ROUTER_RULES), so the
counts are the CPU cost with warm caches. Only what runs inside ``itertools.starmap`` (the
calls) is counted. The ingresslib imported is this file's tree's (A/B: run each copy's).
"""

from __future__ import annotations

import collections
import itertools
import os
import sys
from collections.abc import Iterator

os.environ.setdefault("BENCH_ROUTER_RULES", "100")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# This tree's ingresslib, not the one the interpreter has installed (an editable install names
# another checkout): run from a copy of another commit, the counts are that commit's.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import bench_router as br  # noqa: E402

CALLS = 5000


def main(case: str, what: str) -> None:
    main_ann, canary_ann = br.CASES[case]
    r = br.router(tuple(sorted((main_ann or {}).items())),
                  tuple(sorted(canary_ann.items())) if canary_ann is not None else None)
    host, path, headers, ip = br.fresh(1, 0)[0]
    for _ in range(10):  # the route's first request builds its lazy state
        r.route("GET", host, path, headers, ip)
    # (One annotation for both branches' iterators: a Match or a Decision, never read.)
    calls: Iterator[object]
    if what == "match":
        calls = itertools.starmap(r.table.match, [(host, path)] * CALLS)
    else:
        calls = itertools.starmap(r.route, [("GET", host, path, headers, ip)] * CALLS)
    collections.deque(calls, maxlen=0)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "route")
