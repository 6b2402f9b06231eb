"""Builds of the compiled matcher timed alternately in one process, on the same fresh
request chunks: the fairest A/B on a noisy machine.

    python benchmarks/ab_matcher.py OTHER_MATCH_SO[,OTHER_MATCH_SO...] 100,10000,100000 [rounds]

OTHER_MATCH_SO is another build's ``_match*.so`` (e.g. a ``git archive`` of an older commit
built in /tmp); B is the in-tree build. Each round makes 1,000 fresh requests and times every
build on them, in an order rotated from round to round (with one other build: alternating).
Prints, per size, the median ns per lookup of each build and the median of the per-round
differences (B - A), over seeds 1-3. Several other builds (comma-separated) are each compared
with B on the same rounds: the way to rank variants in one noisy window.
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


def rotate(lookups: list[Any], stream: list[tuple[bytes, bytes]], rounds: int,
           into: list[list[float]]) -> None:
    """Time every lookup on the same fresh chunks, each round in an order rotated by one;
    append each round's ns per lookup of lookup i to ``into[i]`` (after 2 warm-up rounds)."""
    pos = 0
    k = len(lookups)
    for r in range(rounds + 2):
        requests = [(h.decode("ascii"), p.decode("ascii")) for h, p in stream[pos : pos + 1000]]
        pos = (pos + 1000) % (len(stream) - 1000)
        times = [0.0] * k
        for j in range(k):
            i = (r + j) % k
            times[i] = timed(lookups[i], requests)
        if r >= 2:
            for i in range(k):
                into[i].append(times[i])


def alternate(a: Any, b: Any, stream: list[tuple[bytes, bytes]], rounds: int,
              into: tuple[list[float], list[float], list[float]]) -> None:
    """``rotate`` for two lookups: append each round's ns per lookup of a, of b, and b - a."""
    runs: list[list[float]] = [[], []]
    rotate([a, b], stream, rounds, runs)
    into[0].extend(runs[0])
    into[1].extend(runs[1])
    into[2].extend(tb - ta for ta, tb in zip(*runs))


def main(others: list[str], sizes: list[int], rounds: int) -> None:
    """B is the in-tree build, A the other one (or A1, A2, ... for several, each compared with
    B on the same rounds)."""
    mods = [_match] + [load(path) for path in others]
    for n in sizes:
        runs: list[list[float]] = [[] for _ in mods]
        for seed in (1, 2, 3):
            rules, stream = table(n, seed)
            groups = host_groups(rules)
            rotate([m.Matcher(groups).lookup for m in mods], stream, rounds, runs)
        line = f"{n:>7} rules:"
        for i in range(1, len(mods)):
            name = "A" if len(mods) == 2 else f"A{i}"
            diff = statistics.median([b - a for a, b in zip(runs[i], runs[0])])
            line += f" {name} {statistics.median(runs[i]):6.1f}"
            if i == 1:
                line += f"  B {statistics.median(runs[0]):6.1f}"
            line += f"  B-{name} {diff:+6.1f} ns"
        print(line, flush=True)


if __name__ == "__main__":
    main(sys.argv[1].split(","), [int(s) for s in sys.argv[2].split(",")],
         int(sys.argv[3]) if len(sys.argv) > 3 else 100)
