"""The public API: ``RouteTable.match`` lookups, and ``RouteTable.build`` time and memory.

The generated table becomes manifests the way an operator would write them: one Ingress per
host, one Service per Ingress, loaded through ``Resources.from_dicts``.
"""

from __future__ import annotations

import functools
import gc
import time
import tracemalloc
from typing import Any

import pytest
from bench_match import SEEDS, SIZES, STREAM, fresh_rounds
from gen_rules import Rule, gen_requests, gen_table

from ingresslib import Resources
from ingresslib._table import RouteTable


def manifests(rules: list[Rule]) -> list[dict[str, Any]]:
    by_host: dict[str, list[Rule]] = {}
    for r in rules:
        by_host.setdefault(r.host, []).append(r)
    out: list[dict[str, Any]] = []
    for i, (host, rs) in enumerate(by_host.items()):
        out.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"svc{i}"},
                    "spec": {"ports": [{"port": 80, "targetPort": 8080}]}})
        out.append({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": f"ing{i}", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"rules": [{"host": host, "http": {"paths": [
                {"path": r.path, "pathType": r.ptype,
                 "backend": {"service": {"name": f"svc{i}", "port": {"number": 80}}}}
                for r in rs]}}]},
        })
    return out


@functools.lru_cache(maxsize=2)
def resources(n: int, seed: int) -> tuple[Resources, list[tuple[bytes, bytes]]]:
    rules = gen_table(n, seed=seed)
    stream = gen_requests(rules, STREAM, seed=seed + 1000)
    return Resources.from_dicts(manifests(rules)), [(h.encode(), p.encode()) for h, p in stream]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n", SIZES)
def test_route_table_match(benchmark: Any, record: Any, n: int, seed: int) -> None:
    res, stream = resources(n, seed)
    table = RouteTable.build(res)
    match = table.match

    def run(requests: list[tuple[str, str]]) -> None:
        for host, path in requests:
            match(host, path)

    k = 1000
    benchmark.group = f"lookup {n} rules"
    benchmark.extra_info.update(router="RouteTable.match", rules=n, seed=seed, lookups_per_round=k,
                                matcher=table.matcher)
    benchmark.pedantic(run, setup=fresh_rounds(stream, k), rounds=60, warmup_rounds=2)
    if benchmark.stats is None:
        return  # --benchmark-disable: a smoke run, nothing timed
    record(router="RouteTable.match", rules=n, seed=seed,
           ns=benchmark.stats.stats.median * 1e9 / k, agreement=None)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n", SIZES)
def test_match_objects_alone(benchmark: Any, record: Any, n: int, seed: int) -> None:
    """A floor for any matcher that returns the table's prebuilt ``Match`` objects.

    The same stream and rounds as ``test_route_table_match``, but each request's answer is
    fetched by its position in a list: no host, no path, no index. What remains is the call
    from the loop and the touch of the returned object's reference count, on the same objects
    in the same order. How much this grows from 100 to 100,000 rules is the part of the growth
    that no lookup structure can remove, and a lower bound of it: here nothing else competes
    with the objects for the caches.
    """
    res, stream = resources(n, seed)
    table = RouteTable.build(res)
    answers = [table.match(h.decode(), p.decode()) for h, p in stream]
    positions = list(range(len(stream)))
    get = answers.__getitem__
    k = 1000
    pos = 0

    def setup() -> tuple[tuple[list[int]], dict[str, Any]]:
        nonlocal pos
        part = positions[pos : pos + k]
        pos = (pos + k) % (len(stream) - k)
        return (part,), {}

    def run(part: list[int]) -> None:
        for i in part:
            get(i)

    benchmark.group = f"lookup {n} rules"
    benchmark.extra_info.update(router="Match objects alone", rules=n, seed=seed,
                                lookups_per_round=k)
    benchmark.pedantic(run, setup=setup, rounds=60, warmup_rounds=2)
    if benchmark.stats is None:
        return  # --benchmark-disable: a smoke run, nothing timed
    record(router="Match objects alone", rules=n, seed=seed,
           ns=benchmark.stats.stats.median * 1e9 / k, agreement=None)


@pytest.mark.parametrize("n", [10_000])
def test_route_table_build(benchmark: Any, record: Any, n: int) -> None:
    res, _ = resources(n, SEEDS[0])
    benchmark.group = "RouteTable.build"
    table = benchmark.pedantic(RouteTable.build, args=(res,), rounds=5, warmup_rounds=1)
    if benchmark.stats is None:
        return  # --benchmark-disable: a smoke run, nothing timed
    # Memory held by the built table: tracemalloc sees every Python allocation, and the
    # compiled matcher allocates its C arrays with PyMem_Malloc, so they are counted too.
    del table
    gc.collect()
    tracemalloc.start()
    t0 = time.perf_counter()
    table = RouteTable.build(res)
    build_s = time.perf_counter() - t0
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    benchmark.extra_info.update(rules=n, traced_current_bytes=current, traced_peak_bytes=peak,
                                matcher=table.matcher)
    record(what=f"RouteTable.build {n:,} rules",
           median_ms=round(benchmark.stats.stats.median * 1e3, 1),
           traced_build_ms=round(build_s * 1e3, 1),
           retained_MiB=round(current / 2**20, 2), peak_MiB=round(peak / 2**20, 2),
           matcher=table.matcher)
