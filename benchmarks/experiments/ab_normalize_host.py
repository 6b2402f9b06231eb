"""The pure twin's lookups with ``normalize_host`` as it was (the translate table for all text)
and as it is (``str.lower()`` for ASCII text), alternating on the same fresh chunks in one
process, on the benchmark streams (seeds 1-3):

    python benchmarks/experiments/ab_normalize_host.py 100,10000,100000
"""

from __future__ import annotations

import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _routers import host_groups  # noqa: E402
from ab_matcher import timed  # noqa: E402
from bench_match import table  # noqa: E402

from ingresslib import _match_py  # noqa: E402
from ingresslib._normalize import _ASCII_LOWER, normalize_host  # noqa: E402


def old_normalize_host(host: str) -> str | None:
    host = host.translate(_ASCII_LOWER)
    if host.startswith("["):
        end = host.find("]")
        host = host if end < 0 else host[: end + 1]
    else:
        colon = host.find(":")
        if colon >= 0:
            host = host[:colon]
        if host.endswith("."):
            host = host[:-1]
    return host or None


def main(sizes: list[int], rounds: int = 30) -> None:
    for n in sizes:
        old_ns, new_ns, diff = [], [], []
        for seed in (1, 2, 3):
            rules, stream = table(n, seed)
            lookup = _match_py.Matcher(host_groups(rules)).lookup
            pos = 0
            for r in range(rounds + 2):
                requests = [(h.decode("ascii"), p.decode("ascii")) for h, p in stream[pos : pos + 1000]]
                pos = (pos + 1000) % (len(stream) - 1000)
                times = {}
                for which in ((old_normalize_host, normalize_host) if r % 2 else
                              (normalize_host, old_normalize_host)):
                    _match_py.normalize_host = which  # the module global _group calls
                    times[which] = timed(lookup, requests)
                _match_py.normalize_host = normalize_host
                if r >= 2:
                    old_ns.append(times[old_normalize_host])
                    new_ns.append(times[normalize_host])
                    diff.append(times[normalize_host] - times[old_normalize_host])
        print(f"{n:>7} rules: old {statistics.median(old_ns):6.0f}  new {statistics.median(new_ns):6.0f}"
              f"  new-old {statistics.median(diff):+6.0f} ns", flush=True)


if __name__ == "__main__":
    main([int(s) for s in sys.argv[1].split(",")])
