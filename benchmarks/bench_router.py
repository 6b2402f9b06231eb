"""``Router.route`` cost next to ``RouteTable.match`` alone, at 10,000 rules, in one run.

    .venv/bin/python -m pytest benchmarks/bench_router.py --benchmark-only -q

Every case routes the same stream of requests: rules of one 10,000-rule table drawn with
bench_match.py's Zipf(1.1) popularity, fresh ``str`` objects per round, headers as the proxy
passes them (an ``h11.Headers`` object: user-agent, accept, x-user, and ``x-canary: always`` on
half of the requests). Figures are steady state: one pass over the stream first builds what the
Router builds lazily (a route's Decisions, both canary sides', and its hash rings with their
bucket tables, all on the route's first request); that pass is timed on its own as
``first pass`` (ns per request, lazy work included).

Three figures per case:

* ``ns/request`` - pytest-benchmark's median round over the stream, per request;
* ``added`` - what routing adds to ``RouteTable.match``, measured *paired*: each round times
  ``match`` and ``route`` over the same chunk back to back and the median of the differences is
  kept, so load changes on a shared machine cancel out. Before each round an untimed ``match``
  pass warms what both share (request strings, header bytes, the table's lookup path; see
  ``warm``), so the difference is routing's own work plus its own misses on per-route state.
  ``added hot`` is the same on one request repeated (warm caches: the CPU cost alone).
* ``first pass`` - per request, the first pass over the 20,000-request stream, which builds the
  lazy state (its cost amortised over that stream).

Targets (issue 3): round-robin adds <= 300 ns to ``RouteTable.match``; canary and hashing
<= 600 ns.
"""

from __future__ import annotations

import functools
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import h11
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from _router_helpers import P, big_resources  # noqa: E402

from ingresslib._router import Router  # noqa: E402

RULES = int(os.environ.get("BENCH_ROUTER_RULES", "10000"))
CHUNK = 1000
STREAM = 20_000
#: Rule popularity as in bench_match.py (BENCH_ROUTER_ZIPF=0: uniform, the cache-cold worst case).
ZIPF_S = float(os.environ.get("BENCH_ROUTER_ZIPF", "1.1"))

#: name -> (main Ingress annotations, canary Ingress annotations or None)
CASES: dict[str, tuple[dict[str, str] | None, dict[str, str] | None]] = {
    "RouteTable.match": (None, None),
    "round-robin": (None, None),
    "canary by header": (None, {P + "canary-by-header": "X-Canary"}),
    "canary by weight": (None, {P + "canary-weight": "20"}),
    "consistent hash $remote_addr": ({P + "upstream-hash-by": "$remote_addr"}, None),
    "consistent hash $http_x_user": ({P + "upstream-hash-by": "$http_x_user"}, None),
    "ewma": ({P + "load-balance": "ewma"}, None),
    "cookie affinity": ({P + "affinity": "cookie"}, None),
}

Req = tuple[str, str, Any, str]


@functools.lru_cache(maxsize=8)
def router(main: tuple[tuple[str, str], ...], canary: tuple[tuple[str, str], ...] | None
           ) -> Router:
    res = big_resources(RULES, 3, dict(main) or None,
                        dict(canary) if canary is not None else None)
    return Router(res, seed=1)


@functools.lru_cache(maxsize=1)
def stream() -> list[tuple[bytes, bytes, Any, bytes]]:
    rnd = random.Random(7)
    ranked = list(range(RULES))
    rnd.shuffle(ranked)
    weights = [1.0 / (k ** ZIPF_S) for k in range(1, RULES + 1)]
    out = []
    for i in rnd.choices(ranked, weights=weights, k=STREAM):
        host = f"h{i % 100}.example.test"
        headers = [("Host", host), ("User-Agent", "curl/8.5"), ("Accept", "*/*"),
                   ("X-User", f"user{rnd.randrange(5000)}")]
        if rnd.random() < 0.5:
            headers.append(("X-Canary", "always"))
        hd = h11.Request(method="GET", target="/", headers=headers).headers
        out.append((host.encode(), f"/p{i}/x/y".encode(), hd,
                    f"198.51.{rnd.randrange(256)}.{rnd.randrange(256)}".encode()))
    return out


def fresh(k: int, pos: int) -> list[Req]:
    data = stream()
    return [(h.decode(), p.decode(), hd, ip.decode()) for h, p, hd, ip in data[pos:pos + k]]


def fresh_rounds(k: int) -> Callable[[], tuple[tuple[Any, ...], dict[str, Any]]]:
    pos = 0

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        nonlocal pos
        part = fresh(k, pos)
        pos = (pos + k) % (STREAM - k)
        return (part,), {}

    return setup


def runners(r: Router) -> tuple[Callable[[list[Req]], None], Callable[[list[Req]], None]]:
    match, route = r.table.match, r.route

    def run_match(reqs: list[Req]) -> None:
        for host, path, _headers, _ip in reqs:
            match(host, path)

    def run_route(reqs: list[Req]) -> None:
        for host, path, headers, ip in reqs:
            route("GET", host, path, headers, ip)

    return run_match, run_route


def warm(run_match: Callable[[list[Req]], None], chunk: list[Req]) -> None:
    """Bring in what ``match`` and ``route`` share, untimed: the request data (strings, header
    bytes: in the proxy, ``route`` runs right after h11 parsed the request, so they are in
    cache) and the table's own lookup path for these requests. What only routing touches
    (its per-route state) stays as cold as the stream leaves it.

    Without this, whichever of ``match``/``route`` runs first on a chunk pays the misses on the
    shared data (0.3-0.8 us per request on a loaded 2-core box), and the median of the paired
    differences jumps by that much depending on which order wins the median."""
    run_match(chunk)
    for _host, _path, headers, _ip in chunk:
        for raw, name, value in headers._full_items:
            len(raw), len(name), len(value)


def paired(run_match: Callable[[list[Req]], None], run_route: Callable[[list[Req]], None],
           chunks: list[list[Req]]) -> float:
    """Median over rounds of (route time - match time) per request, same chunk, back to back
    (each chunk's request data warmed first: see ``warm``)."""
    diffs = []
    for i, chunk in enumerate(chunks):
        warm(run_match, chunk)
        first, second = (run_match, run_route) if i % 2 == 0 else (run_route, run_match)
        t0 = time.perf_counter_ns()
        first(chunk)
        t1 = time.perf_counter_ns()
        second(chunk)
        t2 = time.perf_counter_ns()
        t_match, t_route = (t1 - t0, t2 - t1) if i % 2 == 0 else (t2 - t1, t1 - t0)
        diffs.append((t_route - t_match) / len(chunk))
    return statistics.median(diffs)


@pytest.mark.parametrize("case", list(CASES))
def test_route(benchmark: Any, record: Any, case: str) -> None:
    main, can = CASES[case]
    r = router(tuple(sorted((main or {}).items())),
               tuple(sorted(can.items())) if can is not None else None)
    run_match, run_route = runners(r)
    run = run_match if case == "RouteTable.match" else run_route

    # Sanity (untimed): every request routes to a ready endpoint, canary iff asked.
    for host, path, headers, ip in fresh(100, 0):
        d = r.route("GET", host, path, headers, ip)
        assert d is not None and d.endpoint is not None
        if case == "canary by header":
            assert d.canary == any(n == b"x-canary" for n, _ in headers)
    first = fresh(STREAM, 0)
    t0 = time.perf_counter_ns()
    run_route(first)  # builds the lazy state (Decisions, hash rings)
    first_pass = (time.perf_counter_ns() - t0) / len(first)

    added = added_hot = None
    if case != "RouteTable.match":
        added = paired(run_match, run_route, [fresh(CHUNK, (i * CHUNK) % (STREAM - CHUNK))
                                              for i in range(41)])
        one = fresh(1, 0)
        added_hot = paired(run_match, run_route, [one * CHUNK] * 41)

    benchmark.group = f"router {RULES} rules"
    benchmark.extra_info.update(case=case, rules=RULES, requests_per_round=CHUNK)
    benchmark.pedantic(run, setup=fresh_rounds(CHUNK), rounds=40, warmup_rounds=2)
    if benchmark.stats is None:
        return  # --benchmark-disable: a smoke run, nothing timed
    ns = benchmark.stats.stats.median * 1e9 / CHUNK
    benchmark.extra_info.update(ns_per_request=round(ns),
                                ns_added=None if added is None else round(added),
                                ns_added_hot=None if added_hot is None else round(added_hot),
                                ns_first_pass=round(first_pass))
    # Not "ns": report.py prints such rows one per line, after its lookup table.
    record(what=f"router[{RULES:,} rules] {case}", ns_per_request=round(ns),
           ns_added_to_match=None if added is None else round(added),
           ns_added_hot=None if added_hot is None else round(added_hot),
           ns_first_pass=round(first_pass))
