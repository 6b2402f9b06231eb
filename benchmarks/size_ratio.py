"""``RouteTable.match`` at two table sizes timed in alternating rounds: their ratio in one window.

    python benchmarks/size_ratio.py [small,large] [rounds]      # default 100,100000 and 100

The issue's ratio target compares the 100,000-rule median with the 100-rule median of one
pytest-benchmark run, where the two are timed a minute apart: on this shared VM either figure
can land in a slow moment, and the ratio read 1.65x-3.15x over seven runs of the same code.
Here every round times the small table on 1,000 fresh requests of its own stream, then the
large one on 1,000 of its own (the order alternating from round to round), so both sizes see
the same moments of the machine. Prints, over seeds 1-3, the median ns per lookup of each size,
the median of the per-round ratios, and the ratio of the per-seed minima (the quietest rounds).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

from bench_table import resources  # noqa: E402

from ingresslib._table import RouteTable  # noqa: E402


def timed(match: Any, requests: list[tuple[str, str]]) -> float:
    t0 = time.perf_counter()
    for host, path in requests:
        match(host, path)
    return (time.perf_counter() - t0) * 1e9 / len(requests)


def main(sizes: tuple[int, int], rounds: int) -> None:
    per_size: list[list[float]] = [[], []]
    ratios: list[float] = []
    minima: list[list[float]] = [[], []]
    for seed in (1, 2, 3):
        tables = [resources(n, seed) for n in sizes]
        matches = [RouteTable.build(res).match for res, _ in tables]
        seed_runs: list[list[float]] = [[], []]
        pos = [0, 0]
        for r in range(rounds + 2):
            times = [0.0, 0.0]
            for j in range(2):
                i = (r + j) % 2
                stream = tables[i][1]
                part = stream[pos[i] : pos[i] + 1000]
                pos[i] = (pos[i] + 1000) % (len(stream) - 1000)
                times[i] = timed(matches[i], [(h.decode("ascii"), p.decode("ascii")) for h, p in part])
            if r >= 2:  # two warm-up rounds
                for i in range(2):
                    seed_runs[i].append(times[i])
                ratios.append(times[1] / times[0])
        for i in range(2):
            per_size[i].extend(seed_runs[i])
            minima[i].append(min(seed_runs[i]))
    small, large = (statistics.median(x) for x in per_size)
    print(f"{sizes[0]} rules: {small:.1f} ns  {sizes[1]} rules: {large:.1f} ns  "
          f"(medians over {len(per_size[0])} rounds, seeds 1-3)")
    print(f"ratio: {statistics.median(ratios):.2f}x median of per-round ratios, "
          f"{statistics.median(minima[1]) / statistics.median(minima[0]):.2f}x of per-seed minima "
          f"({statistics.median(minima[0]):.1f} / {statistics.median(minima[1]):.1f} ns)")


if __name__ == "__main__":
    args = sys.argv[1:]
    a, b = (int(s) for s in (args[0] if args else "100,100000").split(","))
    main((a, b), int(args[1]) if len(args) > 1 else 100)
