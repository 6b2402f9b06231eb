"""What a reload costs, side by side in one run at 1,000 and 10,000 rules: ``RouteTable.build``,
``Router`` construction, ``config_digest`` (the ``config_hash`` metric that ``serve``
computes on every reload), and ``Router.update`` when only endpoints changed.

    .venv/bin/python -m pytest benchmarks/bench_reload.py --benchmark-only -q

The tables come from gen_rules.py and become manifests as in bench_table.py (one Ingress per
host, one Service per Ingress, loaded through ``Resources.from_dicts``): 1,000 rules in 32
Ingresses, 10,000 rules in 100. A third configuration has as many objects as rules: 10,000
Ingresses of one rule each, each with its own Service (``many objects``), where what is paid
per object (not per rule) shows. Six cases per configuration:

* ``RouteTable.build`` and ``Router`` - building the table, and the whole Router (table,
  balancers, canary state) from the same ``Resources``;
* ``config_digest cold`` - the digest of a configuration never seen before (a reload from
  files: every model object is new; the per-object cache, where there is one, is emptied
  before each round);
* ``config_digest one Ingress changed`` - the digest after a reload that changed one Ingress
  and kept every other model object, as a ``ResourceStore`` snapshot does after one watch
  event. The rounds alternate between two configurations that differ in one Ingress (an
  annotation), so each round follows a digest of the other one.
* ``Router.update, one Service's endpoints changed`` - what ``serve`` pays on the event loop
  per endpoint change (a pod started, stopped or flipped readiness): the configuration with one
  EndpointSlice of three ready endpoints per Service, and the same with one endpoint of one
  slice gone (every other model object shared, as a store snapshot). The rounds alternate
  between the two; the first update (which groups the Services' objects) is the warm-up.
  ``..., full rebuild`` is the same with the Router's incremental path switched off
  (``_incremental = False``): what every such update cost before.

The code without a per-object cache gets no setup help: the same function is timed, so the
file runs unchanged against an older ``ingresslib`` for an old/new comparison: copy it into the
old tree's ``benchmarks/`` and run it from there (``python -m pytest`` puts the current
directory first on ``sys.path``, ahead of ``PYTHONPATH``); ``extra_info["module"]`` names the
file whose ``config_digest`` was timed (``_serve_digest.py`` since session 18 split ``serve``;
``_serve.py`` in an older tree).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import sys
from typing import Any

import pytest
from bench_table import manifests
from gen_rules import gen_table

from ingresslib import Resources, _serve
from ingresslib._router import Router
from ingresslib._table import RouteTable, served_ingresses

# The module that defines serve's config_digest (and holds its cache): _serve_digest since
# session 18 split serve, _serve in an older tree. Found from the function, not by trying to
# import _serve_digest: in an older tree run with this venv, the editable install's finder
# would supply the current tree's _serve_digest.
config_digest = _serve.config_digest
digest_module = sys.modules[config_digest.__module__]

#: Configuration name -> (rules, rounds).
CONFIGS = {"1,000 rules": (1_000, 30), "10,000 rules": (10_000, 9),
           "10,000 rules, many objects": (10_000, 5)}
ENDPOINTS_CHANGED = "Router.update, one Service's endpoints changed"
CASES = ["RouteTable.build", "Router", "config_digest cold", "config_digest one Ingress changed",
         ENDPOINTS_CHANGED, ENDPOINTS_CHANGED + ", full rebuild"]


def many_objects(n: int) -> list[dict[str, Any]]:
    """``n`` Ingresses of one rule each, each to its own Service (with a selector)."""
    out: list[dict[str, Any]] = []
    for i in range(n):
        out.append({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": f"svc{i}", "labels": {"app": f"a{i}"}},
                     "spec": {"ports": [{"port": 80, "targetPort": 8080}],
                              "selector": {"app": f"a{i}"}}})
        out.append({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": f"ing{i}", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"rules": [{"host": f"h{i}.example.test", "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": f"svc{i}", "port": {"number": 80}}}}]}}]},
        })
    return out


@functools.lru_cache(maxsize=1)
def configurations(name: str) -> tuple[tuple[Resources, list[Any]], tuple[Resources, list[Any]]]:
    """The configuration and the same with one Ingress changed (all other model objects
    shared), each with its served Ingresses."""
    n, _ = CONFIGS[name]
    objs = many_objects(n) if "many" in name else manifests(gen_table(n, seed=1))
    res = Resources.from_dicts(objs)
    ings = list(res.ingresses)
    k = len(ings) // 2
    meta = ings[k].metadata
    changed = dataclasses.replace(meta, annotations={**meta.annotations, "bench/revision": "2"})
    ings[k] = dataclasses.replace(ings[k], metadata=changed)
    other = dataclasses.replace(res, ingresses=tuple(ings))
    return ((res, served_ingresses(res, None, None)[0]),
            (other, served_ingresses(other, None, None)[0]))


def _slice(service: str, ips: list[str]) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{service}-1", "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "ports": [{"port": 8080}],
            "endpoints": [{"addresses": [ip]} for ip in ips]}


@functools.lru_cache(maxsize=1)
def endpoint_configurations(name: str) -> tuple[Resources, Resources]:
    """The configuration with one EndpointSlice per Service, and the same with one endpoint
    gone from the middle slice (all other model objects shared)."""
    n, _ = CONFIGS[name]
    objs = many_objects(n) if "many" in name else manifests(gen_table(n, seed=1))
    services = [o["metadata"]["name"] for o in objs if o["kind"] == "Service"]
    objs += [_slice(svc, [f"10.{i // 250 % 250}.{i % 250}.{k}" for k in (1, 2, 3)])
             for i, svc in enumerate(services)]
    res = Resources.from_dicts(objs)
    slices = list(res.endpoint_slices)
    k = len(slices) // 2
    slices[k] = dataclasses.replace(slices[k], endpoints=slices[k].endpoints[:-1])
    return res, dataclasses.replace(res, endpoint_slices=tuple(slices))


def _forget_digests() -> None:
    """Empty the per-object digest cache, if this version of ``config_digest`` has one."""
    cache = getattr(digest_module, "_DIGESTS", None)
    if cache is not None:
        cache.clear()


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("config", list(CONFIGS))
def test_reload(benchmark: Any, record: Any, config: str, case: str) -> None:
    (res, served), (other, other_served) = configurations(config)
    n, rounds = CONFIGS[config]
    benchmark.group = f"reload, {config}"
    benchmark.extra_info.update(case=case, config=config, rules=n, ingresses=len(res.ingresses),
                                services=len(res.services), module=digest_module.__file__)
    if case == "RouteTable.build":
        benchmark.pedantic(RouteTable.build, args=(res,), rounds=rounds, warmup_rounds=1)
    elif case == "Router":
        benchmark.pedantic(Router, args=(res,), kwargs={"seed": 1}, rounds=rounds,
                           warmup_rounds=1)
    elif case.startswith(ENDPOINTS_CHANGED):
        res, other = endpoint_configurations(config)
        router = Router(res, seed=1)
        if case.endswith("full rebuild"):
            router._incremental = False
        else:
            rounds *= 20  # ~0.2 ms each: more rounds for a steady median
        updates = itertools.cycle([other, res])

        def next_update() -> tuple[tuple[Any, ...], dict[str, Any]]:
            return (next(updates),), {}

        benchmark.pedantic(router.update, setup=next_update, rounds=rounds, warmup_rounds=1)
        assert router.resources in (res, other)
    elif case == "config_digest cold":
        def cold() -> tuple[tuple[Any, ...], dict[str, Any]]:
            _forget_digests()
            return (res, served), {}

        digest = benchmark.pedantic(config_digest, setup=cold, rounds=rounds, warmup_rounds=1)
        _forget_digests()
        assert digest == config_digest(res, served)
    else:
        assert config_digest(res, served) != config_digest(other, other_served)
        turns = itertools.cycle([(other, other_served), (res, served)])

        def one_changed() -> tuple[tuple[Any, ...], dict[str, Any]]:
            return next(turns), {}

        benchmark.pedantic(config_digest, setup=one_changed, rounds=rounds, warmup_rounds=1)
    if benchmark.stats is None:
        return  # --benchmark-disable: a smoke run, nothing timed
    stats = benchmark.stats.stats
    record(what=f"{case}, {config}", median_ms=round(stats.median * 1e3, 2),
           min_ms=round(stats.min * 1e3, 2))
