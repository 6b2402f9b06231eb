#!/usr/bin/env python3
"""The per-request paths outside the proxy core, two source trees A/B (session 25).

``benchmarks/load/core_ab.py`` does this for the sans-IO core. Here the same for what a
request that uses no new feature passes through elsewhere:

* ``route`` - ``Router.route`` on bench_router.py's "round-robin" case (a table of
  BENCH_ROUTER_RULES rules, 100 by default; one repeated request, warm caches);
* ``match`` - ``RouteTable.match`` alone on the same table and request;
* ``asgi`` - one ``IngressASGI`` call, bench_asgi.py's "adapter GET" (a fresh scope per call);
* ``observe`` - ``Metrics.observe`` after ``set_hosts``, bench_metrics.py's records in turn;
* ``build`` - ``RouteTable.build`` of a bench_table.py table (``--rules``, 2,000 by default).

Two modes:

    valgrind --tool=callgrind --collect-atstart=no --toggle-collect=starmap_next \\
        python benchmarks/hotpath_ab.py count TREE WHAT [--n N]
    # "Collected" / N = instructions per call (deterministic); only the calls are counted

    python benchmarks/hotpath_ab.py ab OLD NEW WHAT [--blocks 20] [--n N]
    # one worker process per tree, alternating ABBA blocks; the median per-pair ratio new/old

Each tree imports its own ``ingresslib`` (the extensions built, or copied, in place) and the
benchmark modules of this file's tree (they did not change in session 25).
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent

#: Calls per block (and counted by ``count``) by default.
DEFAULT_N = {"route": 5000, "match": 5000, "asgi": 2000, "observe": 5000, "build": 3}


def workload(tree: Path, what: str, rules: int) -> tuple[Callable[..., Any], list[tuple[Any, ...]]]:
    """``(function, argument tuples)``: one call of ``what`` per tuple, in ``tree``'s code.
    Warmed up (lazy state built, every series made)."""
    sys.path.insert(0, str(tree))
    sys.path.insert(1, str(HERE))
    import ingresslib

    assert Path(ingresslib.__file__).resolve().parent.parent == tree.resolve(), ingresslib.__file__
    if what in ("route", "match"):
        os.environ.setdefault("BENCH_ROUTER_RULES", "100")
        import bench_router as br

        main_ann, _ = br.CASES["round-robin"]
        r = br.router(tuple(sorted((main_ann or {}).items())), None)
        host, path, headers, ip = br.fresh(1, 0)[0]
        for _ in range(10):
            r.route("GET", host, path, headers, ip)
        if what == "match":
            return r.table.match, [(host, path)]
        return r.route, [("GET", host, path, headers, ip)]
    if what == "asgi":
        import bench_asgi as ba

        calls = ba.caller(ba.adapter(), b"")
        calls(ba.fresh_scopes("GET"))  # warm: route options, the Router's lazy state

        def one(scope: dict[str, Any]) -> None:
            calls([scope])

        return one, [(ba.scope_for("GET"),) for _ in range(200)]
    if what == "observe":
        import bench_metrics as bm

        from ingresslib._metrics import Metrics

        m = Metrics()
        m.set_hosts(bm.HOSTS)
        stream = bm.records()
        for rec in stream:
            m.observe(rec)
        return m.observe, [(rec,) for rec in stream]
    if what == "build":
        import bench_table as bt

        from ingresslib._table import RouteTable

        res, _ = bt.resources(rules, 1)
        RouteTable.build(res)
        return RouteTable.build, [(res,)]
    raise SystemExit(f"unknown workload {what!r}")


def _args(args: list[tuple[Any, ...]], n: int) -> list[tuple[Any, ...]]:
    return list(itertools.islice(itertools.cycle(args), n))


def count(tree: Path, what: str, n: int, rules: int) -> None:
    fn, args = workload(tree, what, rules)
    todo = _args(args, n)
    collections.deque(itertools.starmap(fn, todo), maxlen=0)


def worker(tree: Path, what: str, n: int, rules: int) -> None:
    fn, args = workload(tree, what, rules)
    todo = _args(args, n)
    while sys.stdin.readline():  # one line per block asked
        t0 = time.perf_counter_ns()
        collections.deque(itertools.starmap(fn, todo), maxlen=0)
        print((time.perf_counter_ns() - t0) / n, flush=True)


def ab(old: Path, new: Path, what: str, blocks: int, n: int, rules: int) -> dict[str, Any]:
    procs = [subprocess.Popen([sys.executable, __file__, "worker", str(t), what, "--n", str(n),
                               "--rules", str(rules)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for t in (old, new)]

    def block(i: int) -> float:
        p = procs[i]
        assert p.stdin is not None and p.stdout is not None
        p.stdin.write("go\n")
        p.stdin.flush()
        return float(p.stdout.readline())

    times: list[list[float]] = [[], []]
    for b in range(blocks):
        order = (0, 1) if b % 2 == 0 else (1, 0)  # ABBA
        for i in order:
            times[i].append(block(i))
    for p in procs:
        assert p.stdin is not None
        p.stdin.close()
        p.wait()
    ratios = sorted(new_t / old_t for old_t, new_t in zip(*times))
    q = statistics.quantiles(ratios, n=4)
    res = {"what": what, "blocks": blocks, "calls_per_block": n, "rules": rules,
           "old": str(old), "new": str(new),
           "old_ns_median": statistics.median(times[0]), "new_ns_median": statistics.median(times[1]),
           "ratio_median": statistics.median(ratios), "ratio_quartiles": [q[0], q[2]]}
    print(f"{what}: old {res['old_ns_median']:.0f} ns/call, new {res['new_ns_median']:.0f} ns/call;"
          f" new/old per pair: median {res['ratio_median']:.3f} (quartiles {q[0]:.3f}-{q[2]:.3f})")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("mode", choices=["count", "ab", "worker"])
    ap.add_argument("trees", nargs="+", type=Path, help="TREE (count) or OLD NEW (ab)")
    ap.add_argument("what", choices=sorted(DEFAULT_N))
    ap.add_argument("--n", type=int, default=None, help="calls per block / counted")
    ap.add_argument("--blocks", type=int, default=20)
    ap.add_argument("--rules", type=int, default=2000, help="build: the table's rules")
    ap.add_argument("--json", type=Path, default=None, help="ab: append the result here")
    a = ap.parse_args()
    n = a.n or DEFAULT_N[a.what]
    if a.mode == "count":
        count(a.trees[0], a.what, n, a.rules)
    elif a.mode == "worker":
        worker(a.trees[0], a.what, n, a.rules)
    else:
        if len(a.trees) != 2:
            ap.error("ab takes OLD NEW")
        res = ab(a.trees[0], a.trees[1], a.what, a.blocks, n, a.rules)
        if a.json is not None:
            old = json.loads(a.json.read_text()) if a.json.exists() else []
            a.json.write_text(json.dumps(old + [res], indent=1) + "\n")


if __name__ == "__main__":
    main()
