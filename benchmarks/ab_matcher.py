"""Two builds of the compiled matcher timed alternately in one process, on the same fresh
request chunks: the fairest A/B on a noisy machine.

    python benchmarks/ab_matcher.py OTHER_MATCH_SO 100,10000,100000 [rounds]

OTHER_MATCH_SO is another build's ``_match*.so`` (e.g. a ``git archive`` of an older commit
built in /tmp). Each round makes 1,000 fresh requests and times both builds on them, in
alternating order. Prints, per size, the median ns per lookup of each build and the median of
the per-round differences (B - A), over seeds 1-3.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

from _routers import host_groups  # noqa: E402
from bench_match import table  # noqa: E402

from ingresslib import _match  # noqa: E402


def load(path: str) -> Any:
    spec = importlib.util.spec_from_file_location("ingresslib._match", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def timed(lookup: Any, requests: list[tuple[str, str]]) -> float:
    t0 = time.perf_counter()
    for host, path in requests:
        lookup(host, path)
    return (time.perf_counter() - t0) * 1e9 / len(requests)


def alternate(a: Any, b: Any, stream: list[tuple[bytes, bytes]], rounds: int,
              into: tuple[list[float], list[float], list[float]]) -> None:
    """Time lookups ``a`` and ``b`` on the same fresh chunks, in alternating order; append
    each round's ns per lookup of a, of b, and b - a to ``into`` (after 2 warm-up rounds)."""
    pos = 0
    for r in range(rounds + 2):
        requests = [(h.decode("ascii"), p.decode("ascii")) for h, p in stream[pos : pos + 1000]]
        pos = (pos + 1000) % (len(stream) - 1000)
        if r % 2:
            tb, ta = timed(b, requests), timed(a, requests)
        else:
            ta, tb = timed(a, requests), timed(b, requests)
        if r >= 2:
            into[0].append(ta)
            into[1].append(tb)
            into[2].append(tb - ta)


def main(other: str, sizes: list[int], rounds: int) -> None:
    a_mod, b_mod = load(other), _match
    for n in sizes:
        runs: tuple[list[float], list[float], list[float]] = ([], [], [])
        for seed in (1, 2, 3):
            rules, stream = table(n, seed)
            groups = host_groups(rules)
            alternate(a_mod.Matcher(groups).lookup, b_mod.Matcher(groups).lookup, stream, rounds, runs)
        a_all, b_all, d_all = runs
        print(f"{n:>7} rules: A {statistics.median(a_all):6.1f}  B {statistics.median(b_all):6.1f}"
              f"  B-A {statistics.median(d_all):+6.1f} ns", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], [int(s) for s in sys.argv[2].split(",")],
         int(sys.argv[3]) if len(sys.argv) > 3 else 100)
