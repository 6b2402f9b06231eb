"""The lookup loop of ``bench_match.py`` without pytest, for valgrind's instruction and cache counts.

    valgrind --tool=callgrind --cache-sim=yes --D1=32768,8,64 --LL=1048576,8,64 \\
        --I1=32768,8,64 --toggle-collect='*Matcher*lookup*' --callgrind-out-file=cg.out \\
        .venv/bin/python benchmarks/profile_match.py 100000
    callgrind_annotate cg.out | head -30      # PROGRAM TOTALS / (rounds * 1,000) per lookup

Rounds of 1,000 lookups of fresh strings (decoded from bytes, as a server passes them) from the
same ``gen_requests`` stream as the benchmark, seed 1; ``--toggle-collect`` counts only what runs
inside ``Matcher.lookup`` (argument parsing included, the Python loop and call not). The LL cache
is set to the 1 MiB second-level cache of the benchmark machine, so ``DLmr + DLmw`` are the
accesses that leave it. ``MATCH_MODULE`` names another build of the matcher to compare.
"""

from __future__ import annotations

import importlib
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from _routers import host_groups  # noqa: E402
from gen_rules import gen_requests, gen_table  # noqa: E402


def main(n: int, rounds: int = 60) -> None:
    module = importlib.import_module(os.environ.get("MATCH_MODULE", "ingresslib._match"))
    rules = gen_table(n, seed=1)
    stream = [(h.encode(), p.encode()) for h, p in gen_requests(rules, 20_000, seed=1001)]
    lookup = module.Matcher(host_groups(rules)).lookup
    pos = 0
    for _ in range(rounds):
        requests = [(h.decode("ascii"), p.decode("ascii")) for h, p in stream[pos : pos + 1000]]
        pos = (pos + 1000) % (len(stream) - 1000)
        for host, path in requests:
            lookup(host, path)


if __name__ == "__main__":
    main(int(sys.argv[1]), *(int(a) for a in sys.argv[2:3]))
