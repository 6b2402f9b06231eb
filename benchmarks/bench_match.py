"""Lookup cost per router and table size, side by side in one run (matchit's criterion habit).

Every round looks up a chunk of requests from a ``gen_requests`` stream, with fresh ``str``
objects made in the (untimed) setup the way a server decodes them from bytes, so string hashes
are not cached and the stream's Zipf popularity gives realistic cache behaviour. The figure is
the round's time / chunk size: the Python call and loop are included, as in production.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import pytest
from _routers import BUILDERS, agreement, build_python
from gen_rules import Rule, gen_requests, gen_table

SIZES = [int(s) for s in os.environ.get("BENCH_SIZES", "10,100,1000,10000,100000").split(",")]
SEEDS = [int(s) for s in os.environ.get("BENCH_SEEDS", "1,2,3").split(",")]
ROUTERS = os.environ.get("BENCH_ROUTERS", "cython,python,scan,matchit,falcon,sanic,dict.get").split(",")
STREAM = 20_000


@functools.lru_cache(maxsize=4)
def table(n: int, seed: int) -> tuple[list[Rule], list[tuple[bytes, bytes]]]:
    rules = gen_table(n, seed=seed)
    stream = gen_requests(rules, STREAM, seed=seed + 1000)
    return rules, [(h.encode(), p.encode()) for h, p in stream]


def chunk_size(router: str, n: int) -> int:
    if router == "scan":
        return max(5, 20_000 // n)
    return 1000


def fresh_rounds(stream: list[tuple[bytes, bytes]], k: int) -> Any:
    pos = 0

    def setup() -> tuple[tuple[list[tuple[str, str]]], dict[str, Any]]:
        nonlocal pos
        part = stream[pos : pos + k]
        pos = (pos + k) % (len(stream) - k)
        return ([(h.decode("ascii"), p.decode("ascii")) for h, p in part],), {}

    return setup


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("router", ROUTERS)
def test_lookup(benchmark: Any, record: Any, router: str, n: int, seed: int) -> None:
    if router == "scan" and n > 10_000:
        pytest.skip("the naive scan is skipped above 10,000 rules")
    if router in ("falcon", "sanic") and n >= 100_000 and seed != SEEDS[0]:
        pytest.skip("building it takes ~85 s at 100,000 rules: first seed only")
    if router == "cython":
        pytest.importorskip("ingresslib._match")
    rules, stream = table(n, seed)
    lookup = BUILDERS[router](rules)
    sample = [(h.decode(), p.decode()) for h, p in stream[:2000]]
    agree = None if router == "dict.get" else agreement(lookup, build_python(rules), sample)
    if router in ("cython", "python", "scan"):
        assert agree == 1.0, f"{router} disagrees with the pure twin"
    k = chunk_size(router, n)

    def run(requests: list[tuple[str, str]]) -> None:
        for host, path in requests:
            lookup(host, path)

    benchmark.group = f"lookup {n} rules"
    benchmark.extra_info.update(router=router, rules=n, seed=seed, lookups_per_round=k, agreement=agree)
    rounds = 15 if router == "scan" else 60
    benchmark.pedantic(run, setup=fresh_rounds(stream, k), rounds=rounds, warmup_rounds=2)
    if benchmark.stats is None:
        return  # --benchmark-disable: a smoke run, nothing timed
    ns = benchmark.stats.stats.median * 1e9 / k
    record(router=router, rules=n, seed=seed, ns=ns, agreement=agree)
