"""What the table's cache misses cost a lookup: each chunk looked up twice, back to back.

    python benchmarks/experiments/warm_pass.py [100,10000,100000]

The benchmark's rounds (1,000 requests of the same stream, seed 1, strings made fresh by
decoding) through ``RouteTable.match``, each round timed twice in a row with fresh strings both
times. The first pass pays for the table lines this chunk needs that are not in cache; the
second finds most of them there (the chunk's lines, a few hundred KiB at most, stay in L2/L3).
The difference of the two medians is what the misses cost per lookup; as both passes run in
the same round, a slow moment of the shared machine hits both.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from bench_table import resources  # noqa: E402

from ingresslib._table import RouteTable  # noqa: E402


def timed(match: Any, requests: list[tuple[str, str]]) -> float:
    t0 = time.perf_counter()
    for host, path in requests:
        match(host, path)
    return (time.perf_counter() - t0) * 1e9 / len(requests)


def main(sizes: list[int], rounds: int = 60) -> None:
    for n in sizes:
        res, stream = resources(n, 1)
        match = RouteTable.build(res).match
        first: list[float] = []
        second: list[float] = []
        pos = 0
        for r in range(rounds + 2):
            part = stream[pos : pos + 1000]
            pos = (pos + 1000) % (len(stream) - 1000)
            a = timed(match, [(h.decode("ascii"), p.decode("ascii")) for h, p in part])
            b = timed(match, [(h.decode("ascii"), p.decode("ascii")) for h, p in part])
            if r >= 2:
                first.append(a)
                second.append(b)
        f, s = statistics.median(first), statistics.median(second)
        print(f"{n:>7} rules: first pass {f:.0f} ns, second pass {s:.0f} ns, misses {f - s:.0f} ns",
              flush=True)


if __name__ == "__main__":
    main([int(s) for s in (sys.argv[1] if len(sys.argv) > 1 else "100,10000,100000").split(",")])
