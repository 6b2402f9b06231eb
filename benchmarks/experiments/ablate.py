"""Where a lookup's time goes: the call, the host, and the rest (walk, path check, return).

    rm -rf /tmp/abl && mkdir /tmp/abl && git archive HEAD | tar -x -C /tmp/abl
    (cd /tmp/abl && patch -p1 < /work/main/benchmarks/experiments/ablation_methods.patch \\
        && /work/main/.venv/bin/python setup.py build_ext --inplace -q)
    python benchmarks/experiments/ablate.py /tmp/abl/ingresslib/_match*.so 100,10000,100000 [rounds]

``ablation_methods.patch`` gives ``Matcher`` two methods with ``lookup``'s signature:
``noop`` (argument parsing only) and ``host_only`` (the host's group, then a constant). One
matcher per size and seed; its three methods are timed on the same fresh chunks in an order
rotated from round to round (``ab_matcher.rotate``). ``noop`` and ``host_only`` read no tree
node, so the lines they leave in cache do not flatter ``lookup``; the difference between
``host_only`` and ``lookup`` is the walk, the canonical-path check and the return.
"""

from __future__ import annotations

import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from _routers import host_groups  # noqa: E402
from ab_matcher import load, rotate  # noqa: E402
from bench_match import table  # noqa: E402

METHODS = ("noop", "host_only", "lookup")


def main(so: str, sizes: list[int], rounds: int) -> None:
    module = load(so)
    for n in sizes:
        runs: list[list[float]] = [[] for _ in METHODS]
        for seed in (1, 2, 3):
            rules, stream = table(n, seed)
            matcher = module.Matcher(host_groups(rules))
            rotate([getattr(matcher, name) for name in METHODS], stream, rounds, runs)
        noop, host, full = (statistics.median(r) for r in runs)
        print(f"{n:>7} rules: noop {noop:6.1f}  host_only {host:6.1f} (+{host - noop:.1f})"
              f"  lookup {full:6.1f} (+{full - host:.1f}) ns", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], [int(s) for s in sys.argv[2].split(",")],
         int(sys.argv[3]) if len(sys.argv) > 3 else 200)
