"""Session 23 review of the Router (endpoints, canary, incremental updates).

The property: after any sequence of updates (Ingresses, canaries, Services, EndpointSlices and
v1 Endpoints added, removed or modified), ``Router.update`` answers as a Router built from
scratch on the same Resources: same warnings, same ``no_endpoint``, and per request the same
backend, side, port and endpoints (the round-robin position and the canary counter carry over
an update, so a batch of requests is compared as what does not depend on where the counters
stand: how many went to each side, which endpoints each side reached; consistent hashing on
``$uri`` is compared exactly).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import h11
from hypothesis import given, settings
from hypothesis import strategies as st

from ingresslib import _router as router_module
from ingresslib._models import EndpointConditions, ServicePort
from ingresslib._resources import Resources
from ingresslib._router import Router

from _budget import examples
from _counters import counters  # noqa: F401
from _router_helpers import (
    P,
    canary,
    endpoints_v1,
    ingress,
    resources,
    service,
    simple_backend,
    slice_,
)

# --- the world ---------------------------------------------------------------------------------

#: Services by (namespace, name): a canary may live in another namespace than its main rule.
SERVICES = (("default", "a"), ("default", "b"), ("other", "a"))
READY = EndpointConditions(ready=True)
NOT_READY = EndpointConditions(ready=False)
#: Not ready but still serving while it terminates: never routed to (ready is false).
DRAINING = EndpointConditions(ready=False, serving=True, terminating=True)
#: ready unset while terminating: the API says ready is never true while terminating.
UNSET_TERMINATING = EndpointConditions(terminating=True)
CONDITIONS = (READY, NOT_READY, DRAINING, UNSET_TERMINATING, EndpointConditions())
IPV4 = ("10.0.0.1", "10.0.0.2", "10.0.0.3")
IPV6 = ("fd00::1", "fd00::2")

#: A Service's state: (kind, IPv4 endpoints, IPv6 endpoints, v1 Endpoints too).
#: Kinds: 0 no Service (its slices stay); 1 port "http" 80 -> 8080; 2 port "http" 80 -> named
#: targetPort "web", whose number each slice gives (8081 in one, 8082 in the other, the two
#: overlapping); 3 ExternalName; 4 port "http" but the slices only name another port
#: ("metrics": a slice for another Service port); 5 unnamed port 80 -> 8080; 6 as 1, its IPv4
#: slice labelled for the other Service of its namespace (moved there); 7 as 1, its IPv4 slice
#: given twice (the later definition, without its first endpoint, counts); 8 an ExternalName
#: refused (a loopback name: a warning); 9 as 1 with an FQDN slice (one address refused: a
#: warning) and an endpoint-weights annotation with one bad entry (a warning).
ServiceState = tuple[int, tuple[tuple[str, int], ...], tuple[tuple[str, int], ...], bool]
SERVICE_STATES = st.tuples(
    st.integers(0, 9),
    st.lists(st.tuples(st.sampled_from(IPV4), st.integers(0, len(CONDITIONS) - 1)),
             max_size=3).map(tuple),
    st.lists(st.tuples(st.sampled_from(IPV6), st.integers(0, len(CONDITIONS) - 1)),
             max_size=2).map(tuple),
    st.booleans())


def service_objects(ns: str, name: str, state: ServiceState) -> list[object]:
    kind, v4, v6, v1 = state
    out: list[object] = []
    if kind in (3, 8):
        out.append(service(name, [ServicePort(80, "http", 80)], ns=ns, type="ExternalName",
                           external_name=f"{name}.{ns}.example.test" if kind == 3
                           else "localhost"))
        return out
    if kind in (1, 6, 7):
        out.append(service(name, [ServicePort(80, "http", 8080)], ns=ns))
    elif kind == 9:
        out.append(service(name, [ServicePort(80, "http", 8080)], ns=ns, annotations={
            "ingresslib.io/endpoint-weights": "10.0.0.1=3, nonsense"}))
        out.append(slice_(f"{name}-fqdn", name, [f"{name}.backend.test", "x.localhost"],
                          [("http", 8080)], ns=ns, address_type="FQDN"))
    elif kind == 2:
        out.append(service(name, [ServicePort(80, "http", "web")], ns=ns))
    elif kind == 4:
        out.append(service(name, [ServicePort(80, "http", 8080)], ns=ns))
    elif kind == 5:
        out.append(service(name, [ServicePort(80, None, 8080)], ns=ns))
    pname = None if kind == 5 else "metrics" if kind == 4 else "http"
    if v4:
        if kind == 7:
            out.append(slice_(f"{name}-v4", name, [(ip, CONDITIONS[c]) for ip, c in v4],
                              [(pname, 8080)], ns=ns))
            v4 = v4[1:]
        owner = {"a": "b", "b": "a"}[name] if kind == 6 else name
        out.append(slice_(f"{name}-v4", owner, [(ip, CONDITIONS[c]) for ip, c in v4],
                          [(pname, 8081 if kind == 2 else 8080)], ns=ns))
        if kind == 2:
            # A second slice of the same Service, overlapping the first one's endpoints, with
            # another number for the named targetPort (pods of another version).
            out.append(slice_(f"{name}-v4b", name, [(ip, CONDITIONS[c]) for ip, c in v4[:2]],
                              [(pname, 8082)], ns=ns))
    if v6:
        out.append(slice_(f"{name}-v6", name, [(ip, CONDITIONS[c]) for ip, c in v6],
                          [(pname, 8081 if kind == 2 else 8080)], ns=ns, address_type="IPv6"))
    if v1:
        out.append(endpoints_v1(name, [ip for ip, c in v4 if CONDITIONS[c] is READY],
                                [ip for ip, c in v4 if CONDITIONS[c] is not READY],
                                ports=[(pname, 8080)], ns=ns))
    return out


#: Main Ingresses: None (absent) or (rules variant, balancer annotations, default backend).
LBS = ({}, {P + "upstream-hash-by": "$uri"}, {P + "service-upstream": "true"})
MAIN_STATES = st.one_of(st.none(), st.tuples(st.integers(0, 2), st.integers(0, len(LBS) - 1),
                                             st.booleans()))
#: Canary annotations whose split is exact over a batch of BATCH weight-decided requests.
CANARIES = ({P + "canary-weight": "0"}, {P + "canary-weight": "100"},
            {P + "canary-weight": "50"},
            {P + "canary-weight": "1", P + "canary-weight-total": "3"},
            {P + "canary-weight": "2", P + "canary-weight-total": "2"},
            {P + "canary-by-header": "x-canary"},
            {P + "canary-by-header": "x-canary", P + "canary-by-header-value": "beta",
             P + "canary-weight": "100"},
            {P + "canary-by-header": "x-canary", P + "canary-by-cookie": "canary",
             P + "canary-weight": "50"},
            {P + "canary-by-cookie": "canary", P + "canary-weight": "100"},
            {P + "canary-by-header": "x-canary", P + "canary-by-header-pattern": "^b.t"})
#: Canary Ingresses: None or (namespace, target rule, service, port, annotations).
CANARY_STATES = st.one_of(st.none(), st.tuples(
    st.sampled_from(["default", "other"]), st.integers(0, 2), st.sampled_from(["a", "b"]),
    st.sampled_from([80, "http"]), st.integers(0, len(CANARIES) - 1)))
TARGETS = (("x.test", "/"), ("x.test", "/p"), ("y.test", "/"))


def main_ingress(slot: int, state: Any) -> list[object]:
    if state is None:
        return []
    variant, lb, default = state
    svc = "ab"[slot]
    rules = {0: [("x.test", "/", "Prefix", svc, 80), ("y.test", "/", "Prefix", svc, "http")],
             1: [("x.test", "/p", "Prefix", svc, "http")],
             2: [("x.test", "/", "Prefix", "ab"[1 - slot], 80),
                 ("x.test", "/p", "Exact", svc, 80)]}[variant]
    return [ingress(f"main{slot}", rules, LBS[lb], default=(svc, 80) if default else None,
                    age=slot)]


def canary_ingress(slot: int, state: Any) -> list[object]:
    if state is None:
        return []
    ns, target, svc, port, ann = state
    host, path = TARGETS[target]
    ing = canary(f"canary{slot}", host, path, svc, port, CANARIES[ann], ns=ns)
    return [ing]


class World:
    """Resources from per-object states; an unchanged object keeps its model objects (as a
    ResourceStore snapshot does), so an update sees only the change it is meant to."""

    def __init__(self) -> None:
        self.cache: dict[Any, list[object]] = {}

    def objects(self, key: Any, make: Any, *args: Any) -> list[object]:
        got = self.cache.get(key)
        if got is None:
            got = self.cache[key] = make(*args)
        return got

    def resources(self, states: dict[Any, Any]) -> Resources:
        objs: list[object] = []
        for slot in (0, 1):
            objs += self.objects(("main", slot, states[("main", slot)]), main_ingress, slot,
                                 states[("main", slot)])
        for slot in (0, 1):
            objs += self.objects(("canary", slot, states[("canary", slot)]), canary_ingress,
                                 slot, states[("canary", slot)])
        for ns, name in SERVICES:
            s = states[(ns, name)]
            objs += self.objects((ns, name, s), service_objects, ns, name, s)
        return resources(*objs)


# --- the answers -------------------------------------------------------------------------------

#: Requests per batch: a multiple of every canary split's total above (2, 3, 100 at weight
#: 50), so each batch sends exactly as many to each side whatever the counter's position, and
#: each side gets at least as many as it has endpoints (every one reached by round-robin),
#: and a third of it (8) covers the longest weighted round-robin cycle (kind 9: 10.0.0.1 weighs
#: 3; 3+1+1+2+1 = 8 positions). With 12, a canary third (4) could miss an endpoint depending on
#: where the carried-over counter stood (session 24: tests/test_router_update_s24.py).
BATCH = 24
HEADERS: tuple[tuple[tuple[str, str], ...], ...] = (
    (), (("x-canary", "always"),), (("x-canary", "never"),), (("x-canary", "beta"),),
    (("cookie", "canary=always"),), (("x-canary", "never"), ("cookie", "canary=always")),
    (("x-canary", "bat"), ("cookie", "canary=never")))
REQUESTS = [(host, path, headers) for host, path in (("x.test", "/"), ("x.test", "/p"),
                                                      ("y.test", "/"), ("z.test", "/"))
            for headers in HEADERS]


def as_h11(headers: tuple[tuple[str, str], ...]) -> Any:
    return h11.Request(method="GET", target="/", headers=[("Host", "x")] + list(headers)).headers


def answers(r: Router, h11_headers: bool) -> list[Any]:
    out: list[Any] = [tuple(r.warnings), tuple(r.no_endpoint)]
    for host, path, headers in REQUESTS:
        hd: Any = as_h11(headers) if h11_headers else headers
        sides: Counter[Any] = Counter()
        reached: dict[Any, set[Any]] = {}
        for _ in range(BATCH):
            d = r.route("GET", host, path, hd, "192.0.2.1")
            if d is None:
                sides[None] += 1
                continue
            served = d.served
            what = (d.canary, d.service, d.namespace, d.port, d.backend, d.match.ingress,
                    d.match.path, served.ingress if served is not None else None)
            sides[what] += 1
            reached.setdefault(what, set()).add(d.endpoint)
        out.append((host, path, headers, sorted(sides.items(), key=repr),
                    sorted(((k, sorted(v, key=repr)) for k, v in reached.items()), key=repr)))
    return out


OBJECT_KEYS = ([("main", 0), ("main", 1), ("canary", 0), ("canary", 1)] + list(SERVICES))


def state_for(key: Any) -> st.SearchStrategy[Any]:
    if key[0] == "main":
        return MAIN_STATES
    if key[0] == "canary":
        return CANARY_STATES
    return SERVICE_STATES


STEPS = st.lists(st.sampled_from(range(len(OBJECT_KEYS))).flatmap(
    lambda i: st.tuples(st.just(OBJECT_KEYS[i]), state_for(OBJECT_KEYS[i]))),
    min_size=1, max_size=6)


@settings(max_examples=examples(0.5), deadline=None)
@given(st.fixed_dictionaries({k: state_for(k) for k in OBJECT_KEYS}), STEPS, st.booleans())
def test_updated_router_answers_as_a_fresh_one(start: dict[Any, Any],
                                                steps: list[tuple[Any, Any]],
                                                h11_headers: bool) -> None:
    world = World()
    states = dict(start)
    router = Router(world.resources(states), seed=3)
    answers(router, h11_headers)  # requests before the updates: counters move
    for key, state in steps:
        states[key] = state
        res = world.resources(states)
        router.update(res)
        assert answers(router, h11_headers) == answers(Router(res, seed=3), h11_headers)


# --- a route first requested through the previous state keeps its fast entry ----------------------


def _two_services(ann: dict[str, str] | None = None, canary_ann: dict[str, str] | None = None,
                  b_ip: str = "10.0.1.1") -> Resources:
    objs: list[object] = [
        ingress("web", [("x.test", "/a", "Prefix", "a", 80), ("x.test", "/b", "Prefix", "b", 80)],
                ann),
        *simple_backend("a", ["10.0.0.1", "10.0.0.2"]), *simple_backend("b", [b_ip]),
        *simple_backend("c", ["10.0.2.1"])]
    if canary_ann is not None:
        objs.append(canary("web-canary", "x.test", "/a", "c", 80, canary_ann))
    return resources(*objs)


def _entry_after_in_flight_request(router: Router, res: Resources, path: str = "/a") -> Any:
    """Update ``router`` to ``res`` while a request routed by the previous state (its
    ``route``, read before the update) is the first one of route ``path``; then route one
    request through the new state and return that route's entry."""
    in_flight = router.route
    router.update(res)
    assert in_flight("GET", "x.test", path) is not None  # routed by the previous state
    assert router.route("GET", "x.test", path) is not None
    m = router.table.match("x.test", path)
    assert m is not None
    return router._state.fast[m]


def test_round_robin_route_first_built_by_the_previous_state_gets_its_rotation() -> None:
    # Before: the new state's entry stayed the unbuilt _Backend, so every later request of the
    # route went through the Python path (the same answers, several times the cost).
    r = Router(_two_services())
    entry = _entry_after_in_flight_request(r, _two_services(b_ip="10.0.1.2"))
    assert type(entry) is router_module.ROTATION_TYPE
    got = [r.route("GET", "x.test", "/a").endpoint for _ in range(4)]  # type: ignore[union-attr]
    assert sorted(got) == [("10.0.0.1", 8080)] * 2 + [("10.0.0.2", 8080)] * 2


def test_canary_route_first_built_by_the_previous_state_gets_its_pick() -> None:
    ann = {P + "canary-weight": "50"}
    r = Router(_two_services(canary_ann=ann))
    entry = _entry_after_in_flight_request(r, _two_services(canary_ann=ann, b_ip="10.0.1.2"))
    assert type(entry) is router_module.CanaryPick
    sides = [r.route("GET", "x.test", "/a").canary for _ in range(4)]  # type: ignore[union-attr]
    assert sorted(sides) == [False, False, True, True]


def test_canary_route_rebuilt_by_a_full_build_gets_its_pick() -> None:
    # A full build with the same table keeps the built sides but makes new route objects:
    # one made before its sides were built (by a request of the previous state) held no
    # cycle and answered every request on the Python path.
    ann = {P + "canary-weight": "50"}
    r = Router(_two_services(canary_ann=ann))
    r._incremental = False
    entry = _entry_after_in_flight_request(r, _two_services(canary_ann=ann, b_ip="10.0.1.2"))
    assert type(entry) is router_module.CanaryPick


def test_hash_route_first_built_by_the_previous_state_gets_its_pick() -> None:
    ann = {P + "upstream-hash-by": "$uri"}
    r = Router(_two_services(ann))
    entry = _entry_after_in_flight_request(r, _two_services(ann, b_ip="10.0.1.2"))
    assert type(entry) is router_module.HashPick
    first = r.route("GET", "x.test", "/a/x")
    assert first is not None
    assert r.route("GET", "x.test", "/a/x") is first  # the same key, the same Decision


def test_round_robin_route_rebuilt_by_a_full_build_gets_its_rotation() -> None:
    r = Router(_two_services())
    r._incremental = False
    entry = _entry_after_in_flight_request(r, _two_services(b_ip="10.0.1.2"))
    assert type(entry) is router_module.ROTATION_TYPE
