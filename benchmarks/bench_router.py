"""``Router.route`` cost next to ``RouteTable.match`` alone, at 10,000 rules, in one run.

Every case routes the same stream of requests (rules of one 10,000-rule table drawn with
bench_match.py's Zipf(1.1) popularity, fresh
``str`` objects per round, h11-style lower-case byte headers, half of them with
``x-canary: always``), so the difference between a case and ``RouteTable.match`` is what routing
adds: endpoints, balancer and canary. Figures are steady state: one untimed pass over the stream
first builds what the Router builds lazily (a Decision per route and endpoint, hash rings).

    .venv/bin/python -m pytest benchmarks/bench_router.py --benchmark-only -q

Targets (issue 3): round-robin adds <= 300 ns to ``RouteTable.match``; canary and hashing
<= 600 ns.
"""

from __future__ import annotations

import functools
import os
import random
import sys
from collections.abc import Callable
from typing import Any

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from _router_helpers import P, big_resources  # noqa: E402

from ingresslib._router import Router  # noqa: E402

RULES = int(os.environ.get("BENCH_ROUTER_RULES", "10000"))
CHUNK = 1000
STREAM = 20_000

#: name -> (main Ingress annotations, canary Ingress annotations or None)
CASES: dict[str, tuple[dict[str, str] | None, dict[str, str] | None]] = {
    "RouteTable.match": (None, None),
    "route round-robin": (None, None),
    "route canary by header": (None, {P + "canary-by-header": "X-Canary"}),
    "route canary by weight": (None, {P + "canary-weight": "20"}),
    "route consistent hash": ({P + "upstream-hash-by": "$remote_addr"}, None),
    "route hash by header": ({P + "upstream-hash-by": "$http_x_user"}, None),
    "route ewma": ({P + "load-balance": "ewma"}, None),
    "route cookie affinity": ({P + "affinity": "cookie"}, None),
}
_MEDIANS: dict[str, float] = {}


@functools.lru_cache(maxsize=8)
def router(main: tuple[tuple[str, str], ...], canary: tuple[tuple[str, str], ...] | None
           ) -> Router:
    res = big_resources(RULES, 3, dict(main) or None,
                        dict(canary) if canary is not None else None)
    return Router(res, seed=1)


#: Rule popularity, as in bench_match.py's ``gen_requests``: Zipf(1.1) over the rules in a
#: random order (BENCH_ROUTER_ZIPF=0 gives the uniform, cache-cold worst case).
ZIPF_S = float(os.environ.get("BENCH_ROUTER_ZIPF", "1.1"))


@functools.lru_cache(maxsize=1)
def stream() -> list[tuple[bytes, bytes, list[tuple[bytes, bytes]], bytes]]:
    rnd = random.Random(7)
    ranked = list(range(RULES))
    rnd.shuffle(ranked)
    weights = [1.0 / (k ** ZIPF_S) for k in range(1, RULES + 1)]
    picks = rnd.choices(ranked, weights=weights, k=STREAM)
    out = []
    for i in picks:
        headers = [(b"host", f"h{i % 100}.example.test".encode()), (b"user-agent", b"curl/8.5"),
                   (b"accept", b"*/*"), (b"x-user", f"user{rnd.randrange(5000)}".encode())]
        if rnd.random() < 0.5:
            headers.append((b"x-canary", b"always"))
        out.append((f"h{i % 100}.example.test".encode(), f"/p{i}/x/y".encode(), headers,
                    f"198.51.{rnd.randrange(256)}.{rnd.randrange(256)}".encode()))
    return out


def fresh_rounds(k: int) -> Callable[[], tuple[tuple[Any, ...], dict[str, Any]]]:
    data = stream()
    pos = 0

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        nonlocal pos
        part = data[pos:pos + k]
        pos = (pos + k) % (len(data) - k)
        return ([(h.decode(), p.decode(), hd, ip.decode()) for h, p, hd, ip in part],), {}

    return setup


@pytest.mark.parametrize("case", list(CASES))
def test_route(benchmark: Any, record: Any, case: str) -> None:
    main, can = CASES[case]
    r = router(tuple(sorted((main or {}).items())),
               tuple(sorted(can.items())) if can is not None else None)
    if case == "RouteTable.match":
        match = r.table.match

        def run(reqs: list[tuple[str, str, Any, str]]) -> None:
            for host, path, _headers, _ip in reqs:
                match(host, path)
    else:
        route = r.route

        def run(reqs: list[tuple[str, str, Any, str]]) -> None:
            for host, path, headers, ip in reqs:
                route("GET", host, path, headers, ip)

    # Every request of the stream routes somewhere (sanity, untimed).
    sample = fresh_rounds(50)()[0][0]
    for host, path, headers, ip in sample:
        assert r.table.match(host, path) is not None
        if case != "RouteTable.match":
            d = r.route("GET", host, path, headers, ip)
            assert d is not None and d.endpoint is not None
            if "canary by header" in case:
                assert d.canary == any(n == b"x-canary" for n, _ in headers)

    # Steady state: a route's Decision per endpoint and a hash ring are built on first use, so
    # one untimed pass over the whole stream warms every route the rounds will touch.
    run(fresh_rounds(STREAM - 1)()[0][0])

    benchmark.group = f"router {RULES} rules"
    benchmark.extra_info.update(case=case, rules=RULES, requests_per_round=CHUNK)
    benchmark.pedantic(run, setup=fresh_rounds(CHUNK), rounds=60, warmup_rounds=3)
    ns = benchmark.stats.stats.median * 1e9 / CHUNK
    _MEDIANS[case] = ns
    base = _MEDIANS.get("RouteTable.match")
    added = None if base is None or case == "RouteTable.match" else ns - base
    benchmark.extra_info.update(ns_per_request=round(ns), ns_added=added and round(added))
    # Not "ns": report.py prints such rows one per line, after its lookup table.
    record(what=f"router {case} @ {RULES:,} rules", ns_per_request=round(ns),
           ns_added_to_match=None if added is None else round(added))
    print(f"\n{case}: {ns:,.0f} ns/request" + (f" (+{added:,.0f} ns over match)"
                                                if added is not None else ""))
